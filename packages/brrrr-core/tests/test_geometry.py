"""Tests for brrrr.core.geometry, checked against nibabel's orientation tools."""

from __future__ import annotations

import pathlib

import nibabel as nib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nibabel.affines import apply_affine, voxel_sizes
from nibabel.orientations import aff2axcodes
from scipy.spatial.transform import Rotation

from brrrr.core import geometry
from brrrr.core.errors import BrrrrError, GeometryError
from brrrr.core.volume import Volume

EXAMPLE4D = pathlib.Path(nib.__file__).parent / "tests" / "data" / "example4d.nii.gz"


def random_affine(rng: np.random.Generator, *, oblique: bool = True) -> np.ndarray:
    """A random voxel→world affine: rotation (or axis permutation), flips, scales, shift."""
    if oblique:
        linear = Rotation.random(random_state=rng.integers(2**31)).as_matrix()
    else:
        linear = np.eye(3)[rng.permutation(3)]
    linear = linear @ np.diag(rng.choice([-1.0, 1.0], 3) * rng.uniform(0.3, 4.0, 3))
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = rng.uniform(-100, 100, 3)
    return affine


def ramp(shape: tuple[int, ...]) -> np.ndarray:
    """An array whose every voxel holds a distinct value."""
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)


# -- axcodes / spacing / origin ---------------------------------------------------------------


def test_all_axcodes_has_the_48_distinct_codes() -> None:
    assert len(geometry.ALL_AXCODES) == 48
    assert len(set(geometry.ALL_AXCODES)) == 48
    for code in geometry.ALL_AXCODES:
        assert {_pair(c) for c in code} == {0, 1, 2}


def _pair(letter: str) -> int:
    return next(i for i, pair in enumerate(("LR", "PA", "IS")) if letter in pair)


@pytest.mark.parametrize("oblique", [False, True])
def test_axcodes_and_spacing_match_nibabel_on_random_affines(oblique: bool) -> None:
    rng = np.random.default_rng(0 if oblique else 1)
    for _ in range(300):
        affine = random_affine(rng, oblique=oblique)
        assert geometry.axcodes(affine) == "".join(aff2axcodes(affine))
        np.testing.assert_allclose(geometry.spacing(affine), voxel_sizes(affine), rtol=1e-12)


def test_axcodes_and_spacing_match_nibabel_on_example4d() -> None:
    affine = nib.load(EXAMPLE4D).affine
    assert geometry.axcodes(affine) == "".join(aff2axcodes(affine)) == "LAS"
    np.testing.assert_allclose(geometry.spacing(affine), voxel_sizes(affine), rtol=1e-12)


