"""``load_and_prepare`` (slab by slab, while the file inflates) against the two-step path."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brrrr.core import Volume, samples, save_volume
from brrrr.core.errors import VolumeReadError
from brrrr.core.testing import write_broken_nifti
from brrrr.preprocess.errors import PreparationError
from brrrr.preprocess.neurovfm._stream import SortedRuns, merged_order_statistics
from brrrr.preprocess.neurovfm.prepare import load_and_prepare, load_image, prepare_for_inference
from brrrr.preprocess.neurovfm.settings import Mode, PrepareSettings

PAD = PrepareSettings(fit="pad")

# (shape, spacing, axcodes): which output axis the stored K axis becomes, and how it is sampled.
GRIDS = {
    # K is S-I → D, 2 → 4 mm (weights 1/2); in-plane 0.5 → 1 mm.
    "k_to_d": ((72, 80, 22), (0.5, 0.5, 2.0), "LAS"),
    # K is L-R → W at 0.5 → 1 mm.
    "k_to_w": ((22, 80, 72), (2.0, 0.5, 0.5), "SAL"),
    # K is A-P → H, 2 → 1 mm (upsampled): its pass runs after the D and W passes.
    "k_to_h_last": ((72, 22, 40), (0.5, 2.0, 2.0), "LSP"),
    # K is A-P → D (coronal), 5 → 4 mm; in-plane 2 → 1 mm runs after it.
    "k_to_d_upsampled": ((40, 36, 13), (2.0, 2.0, 5.0), "RSA"),
    # K is S-I → D, 5 → 4 mm; in-plane 0.5 → 1 mm runs before it.
    "k_to_d_after_in_plane": ((72, 80, 13), (0.5, 0.5, 5.0), "LAS"),
    # K is A-P → H at 1 mm: a reversed slice, a view.
    "k_is_a_view": ((12, 40, 48), (4.0, 1.0, 1.0), "IRA"),
}


def _assert_same(got: tuple, expected: tuple) -> None:
    img, mask, view = got
    assert isinstance(img, np.ndarray)
    assert img.dtype == np.float32
    assert mask.dtype == np.bool_
    assert np.array_equal(img, expected[0])
    assert np.array_equal(mask, expected[1])
    assert view == expected[2]
    np.testing.assert_array_equal(view.affine, expected[2].affine)


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("mode", ["mri", "ct"])
@pytest.mark.parametrize("settings", [PrepareSettings(), PAD], ids=["crop", "pad"])
def test_equals_load_image_then_prepare(
    tmp_path: Path, grid: str, mode: Mode, settings: PrepareSettings
) -> None:
    shape, spacing, axcodes = GRIDS[grid]
    volume = samples.phantom(
        shape=shape, spacing=spacing, axcodes=axcodes, modality="t1" if mode == "mri" else "ct"
    )
    path = save_volume(volume, tmp_path / "x.nii.gz")
    expected = prepare_for_inference(load_image(path), mode=mode, settings=settings)
    _assert_same(load_and_prepare(path, mode=mode, settings=settings), expected)


@pytest.mark.parametrize("slice_axis", ["axial", "coronal", "sagittal", 0])
def test_slice_axis_overrides(tmp_path: Path, slice_axis: int | str) -> None:
    volume = samples.phantom(shape=(40, 48, 36), spacing=1.5, axcodes="LPS")
    path = save_volume(volume, tmp_path / "x.nii.gz")
    expected = prepare_for_inference(
        load_image(path), mode="mri", slice_axis=slice_axis, settings=PAD
    )
    got = load_and_prepare(path, mode="mri", slice_axis=slice_axis, settings=PAD)  # type: ignore[arg-type]
    _assert_same(got, expected)


def test_float_voxels_with_nan_and_scaled_integers(tmp_path: Path) -> None:
    volume = samples.phantom(shape=(72, 80, 22), spacing=(0.5, 0.5, 2.0), axcodes="LAS")
    data = volume.data.astype(np.float32)
    data[:5] = np.nan
    data[-3:, :, 4] = np.inf
    path = save_volume(Volume(data, volume.affine), tmp_path / "nan.nii.gz")
    expected = prepare_for_inference(load_image(path), mode="mri")
    _assert_same(load_and_prepare(path, mode="mri"), expected)

    image = volume.to_nibabel()
    image.header.set_slope_inter(0.25, 7.0)
    scaled = tmp_path / "scaled.nii.gz"
    nib.save(image, scaled)
    expected = prepare_for_inference(load_image(scaled), mode="mri", settings=PAD)
    _assert_same(load_and_prepare(scaled, mode="mri", settings=PAD), expected)


def test_other_inputs_take_the_two_step_path(tmp_path: Path) -> None:
    volume = samples.phantom(shape=(40, 48, 12), spacing=(1.0, 1.0, 4.0))
    mgz = save_volume(volume, tmp_path / "x.mgz")
    expected = prepare_for_inference(load_image(mgz), mode="mri")
    _assert_same(load_and_prepare(mgz, mode="mri"), expected)
    # Uncompressed NIfTI: decoded at once, then prepared slab by slab all the same.
    _assert_same(load_and_prepare(save_volume(volume, tmp_path / "x.nii"), mode="mri"), expected)
    # A 4-D image is a batch.
    batch = Volume(np.stack([volume.data, volume.data[::-1]]), volume.affine)
    four_d = save_volume(batch, tmp_path / "b.nii.gz")
    img, mask, _ = load_and_prepare(four_d, mode="mri")
    reference = prepare_for_inference(load_image(four_d), mode="mri")
    assert img.shape[:2] == (2, 1)
    assert np.array_equal(img, reference[0])
    assert np.array_equal(mask, reference[1])
    # A torch device.
    nii = save_volume(volume, tmp_path / "x.nii.gz")
    timg, tmask, _ = load_and_prepare(nii, mode="mri", device="cpu")
    assert isinstance(timg, torch.Tensor)
    assert np.array_equal(timg.numpy(), prepare_for_inference(volume, mode="mri", device="cpu")[0])
    assert np.array_equal(tmask.numpy(), expected[1])


@pytest.mark.parametrize(
    ("kind", "words"),
    [("truncated_gzip", "truncated"), ("corrupt_gzip", "corrupt gzip"), ("empty", "empty")],
)
def test_broken_files_raise_named_errors(tmp_path: Path, kind: str, words: str) -> None:
    path = write_broken_nifti(tmp_path / f"{kind}.nii.gz", kind)  # type: ignore[arg-type]
    with pytest.raises(VolumeReadError, match=words) as info:
        load_and_prepare(path, mode="mri", settings=PAD)
    assert str(path) in str(info.value)


def test_a_bad_checksum_is_found_after_the_last_slab(tmp_path: Path) -> None:
    # Every slab can be computed before the trailer is read: the error must still surface.
    volume = samples.phantom(shape=(72, 80, 22), spacing=(0.5, 0.5, 2.0))
    path = save_volume(volume, tmp_path / "crc.nii.gz")
    blob = bytearray(path.read_bytes())
    blob[-6] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(VolumeReadError, match="corrupt gzip") as info:
        load_and_prepare(path, mode="mri")
    assert str(path) in str(info.value)


def test_bad_mode_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(PreparationError, match="mode"):
        load_and_prepare(tmp_path / "missing.nii.gz", mode="pet")  # type: ignore[arg-type]
    with pytest.raises(VolumeReadError, match="no such file"):
        load_and_prepare(tmp_path / "missing.nii.gz", mode="mri")


def test_too_small_to_crop_names_the_file(tmp_path: Path) -> None:
    path = save_volume(
        samples.phantom(shape=(10, 10, 3), spacing=(1.0, 1.0, 4.0)), tmp_path / "tiny.nii.gz"
    )
    with pytest.raises(PreparationError, match=r"tiny\.nii\.gz.*too small.*fit='pad'"):
        load_and_prepare(path, mode="mri")


@pytest.mark.parametrize("values", ["noise", "ties", "negative"])
@pytest.mark.parametrize("stride", [1, 4, 64])
def test_merged_order_statistics_equal_a_sort(values: str, stride: int) -> None:
    rng = np.random.default_rng(1)
    data = {
        "noise": rng.rayleigh(50.0, size=20_011),
        "ties": rng.integers(0, 5, size=20_011).astype(np.float64),
        "negative": rng.normal(-3.0, 100.0, size=20_011),
    }[values].astype(np.float32)
    cuts = np.sort(rng.choice(data.size, size=37, replace=False))
    runs = [np.sort(part) for part in np.split(data, cuts)]
    ranks = [0, 1, 99, 2000, 10_005, 19_999, 20_010]
    ordered = np.sort(data)
    stats = merged_order_statistics(runs, ranks, stride=stride)
    assert [stats[r] for r in ranks] == [float(ordered[r]) for r in ranks]
    sorted_runs = SortedRuns(data.size, run=1000)
    for part in np.split(data, cuts):
        sorted_runs.add(part)
    qs = (0.0, 0.5, 10.0, 50.0, 99.5, 100.0)
    np.testing.assert_array_equal(
        sorted_runs.percentiles(qs), np.percentile(data.astype(np.float64), qs)
    )
