"""Tests for brrrr.core.resample, checked against scipy.ndimage and nibabel.processing."""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nibabel.affines import apply_affine
from nibabel.processing import resample_from_to
from scipy import ndimage
from scipy.spatial.transform import Rotation

from brrrr.core import geometry
from brrrr.core.errors import GeometryError
from brrrr.core.resample import Interpolation, grid_for_spacing, resample

KINDS = ("numpy", "torch", "numpy-on-cpu")
ORDER = {"nearest": 0, "linear": 1, "cubic": 3}


def make_affine(linear: np.ndarray, offset: Any) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = offset
    return affine


def rotation(degrees: Any) -> np.ndarray:
    return Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()


# The input grid is itself oblique, so "axis-aligned" below means aligned with the input's axes.
SOURCE_SHAPE = (9, 10, 11)
SOURCE_AFFINE = make_affine(rotation([5, -10, 20]) @ np.diag([1.2, 0.9, 1.5]), [-3.0, 2.0, 1.0])


def grid_from_voxels(shape: tuple[int, int, int], vox2vox: np.ndarray) -> tuple[Any, np.ndarray]:
    """A target grid given by where its voxels fall in SOURCE's voxel space."""
    return shape, SOURCE_AFFINE @ vox2vox


GRIDS = {
    # spacing changes only: the separable path
    "finer": grid_from_voxels(
        (13, 17, 12), make_affine(np.diag([0.61, 0.53, 0.87]), [0.13, 0.21, 0.07])
    ),
    "coarser": grid_from_voxels(
        (5, 4, 6), make_affine(np.diag([1.83, 2.37, 1.71]), [0.31, 0.17, 0.22])
    ),
    "flipped": grid_from_voxels(
        (9, 10, 11), make_affine(np.diag([-1.0, 0.97, -1.0]), [8.1, 0.23, 9.8])
    ),
    # rotated or permuted relative to the input: the oblique path
    "oblique": grid_from_voxels(
        (10, 9, 11),
        make_affine(rotation([12, 25, -17]) @ np.diag([0.9, 1.1, 0.8]), [-1.1, 1.3, 0.7]),
    ),
    "permuted": grid_from_voxels(
        (11, 9, 10), make_affine(np.eye(3)[[2, 0, 1]] * 0.93, [0.21, 0.33, 0.12])
    ),
}