def test_origin_and_direction_cosines() -> None:
    affine = random_affine(np.random.default_rng(2))
    np.testing.assert_array_equal(geometry.origin(affine), affine[:3, 3])
    cosines = geometry.direction_cosines(affine)
    np.testing.assert_allclose(np.linalg.norm(cosines, axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(cosines * geometry.spacing(affine), affine[:3, :3], rtol=1e-12)
    # origin is a copy: changing it leaves the affine alone.
    geometry.origin(affine)[0] = 1e9
    assert affine[0, 3] != 1e9


# -- reorientation --------------------------------------------------------------------------


@pytest.mark.parametrize("code", geometry.ALL_AXCODES)
def test_reorient_to_every_code_and_back_is_identity(code: str) -> None:
    rng = np.random.default_rng(3)
    affine = random_affine(rng, oblique=False)
    data = ramp((2, 3, 4, 5))
    original = geometry.axcodes(affine)

    moved, moved_affine = geometry.reorient(data, affine, code)
    assert geometry.axcodes(moved_affine) == code
    assert np.shares_memory(moved, data)  # flips and permutations only: a view
    plan = geometry.reorientation(affine, code, shape=data.shape[1:])
    assert moved.shape == (2, *plan.output_shape)
    np.testing.assert_allclose(
        geometry.spacing(moved_affine), geometry.spacing(affine)[list(plan.permutation)]
    )

    back, back_affine = geometry.reorient(moved, moved_affine, original)
    np.testing.assert_array_equal(back, data)
    np.testing.assert_allclose(back_affine, affine, rtol=0, atol=1e-12)

    inverse = plan.inverse()
    np.testing.assert_array_equal(inverse.apply(plan.apply(data)), data)
    np.testing.assert_allclose(
        inverse.transform_affine(plan.transform_affine(affine)), affine, rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("code", ["RAS", "LPS", "PIR", "SLA", "IRP"])
@pytest.mark.parametrize("oblique", [False, True])
def test_reoriented_voxels_stay_at_the_same_world_point(code: str, oblique: bool) -> None:
    affine = random_affine(np.random.default_rng(4), oblique=oblique)
    data = ramp((3, 4, 5))
    moved, moved_affine = geometry.reorient(data, affine, code)

    out_index = np.indices(moved.shape).reshape(3, -1).T
    world = apply_affine(moved_affine, out_index)
    in_index = apply_affine(np.linalg.inv(affine), world)
    np.testing.assert_allclose(in_index, np.round(in_index), atol=1e-9)
    in_index = np.round(in_index).astype(int)
    np.testing.assert_array_equal(moved[tuple(out_index.T)], data[tuple(in_index.T)])


def test_reorient_matches_nibabel_as_closest_canonical_on_example4d() -> None:
    image = nib.load(EXAMPLE4D)
    canonical = nib.as_closest_canonical(image)
    volume = Volume.from_nibabel(image)
    assert volume.data.shape == (2, 128, 96, 24)
    ras = volume.reorient("RAS")
    assert ras.axcodes == "RAS"
    np.testing.assert_array_equal(np.moveaxis(ras.data, 0, -1), np.asanyarray(canonical.dataobj))
    np.testing.assert_allclose(ras.affine, canonical.affine, rtol=0, atol=1e-9)


def test_reorientation_plan_properties() -> None:
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    identity = geometry.reorientation(affine, "RAS", shape=(2, 3, 4))
    assert identity.is_identity
    np.testing.assert_array_equal(identity.voxel_map(), np.eye(4))

    plan = geometry.reorientation(affine, "SPL", shape=(2, 3, 4))
    assert not plan.is_identity
    assert plan.permutation == (2, 1, 0)
    assert plan.flips == (False, True, True)
    assert plan.output_shape == (4, 3, 2)
    assert plan.inverse().output_shape == (2, 3, 4)
    np.testing.assert_allclose(geometry.spacing(plan.transform_affine(affine)), [4, 3, 2])


def test_docstring_example() -> None:
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    plan = geometry.reorientation(affine, "LPS", shape=(4, 5, 6))
    data, new_affine = plan.apply(np.zeros((4, 5, 6))), plan.transform_affine(affine)
    assert (geometry.axcodes(new_affine), data.shape) == ("LPS", (4, 5, 6))


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(*[st.integers(1, 5)] * 3),
    channels=st.sampled_from([None, 1, 3]),
    code=st.sampled_from(geometry.ALL_AXCODES),
    seed=st.integers(0, 2**32 - 1),
    oblique=st.booleans(),
)
def test_reorient_then_inverse_is_identity_property(
    shape: tuple[int, int, int], channels: int | None, code: str, seed: int, oblique: bool
) -> None:
    affine = random_affine(np.random.default_rng(seed), oblique=oblique)
    data = ramp(shape if channels is None else (channels, *shape))
    plan = geometry.reorientation(affine, code, shape=shape)
    moved = plan.apply(data)
    moved_affine = plan.transform_affine(affine)
    assert geometry.axcodes(moved_affine) == code
    assert moved.shape[-3:] == plan.output_shape
    inverse = plan.inverse()
    np.testing.assert_array_equal(inverse.apply(moved), data)
    np.testing.assert_allclose(inverse.transform_affine(moved_affine), affine, atol=1e-9)
    assert (
        geometry.reorientation(moved_affine, geometry.axcodes(affine), shape=moved.shape[-3:])
        == inverse
    )


@pytest.mark.parametrize("code", ["LPS", "AIR", "RAS"])
@pytest.mark.parametrize("channels", [None, 2])
def test_reorientation_applies_to_torch_tensors(code: str, channels: int | None) -> None:
    affine = random_affine(np.random.default_rng(5), oblique=False)
    shape = (3, 4, 5)
    data = ramp(shape if channels is None else (channels, *shape))
    plan = geometry.reorientation(affine, code, shape=shape)
    moved = plan.apply(torch.from_numpy(data))
    assert isinstance(moved, torch.Tensor)
    np.testing.assert_array_equal(moved.numpy(), plan.apply(data))
    np.testing.assert_array_equal(plan.inverse().apply(moved).numpy(), data)


def test_apply_rejects_an_array_of_another_shape() -> None:
    plan = geometry.reorientation(np.eye(4), "LPS", shape=(2, 3, 4))
    with pytest.raises(GeometryError, match="spatial shape"):
        plan.apply(np.zeros((2, 3, 5)))
    with pytest.raises(GeometryError):
        plan.apply(np.zeros((3, 4)))


# -- validation -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.Tensor.__array__ lacks copy=
def test_check_affine_returns_a_float64_copy() -> None:
    given_affine = [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]]
    checked = geometry.check_affine(given_affine)
    assert checked.dtype == np.float64
    assert checked.shape == (4, 4)
    source = np.diag([1.0, 2.0, 3.0, 1.0])
    copy = geometry.check_affine(source)
    copy[0, 0] = 9.0
    assert source[0, 0] == 1.0
    np.testing.assert_array_equal(geometry.check_affine(torch.eye(4)), np.eye(4))


def _with(index: tuple[int, int], value: float) -> np.ndarray:
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    affine[index] = value
    return affine


@pytest.mark.parametrize(
    ("affine", "message"),
    [
        (_with((0, 0), np.nan), "NaN or Inf"),
        (_with((1, 3), np.inf), "NaN or Inf"),
        (_with((2, 2), -np.inf), "NaN or Inf"),
        (_with((1, 1), 0.0), "singular"),
        (np.zeros((4, 4)) + np.eye(4) * [0, 0, 0, 1], "singular"),
        (np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), "singular"),
        (_with((3, 0), 0.5), "last row"),
        (_with((3, 3), 2.0), "last row"),
        (np.eye(3), "shape"),
        (np.eye(4)[:3], "shape"),
        (np.eye(5), "shape"),
        ([[1, 2], [3]], "not numeric|shape"),
        ("not an affine", "not numeric"),
    ],
)
def test_check_affine_rejects_bad_affines(affine: object, message: str) -> None:
    with pytest.raises(GeometryError, match=message):
        geometry.check_affine(affine)


