"""Tests of brrrr.preprocess.neurovfm.prepare against an independent float64 reference (nibabel + scipy)."""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel import orientations
from scipy import ndimage

from brrrr.core import Volume, samples, save_volume
from brrrr.preprocess.errors import PreparationError
from brrrr.preprocess.neurovfm._ops import NumpyOps, order_statistics, sorted_percentiles
from brrrr.preprocess.neurovfm.prepare import load_image, prepare_array, prepare_for_inference
from brrrr.preprocess.neurovfm.settings import CT_WINDOWS, Mode, PrepareSettings, find_slice_axis

LAYOUT = {2: (2, 1, 0), 1: (1, 2, 0), 0: (0, 1, 2)}


def reference(
    volume: Volume, mode: Mode, slice_axis: int, settings: PrepareSettings | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The documented steps in float64 with nibabel's orientation code and scipy's interpolation.

    ``slice_axis`` is an RPI axis. Returns ``(img (C, D, H, W), mask (D, H, W))``.
    """
    settings = settings or PrepareSettings()
    data = np.asarray(volume.data, dtype=np.float64)
    transform = orientations.ornt_transform(
        orientations.io_orientation(volume.affine), orientations.axcodes2ornt("RPI")
    )
    rpi = orientations.apply_orientation(data, transform)
    rpi_affine = volume.affine @ orientations.inv_ornt_aff(transform, data.shape)
    old = np.sqrt((rpi_affine[:3, :3] ** 2).sum(axis=0))
    new = np.full(3, settings.in_plane_mm)
    new[slice_axis] = settings.through_plane_mm
    axes = LAYOUT[slice_axis]
    positions = []
    for out_axis, axis in enumerate(axes):
        n = rpi.shape[axis]
        n_out = max(1, round(n * old[axis] / new[axis]))
        m = settings.divisible_by[out_axis]
        fit = n_out // m * m
        start = (n_out - fit) // 2
        o = np.arange(start, start + fit, dtype=np.float64)
        # Same field-of-view centre; samples within half a voxel outside take the edge value.
        p = (o - (n_out - 1) / 2) * new[axis] / old[axis] + (n - 1) / 2
        assert p.min() >= -0.5
        assert p.max() <= n - 0.5
        positions.append(np.clip(p, 0, n - 1))
    grid = np.meshgrid(*positions, indexing="ij")
    coords: list[Any] = [None, None, None]
    for out_axis, axis in enumerate(axes):
        coords[axis] = grid[out_axis]
    x = ndimage.map_coordinates(rpi, np.stack(coords), order=1, mode="nearest")
    if mode == "mri":
        lo, hi, fg = np.percentile(x, [*settings.mri_percentiles, settings.foreground_percentile])
        return ((np.clip(x, lo, hi) - lo) / (hi - lo))[None], x > fg
    windows = [
        (np.clip(x, level - width / 2, level + width / 2) - (level - width / 2)) / width
        for width, level in CT_WINDOWS.values()
    ]
    return np.stack(windows), x > settings.foreground_hu


def assert_matches(img: np.ndarray, mask: np.ndarray, ref: tuple[np.ndarray, np.ndarray]) -> None:
    ref_img, ref_mask = ref
    assert img.dtype == np.float32
    assert mask.dtype == np.bool_
    assert img.shape == ref_img.shape
    assert mask.shape == ref_mask.shape
    assert np.abs(img - ref_img).max() <= 1e-5
    assert np.array_equal(mask, ref_mask)
    assert img.min() >= 0.0
    assert img.max() <= 1.0


@pytest.fixture(scope="module")
def t1() -> Volume:
    # 0.5 → 1 mm in-plane and 2 → 4 mm across slices: weights 1/2, exact in float32 too, so the
    # foreground mask must agree voxel for voxel.
    return samples.phantom(shape=(72, 80, 22), spacing=(0.5, 0.5, 2.0), axcodes="LAS", seed=3)


@pytest.mark.parametrize("mode", ["mri", "ct"])
def test_matches_float64_reference(t1: Volume, mode: Mode) -> None:
    volume = t1
    if mode == "ct":
        volume = samples.phantom(
            shape=(80, 22, 72), spacing=(0.5, 2.0, 0.5), axcodes="PIR", modality="ct", seed=4
        )
    img, mask, view = prepare_for_inference(volume, mode=mode)
    assert view.plane == "axial"
    assert view.index == 0
    assert img.shape == ((1,) if mode == "mri" else (3,)) + (8, 32, 32)
    assert_matches(img, mask, reference(volume, mode, slice_axis=2))


def test_upsampling_and_coronal_match_reference() -> None:
    # 2 mm in-plane → 1 mm (weights 1/4, 3/4), coronal slices 5 → 4 mm (weights in fifths).
    volume = samples.phantom(shape=(40, 36, 13), spacing=(2.0, 2.0, 5.0), axcodes="RSA", seed=5)
    img, mask, view = prepare_for_inference(volume, mode="mri")
    assert view.plane == "coronal"
    assert view.axes == (1, 2, 0)
    ref_img, ref_mask = reference(volume, "mri", slice_axis=1)
    assert np.abs(img - ref_img).max() <= 1e-5
    # Non-dyadic weights: float32 may round a voxel across the threshold; allow a handful.
    assert (mask != ref_mask).mean() < 1e-4


def test_oblique_volume_matches_reference(t1: Volume) -> None:
    angle = np.deg2rad(8.0)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    oblique = Volume(t1.data, rotation @ t1.affine)
    img, mask, _ = prepare_for_inference(oblique, mode="mri")
    assert_matches(img, mask, reference(oblique, "mri", slice_axis=2))


@pytest.mark.parametrize("code", ["RAS", "LPS", "IRP", "ASL"])
def test_result_does_not_depend_on_stored_orientation(t1: Volume, code: str) -> None:
    expected = prepare_for_inference(t1, mode="mri")
    img, mask, view = prepare_for_inference(t1.reorient(code), mode="mri")
    assert np.array_equal(img, expected[0])
    assert np.array_equal(mask, expected[1])
    np.testing.assert_allclose(view.affine, expected[2].affine, atol=1e-9)


def test_view_affine_maps_output_voxels_to_world(t1: Volume) -> None:
    _, _, view = prepare_for_inference(t1, mode="mri")
    # d goes inferior at 4 mm, h posterior at 1 mm, w right at 1 mm.
    np.testing.assert_allclose(np.abs(view.affine[:3, :3]).sum(axis=0), [4.0, 1.0, 1.0])
    assert view.affine[2, 0] < 0
    assert view.affine[1, 1] < 0
    assert view.affine[0, 2] > 0
    # The field-of-view centre stays put (the cropped grid is centred too).
    centre_out = view.affine @ np.r_[(np.asarray(view.shape) - 1) / 2, 1]
    centre_in = t1.affine @ np.r_[(np.asarray(t1.shape) - 1) / 2, 1]
    assert np.abs(centre_out - centre_in).max() <= 2.0


@pytest.mark.parametrize("mode", ["mri", "ct"])
def test_torch_cpu_equals_numpy(t1: Volume, mode: Mode) -> None:
    img, mask, view = prepare_for_inference(t1, mode=mode)
    timg, tmask, tview = prepare_for_inference(t1, mode=mode, device="cpu")
    assert isinstance(timg, torch.Tensor)
    assert timg.dtype == torch.float32
    assert tmask.dtype == torch.bool
    assert np.abs(timg.numpy() - img).max() <= 1e-6
    assert np.array_equal(tmask.numpy(), mask)
    assert tview == view


def test_torch_input_with_negative_strides(t1: Volume) -> None:
    flipped = t1.reorient("RPI")  # a numpy view with negative strides
    assert min(flipped.data.strides) < 0
    expected = prepare_for_inference(t1, mode="mri")
    img, _mask, _ = prepare_for_inference(flipped, mode="mri", device="cpu")
    assert np.abs(img.numpy() - expected[0]).max() <= 1e-6
    img2, _, _ = prepare_array(
        torch.from_numpy(np.ascontiguousarray(t1.data)), t1.affine, mode="mri"
    )
    assert np.abs(img2.numpy() - expected[0]).max() <= 1e-6


def test_batch_equals_one_at_a_time(t1: Volume) -> None:
    other = samples.phantom(
        shape=t1.shape, spacing=(0.5, 0.5, 2.0), axcodes="LAS", seed=9, noise=0.1
    )
    img, mask, _view = prepare_for_inference([t1, other], mode="mri")
    assert img.shape[:2] == (2, 1)
    assert mask.shape[0] == 2
    for b, volume in enumerate((t1, other)):
        single = prepare_for_inference(volume, mode="mri")
        assert np.array_equal(img[b], single[0])
        assert np.array_equal(mask[b], single[1])
    stacked = Volume(np.stack([t1.data, other.data]), t1.affine)
    assert np.array_equal(prepare_for_inference(stacked, mode="mri")[0], img)
    timg, _, _ = prepare_for_inference(stacked, mode="mri", device="cpu")
    assert np.abs(timg.numpy() - img).max() <= 1e-6


def test_batch_on_different_grids_is_refused(t1: Volume) -> None:
    other = samples.phantom(shape=(70, 80, 22), spacing=(0.5, 0.5, 2.0))
    with pytest.raises(PreparationError, match="share one grid"):
        prepare_for_inference([t1, other], mode="mri")


@pytest.mark.parametrize(
    ("spacing", "expected"),
    [
        ((1.0, 1.0, 5.0), 2),
        ((0.9, 6.0, 0.9), 1),
        ((4.0, 0.5, 0.5), 0),
        ((1.0, 1.0, 1.0), 0),  # isotropic → sagittal, as NeuroVFM
        ((1.0, 1.0, 1.15), 0),  # near-isotropic (within 20 %)
        ((1.0, 1.0, 1.3), 2),
        ((0.5, 3.0, 3.0), 2),  # exact tie → axial
    ],
)
def test_find_slice_axis(spacing: tuple[float, float, float], expected: int) -> None:
    assert find_slice_axis(spacing) == expected


def test_isotropic_plane_and_overrides() -> None:
    iso = samples.phantom(shape=(40, 48, 40), spacing=4.0, axcodes="LPS")
    assert prepare_for_inference(iso, mode="mri")[2].plane == "sagittal"
    settings = PrepareSettings(isotropic_plane="axial", divisible_by=(4, 16, 16))
    assert prepare_for_inference(iso, mode="mri", settings=settings)[2].plane == "axial"
    assert prepare_for_inference(iso, mode="mri", slice_axis="coronal")[2].plane == "coronal"
    # An int names an axis of the stored array: LPS axis 2 is S-I, i.e. axial.
    img, _, view = prepare_for_inference(iso, mode="mri", slice_axis=2)
    assert view.plane == "axial"
    assert view.slice_axis == 2
    assert img.shape == (1, 40, 192, 160)


def test_pad_keeps_the_whole_field_of_view(t1: Volume) -> None:
    settings = PrepareSettings(fit="pad")
    img, mask, view = prepare_for_inference(t1, mode="mri", settings=settings)
    # 36×40 in-plane and 11 slices pad to 48×48 and 12.
    assert img.shape == (1, 12, 48, 48)
    assert view.shape == (12, 48, 48)
    # Offsets (0, 4, 6) before, (1, 4, 6) after; the padding is 0 and background.
    interior = np.zeros((12, 48, 48), dtype=bool)
    interior[0:11, 4:44, 6:42] = True
    assert img[0][~interior].max() == 0
    assert not mask[~interior].any()
    assert img[0][interior].max() == 1.0
    assert img[0][interior].min() == 0.0
    # The padded grid's affine still puts the field-of-view centre in place.
    centre_in = t1.affine @ np.r_[(np.asarray(t1.shape) - 1) / 2, 1]
    centre_out = view.affine @ np.r_[(np.asarray(view.shape) - 1) / 2, 1]
    assert np.abs(centre_out - centre_in).max() <= 4.0


def test_non_finite_voxels_are_background() -> None:
    volume = samples.phantom(shape=(32, 32, 8), spacing=(1.0, 1.0, 4.0))
    data = volume.data.astype(np.float32)
    data[:4] = np.nan
    data[-2:] = np.inf
    img, mask, _ = prepare_for_inference(Volume(data, volume.affine), mode="mri")
    assert np.isfinite(img).all()
    assert not mask[:, :, -1].any()


def test_errors_name_the_problem(tmp_path) -> None:
    small = samples.phantom(shape=(10, 10, 3), spacing=(1.0, 1.0, 4.0))
    path = tmp_path / "tiny.nii.gz"
    save_volume(small, path)
    with pytest.raises(PreparationError, match=r"tiny\.nii\.gz.*too small.*fit='pad'"):
        prepare_for_inference(load_image(path), mode="mri")
    assert prepare_for_inference(small, mode="mri", settings=PrepareSettings(fit="pad"))[
        0
    ].shape == (
        1,
        4,
        16,
        16,
    )
    with pytest.raises(PreparationError, match="mode"):
        prepare_for_inference(small, mode="pet")  # type: ignore[arg-type]
    with pytest.raises(PreparationError, match="slice_axis"):
        prepare_for_inference(small, mode="mri", slice_axis="oblique")  # type: ignore[arg-type]
    with pytest.raises(PreparationError, match="fit"):
        PrepareSettings(fit="stretch")  # type: ignore[arg-type]


def test_load_image_reads_nifti(tmp_path, t1: Volume) -> None:
    path = tmp_path / "t1.nii.gz"
    save_volume(t1, path)
    loaded = load_image(path)
    assert np.array_equal(loaded.data, t1.data)
    np.testing.assert_allclose(loaded.affine, t1.affine, atol=1e-5)
    assert isinstance(nib.load(path), nib.Nifti1Image)


def test_settings_as_dict_round_trips() -> None:
    settings = PrepareSettings(fit="pad", foreground_percentile=5.0)
    doc = settings.as_dict()
    assert doc["divisible_by"] == [4, 16, 16]
    args: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()}
    assert PrepareSettings(**args) == settings


@pytest.mark.parametrize("values", ["noise", "ties", "negative"])
def test_percentile_kernels_equal_numpy(values: str) -> None:
    rng = np.random.default_rng(0)
    data = {
        "noise": rng.rayleigh(50.0, size=(2, 30_011)),
        "ties": rng.integers(0, 5, size=(2, 30_011)).astype(np.float64),
        "negative": rng.normal(-3.0, 100.0, size=(2, 30_011)),
    }[values].astype(np.float32)
    qs = (0.0, 0.5, 10.0, 50.0, 99.5, 100.0)
    expected = np.percentile(data.astype(np.float64), qs, axis=1).T
    np.testing.assert_allclose(NumpyOps().percentiles(data, qs), expected, rtol=0, atol=1e-9)
    # The CUDA path (a sort), run on the CPU here.
    sorted_ = sorted_percentiles(torch.from_numpy(data), qs)
    np.testing.assert_allclose(sorted_, expected, rtol=0, atol=1e-9)
    ranks = [0, 7, 30_010, 15_000]
    stats = order_statistics(data[0], ranks)
    assert [stats[r] for r in ranks] == [float(v) for v in np.sort(data[0])[ranks]]