def source_data(channels: int | None = None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = SOURCE_SHAPE if channels is None else (channels, *SOURCE_SHAPE)
    return rng.uniform(-1.0, 3.0, shape)


def to_kind(array: np.ndarray, kind: str) -> tuple[Any, dict[str, Any]]:
    """The input for `resample` and the extra keyword arguments for one input kind."""
    if kind == "torch":
        return torch.from_numpy(array), {}
    if kind == "numpy-on-cpu":
        return array, {"device": "cpu"}
    return array, {}


def as_numpy(out: Any, kind: str) -> np.ndarray:
    if kind == "torch":
        assert isinstance(out, torch.Tensor)
        return out.numpy()
    assert isinstance(out, np.ndarray)
    return out


def scipy_reference(
    data: np.ndarray,
    affine: np.ndarray,
    shape: Any,
    target: np.ndarray,
    *,
    order: int,
    fill: float = 0.0,
) -> np.ndarray:
    vox2vox = np.linalg.inv(affine) @ target
    channels = data[None] if data.ndim == 3 else data
    out = np.stack(
        [
            ndimage.affine_transform(
                c,
                vox2vox[:3, :3],
                offset=vox2vox[:3, 3],
                output_shape=tuple(shape),
                order=order,
                mode="grid-constant",
                cval=fill,
            )
            for c in channels
        ]
    )
    return out[0] if data.ndim == 3 else out


def input_positions(affine: np.ndarray, shape: Any, target: np.ndarray) -> np.ndarray:
    """(I', J', K', 3) positions in the input's voxel space of every output voxel."""
    index = np.indices(tuple(shape)).reshape(3, -1).T
    return apply_affine(np.linalg.inv(affine) @ target, index).reshape(*shape, 3)


def interior(affine: np.ndarray, in_shape: Any, shape: Any, target: np.ndarray) -> np.ndarray:
    """Output voxels whose sample point has all its interpolation neighbours inside the input."""
    pos = input_positions(affine, shape, target)
    upper = np.asarray(in_shape) - 1
    return ((pos >= 1e-6) & (pos <= upper - 1e-6)).all(axis=-1)


def distance_to_tie(affine: np.ndarray, shape: Any, target: np.ndarray) -> float:
    pos = input_positions(affine, shape, target)
    return float(np.abs(pos - np.floor(pos) - 0.5).min())


# -- against scipy.ndimage and nibabel ----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("fill", [0.0, 2.5])
def test_linear_matches_scipy(kind: str, grid: str, fill: float) -> None:
    shape, target = GRIDS[grid]
    data = source_data()
    array, extra = to_kind(data, kind)
    out = resample(
        array, SOURCE_AFFINE, target_shape=shape, target_affine=target, fill=fill, **extra
    )
    result = as_numpy(out, kind)
    assert result.shape == shape
    assert result.dtype == np.float64
    expected = scipy_reference(data, SOURCE_AFFINE, shape, target, order=1, fill=fill)
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("grid", GRIDS)
def test_linear_matches_nibabel_resample_from_to_in_the_interior(kind: str, grid: str) -> None:
    shape, target = GRIDS[grid]
    data = source_data(seed=1)
    image = nib.Nifti1Image(data, SOURCE_AFFINE)
    expected = resample_from_to(image, (shape, target), order=1).get_fdata()
    array, extra = to_kind(data, kind)
    out = resample(array, SOURCE_AFFINE, target_shape=shape, target_affine=target, **extra)
    result = as_numpy(out, kind)
    mask = interior(SOURCE_AFFINE, SOURCE_SHAPE, shape, target)
    assert mask.sum() > 0.25 * mask.size
    np.testing.assert_allclose(result[mask], expected[mask], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("grid", GRIDS)
def test_nearest_keeps_labels_and_matches_scipy(kind: str, grid: str) -> None:
    shape, target = GRIDS[grid]
    assert distance_to_tie(SOURCE_AFFINE, shape, target) > 1e-6, "grid must avoid .5 ties"
    labels = np.random.default_rng(2).integers(0, 7, SOURCE_SHAPE).astype(np.int16)
    array, extra = to_kind(labels, kind)
    out = resample(
        array,
        SOURCE_AFFINE,
        target_shape=shape,
        target_affine=target,
        interpolation="nearest",
        fill=-1,
        **extra,
    )
    result = as_numpy(out, kind)
    assert result.dtype == np.int16
    assert set(np.unique(result)) <= set(range(7)) | {-1}
    expected = scipy_reference(labels, SOURCE_AFFINE, shape, target, order=0, fill=-1)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("grid", GRIDS)
def test_cubic_matches_scipy(kind: str, grid: str) -> None:
    shape, target = GRIDS[grid]
    data = source_data(seed=3)
    array, extra = to_kind(data, kind)
    out = resample(
        array,
        SOURCE_AFFINE,
        target_shape=shape,
        target_affine=target,
        interpolation="cubic",
        fill=0.5,
        **extra,
    )
    result = as_numpy(out, kind)
    expected = scipy_reference(data, SOURCE_AFFINE, shape, target, order=3, fill=0.5)
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("interpolation", ORDER)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("grid", ["coarser", "oblique"])
def test_4d_input_resamples_each_channel(interpolation: str, kind: str, grid: str) -> None:
    shape, target = GRIDS[grid]
    data = source_data(channels=3, seed=4)
    array, extra = to_kind(data, kind)
    out = resample(
        array,
        SOURCE_AFFINE,
        target_shape=shape,
        target_affine=target,
        interpolation=interpolation,
        **extra,
    )
    result = as_numpy(out, kind)
    assert result.shape == (3, *shape)
    for c in range(3):
        array, extra = to_kind(np.ascontiguousarray(data[c]), kind)
        one = resample(
            array,
            SOURCE_AFFINE,
            target_shape=shape,
            target_affine=target,
            interpolation=interpolation,
            **extra,
        )
        np.testing.assert_allclose(result[c], as_numpy(one, kind), rtol=1e-12, atol=1e-14)
    expected = scipy_reference(data, SOURCE_AFFINE, shape, target, order=ORDER[interpolation])
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


# -- special grids ----------------------------------------------------------------------------


@pytest.mark.parametrize("interpolation", ORDER)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels", [None, 2])
def test_resampling_to_the_same_grid_is_the_identity(
    interpolation: str, kind: str, channels: int | None
) -> None:
    data = source_data(channels=channels, seed=5)
    array, extra = to_kind(data, kind)
    out = resample(
        array,
        SOURCE_AFFINE,
        target_shape=SOURCE_SHAPE,
        target_affine=SOURCE_AFFINE,
        interpolation=interpolation,
        fill=7.0,
        **extra,
    )
    result = as_numpy(out, kind)
    if interpolation == "cubic":
        np.testing.assert_allclose(result, data, rtol=1e-9, atol=1e-9)
    else:
        np.testing.assert_array_equal(result, data)


@pytest.mark.parametrize("interpolation", ORDER)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rotated", [False, True])
def test_fill_outside_the_input(interpolation: str, kind: str, rotated: bool) -> None:
    data = source_data(seed=6)
    linear = SOURCE_AFFINE[:3, :3] @ (rotation([0, 0, 30]) if rotated else np.eye(3))
    # Shifted by 4 voxels along i: the first output planes lie well outside the input.
    target = make_affine(linear, apply_affine(SOURCE_AFFINE, [-6.0, 0.0, 0.0]))
    array, extra = to_kind(data, kind)
    out = resample(
        array,
        SOURCE_AFFINE,
        target_shape=SOURCE_SHAPE,
        target_affine=target,
        interpolation=interpolation,
        fill=-5.0,
        **extra,
    )
    result = as_numpy(out, kind)
    pos = input_positions(SOURCE_AFFINE, SOURCE_SHAPE, target)
    if interpolation == "cubic":
        # B-spline coefficients ring past the edge (as in scipy): only approach fill there.
        expected = scipy_reference(data, SOURCE_AFFINE, SOURCE_SHAPE, target, order=3, fill=-5.0)
        np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)
    else:
        reach = {"nearest": 0.5, "linear": 1.0}[interpolation]
        upper = np.asarray(SOURCE_SHAPE) - 1 + reach + 1e-9
        far = ((pos < -reach - 1e-9) | (pos > upper)).any(axis=-1)
        assert far.sum() > 100
        np.testing.assert_allclose(result[far], -5.0, rtol=0, atol=1e-12)
        inside = ((pos >= 0) & (pos <= np.asarray(SOURCE_SHAPE) - 1)).all(axis=-1)
        assert inside.sum() > 20
        assert not np.isclose(result[inside], -5.0).any()

    # A grid with no overlap at all is filled everywhere.
    away = make_affine(linear, apply_affine(SOURCE_AFFINE, [100.0, 0.0, 0.0]))
    empty = resample(
        array,
        SOURCE_AFFINE,
        target_shape=(3, 4, 5),
        target_affine=away,
        interpolation=interpolation,
        fill=-5.0,
        **extra,
    )
    np.testing.assert_allclose(as_numpy(empty, kind), -5.0, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("grid", ["finer", "oblique"])
def test_a_large_fill_does_not_swamp_small_values(kind: str, grid: str) -> None:
    # Regression: fill used to be subtracted from the data and added back, which in
    # float32 erased values much smaller than fill (100 % error for 1e-3 vs 1e4).
    shape, target = GRIDS[grid]
    data = (source_data(seed=11) * 1e-3).astype(np.float32)
    array, extra = to_kind(data, kind)
    out = resample(
        array, SOURCE_AFFINE, target_shape=shape, target_affine=target, fill=1e4, **extra
    )
    result = as_numpy(out, kind)
    expected = scipy_reference(
        data.astype(np.float64), SOURCE_AFFINE, shape, target, order=1, fill=1e4
    )
    mask = interior(SOURCE_AFFINE, SOURCE_SHAPE, shape, target)
    np.testing.assert_allclose(result[mask], expected[mask], rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rotated", [False, True])
def test_nearest_ties_round_up(rotated: bool) -> None:
    data = np.arange(4 * 3 * 2, dtype=np.int32).reshape(4, 3, 2)
    linear = np.eye(3)[[0, 2, 1]] if rotated else np.eye(3)
    shape = (4, 2, 3) if rotated else (4, 3, 2)
    target = make_affine(linear, [0.5, 0.0, 0.0])  # half a voxel along i
    out = resample(
        data, np.eye(4), target_shape=shape, target_affine=target, interpolation="nearest", fill=-1
    )
    expected = np.full((4, 3, 2), -1, dtype=np.int32)
    expected[:3] = data[1:]
    if rotated:
        expected = expected.transpose(0, 2, 1)
    np.testing.assert_array_equal(out, expected)


# -- dtypes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", ["coarser", "oblique"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["uint8", "int16", "float16", "float32", ">f4", ">i2", "<i2"])
def test_output_dtypes(grid: str, kind: str, dtype: str) -> None:
    shape, target = GRIDS[grid]
    data = (source_data(seed=7) * 20 + 30).astype(dtype)
    if kind == "torch":
        data = data.astype(np.dtype(dtype).newbyteorder("="))
    array, extra = to_kind(data, kind)
    native = np.dtype(dtype).newbyteorder("=")
    floating = np.float32
    reference = scipy_reference(data.astype(np.float64), SOURCE_AFFINE, shape, target, order=1)
    linear = as_numpy(
        resample(array, SOURCE_AFFINE, target_shape=shape, target_affine=target, **extra), kind
    )
    assert linear.dtype == floating
    np.testing.assert_allclose(linear, reference, rtol=1e-4, atol=1e-3)

    nearest = as_numpy(
        resample(
            array,
            SOURCE_AFFINE,
            target_shape=shape,
            target_affine=target,
            interpolation="nearest",
            **extra,
        ),
        kind,
    )
    assert nearest.dtype.newbyteorder("=") == native
    expected = scipy_reference(data.astype(np.float64), SOURCE_AFFINE, shape, target, order=0)
    np.testing.assert_array_equal(nearest.astype(np.float64), expected)


def test_float64_stays_float64_and_float32_stays_float32() -> None:
    shape, target = GRIDS["oblique"]
    for dtype in (np.float32, np.float64):
        data = source_data().astype(dtype)
        for interpolation in ORDER:
            out = resample(
                data,
                SOURCE_AFFINE,
                target_shape=shape,
                target_affine=target,
                interpolation=interpolation,
            )
            assert out.dtype == dtype
            tensor = resample(
                torch.from_numpy(data),
                SOURCE_AFFINE,
                target_shape=shape,
                target_affine=target,
                interpolation=interpolation,
            )
            assert tensor.dtype == torch.from_numpy(data).dtype


def test_flipped_view_input() -> None:
    data = source_data(seed=8)
    view = data[::-1, :, ::-1]
    shape, target = GRIDS["oblique"]
    for kind in KINDS:
        array, extra = (
            to_kind(view, kind) if kind != "torch" else (torch.from_numpy(view.copy()), {})
        )
        out = as_numpy(
            resample(array, SOURCE_AFFINE, target_shape=shape, target_affine=target, **extra), kind
        )
        np.testing.assert_allclose(
            out,
            scipy_reference(view.copy(), SOURCE_AFFINE, shape, target, order=1),
            rtol=1e-10,
            atol=1e-12,
        )


# -- grid_for_spacing -------------------------------------------------------------------------


@pytest.mark.parametrize("new_spacing", [2.0, (0.7, 1.3, 2.9), (5.0, 5.0, 100.0), 0.5])
@pytest.mark.parametrize(
    "affine", [SOURCE_AFFINE, np.diag([-1.0, 1.0, 2.5, 1.0]), GRIDS["oblique"][1]]
)
def test_grid_for_spacing_keeps_the_centre_and_directions(
    new_spacing: Any, affine: np.ndarray
) -> None:
    shape = (9, 10, 11)
    new_shape, target = grid_for_spacing(shape, affine, new_spacing)
    wanted = np.broadcast_to(np.asarray(new_spacing, dtype=float), (3,))
    old = geometry.spacing(affine)
    expected_shape = tuple(
        max(1, round(n * o / s)) for n, o, s in zip(shape, old, wanted, strict=True)
    )
    assert new_shape == expected_shape
    assert all(isinstance(n, int) for n in new_shape)
    np.testing.assert_allclose(geometry.spacing(target), wanted, rtol=1e-12)
    np.testing.assert_allclose(
        geometry.direction_cosines(target), geometry.direction_cosines(affine), atol=1e-12
    )
    assert geometry.axcodes(target) == geometry.axcodes(affine)
    centre = apply_affine(affine, (np.asarray(shape) - 1) / 2)
    new_centre = apply_affine(target, (np.asarray(new_shape) - 1) / 2)
    np.testing.assert_allclose(new_centre, centre, atol=1e-9)
    np.testing.assert_array_equal(target[3], [0, 0, 0, 1])


def test_grid_for_spacing_accepts_a_4d_shape_and_rejects_bad_spacing() -> None:
    assert grid_for_spacing((2, 4, 6, 8), np.eye(4), 2.0)[0] == (2, 3, 4)
    for bad in (0.0, -1.0, np.nan, np.inf, (1.0, 0.0, 1.0)):
        with pytest.raises(GeometryError, match="spacing"):
            grid_for_spacing((4, 4, 4), np.eye(4), bad)
    with pytest.raises(GeometryError):
        grid_for_spacing((4, 4, 4), np.zeros((4, 4)), 1.0)


def test_docstring_example() -> None:
    data, affine = np.random.default_rng(9).random((8, 8, 8)).astype("f4"), np.eye(4)
    shape, target = grid_for_spacing((8, 8, 8), affine, (2.0, 2.0, 2.0))
    assert resample(data, affine, target_shape=shape, target_affine=target).shape == (4, 4, 4)


# -- errors -----------------------------------------------------------------------------------


def test_resample_rejects_bad_arguments() -> None:
    data = np.zeros((3, 3, 3))
    ok = {"target_shape": (2, 2, 2), "target_affine": np.eye(4)}
    with pytest.raises(GeometryError, match=r"\(I, J, K\)"):
        resample(np.zeros((3, 3)), np.eye(4), **ok)
    with pytest.raises(GeometryError, match=r"\(I, J, K\)"):
        resample(np.zeros((1, 1, 3, 3, 3)), np.eye(4), **ok)
    with pytest.raises(GeometryError, match="interpolation"):
        resample(data, np.eye(4), **ok, interpolation="bicubic")  # type: ignore[arg-type]
    with pytest.raises(GeometryError, match="target_shape"):
        resample(data, np.eye(4), target_shape=(2, 2), target_affine=np.eye(4))
    with pytest.raises(GeometryError, match="target_shape"):
        resample(data, np.eye(4), target_shape=(2, 0, 2), target_affine=np.eye(4))
    with pytest.raises(GeometryError, match="singular"):
        resample(data, np.diag([1.0, 0.0, 1.0, 1.0]), **ok)
    with pytest.raises(GeometryError, match="NaN"):
        resample(data, np.eye(4), target_shape=(2, 2, 2), target_affine=np.full((4, 4), np.nan))


# -- property: linear interpolation reproduces a linear field --------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    layout=st.sampled_from(["aligned", "flipped", "oblique"]),
    kind=st.sampled_from(KINDS),
    channels=st.sampled_from([None, 2]),
)
def test_linear_reproduces_a_linear_world_field(
    seed: int, layout: str, kind: str, channels: int | None
) -> None:
    rng = np.random.default_rng(seed)
    in_shape = tuple(int(n) for n in rng.integers(3, 9, 3))
    source = make_affine(
        Rotation.random(random_state=rng.integers(2**31)).as_matrix()
        @ np.diag(rng.uniform(0.5, 3.0, 3)),
        rng.uniform(-50, 50, 3),
    )
    new_spacing = rng.uniform(0.4, 3.0, 3)
    if layout == "oblique":
        directions = Rotation.random(random_state=rng.integers(2**31)).as_matrix()
    else:
        directions = geometry.direction_cosines(source)
        if layout == "flipped":
            directions = directions * rng.choice([-1.0, 1.0], 3)
    out_shape = tuple(int(n) for n in rng.integers(3, 9, 3))
    target = make_affine(directions * new_spacing, [0.0, 0.0, 0.0])
    # Centre the output grid on the input's centre, then jitter it.
    centre = apply_affine(source, (np.asarray(in_shape) - 1) / 2)
    target[:3, 3] = (
        centre - target[:3, :3] @ ((np.asarray(out_shape) - 1) / 2) + rng.uniform(-2, 2, 3)
    )

    slope, intercept = rng.uniform(-3, 3, 3), rng.uniform(-10, 10)
    world_in = apply_affine(source, np.indices(in_shape).reshape(3, -1).T)
    field = (world_in @ slope + intercept).reshape(in_shape)
    data = field if channels is None else np.stack([field, 2 * field - 1])

    array, extra = to_kind(data, kind)
    out = as_numpy(
        resample(array, source, target_shape=out_shape, target_affine=target, **extra), kind
    )
    mask = interior(source, in_shape, out_shape, target)
    world_out = apply_affine(target, np.indices(out_shape).reshape(3, -1).T)
    expected = (world_out @ slope + intercept).reshape(out_shape)
    scale = 1e-9 * (1 + np.abs(field).max())
    got = out if channels is None else out[0]
    np.testing.assert_allclose(got[mask], expected[mask], rtol=0, atol=scale)
    if channels is not None:
        np.testing.assert_allclose(out[1][mask], 2 * expected[mask] - 1, rtol=0, atol=3 * scale)


# -- CUDA -------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("interpolation", ORDER)
@pytest.mark.parametrize("grid", GRIDS)
def test_cuda_matches_cpu(interpolation: str, grid: str) -> None:
    shape, target = GRIDS[grid]
    data = source_data(channels=2, seed=10)
    cpu = resample(
        data, SOURCE_AFFINE, target_shape=shape, target_affine=target, interpolation=interpolation
    )
    via_device = resample(
        data,
        SOURCE_AFFINE,
        target_shape=shape,
        target_affine=target,
        interpolation=interpolation,
        device="cuda",
    )
    assert isinstance(via_device, np.ndarray)
    np.testing.assert_allclose(via_device, cpu, rtol=1e-6, atol=1e-9)

    tensor = torch.from_numpy(data).cuda()
    on_gpu = resample(
        tensor, SOURCE_AFFINE, target_shape=shape, target_affine=target, interpolation=interpolation
    )
    assert on_gpu.device == tensor.device
    np.testing.assert_allclose(on_gpu.cpu().numpy(), cpu, rtol=1e-6, atol=1e-9)

    labels = (data[0] * 3).astype(np.int16)
    on_gpu = resample(
        torch.from_numpy(labels).cuda(),
        SOURCE_AFFINE,
        target_shape=shape,
        target_affine=target,
        interpolation="nearest",
    )
    np.testing.assert_array_equal(
        on_gpu.cpu().numpy(),
        resample(
            labels, SOURCE_AFFINE, target_shape=shape, target_affine=target, interpolation="nearest"
        ),
    )


@pytest.mark.parametrize("interpolation", ["nearest", "linear"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_whole_voxel_grids_are_exact_and_never_alias_the_input(
    interpolation: Interpolation, backend: str
) -> None:
    # Every other voxel along i, a flip along j, unchanged k: no interpolation is needed,
    # so the fast path uses strided views — but the result must still be a new array.
    data = np.random.default_rng(5).random((6, 8, 5)).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    target = np.array([[2.0, 0, 0, 0], [0, -1.0, 0, 7], [0, 0, 1.0, 0], [0, 0, 0, 1]])
    expected = data[::2, ::-1, :]
    source = data if backend == "numpy" else torch.from_numpy(data.copy())
    out = resample(
        source, affine, target_shape=(3, 8, 5), target_affine=target, interpolation=interpolation
    )
    result = out if backend == "numpy" else out.numpy()
    np.testing.assert_array_equal(result, expected)
    result[...] = -1.0
    original = source if backend == "numpy" else source.numpy()
    assert not np.any(original == -1.0)