def test_check_affine_names_the_file() -> None:
    with pytest.raises(GeometryError, match=r"^scan\.nii\.gz: ") as info:
        geometry.check_affine(np.zeros((4, 4)), path="scan.nii.gz")
    assert info.value.path == "scan.nii.gz"
    assert isinstance(info.value, BrrrrError)


def test_check_affine_accepts_tiny_but_regular_voxels() -> None:
    # Singularity is judged relative to the matrix's scale, not in absolute mm.
    geometry.check_affine(np.diag([1e-5, 1e-5, 1e-5, 1.0]))


@pytest.mark.parametrize("code", ["ras", "lPs", "Rpi"])
def test_orientation_codes_are_case_insensitive(code: str) -> None:
    moved, moved_affine = geometry.reorient(ramp((2, 3, 4)), np.eye(4), code)
    assert geometry.axcodes(moved_affine) == code.upper()
    assert moved.shape == (2, 3, 4)


@pytest.mark.parametrize("code", ["RAX", "RRS", "RA", "RASR", "", "LRS", "R A", None, 3])
def test_invalid_orientation_codes_raise(code: object) -> None:
    with pytest.raises(GeometryError, match="invalid orientation code"):
        geometry.reorientation(np.eye(4), code, shape=(2, 3, 4))  # type: ignore[arg-type]


def test_reorientation_rejects_non_spatial_shape() -> None:
    with pytest.raises(GeometryError, match="3 spatial sizes"):
        geometry.reorientation(np.eye(4), "RAS", shape=(2, 3))


def test_axcodes_of_degenerate_affine_raises() -> None:
    with pytest.raises(GeometryError, match="degenerate"):
        geometry.axcodes(np.diag([1.0, 0.0, 1.0, 1.0]))
