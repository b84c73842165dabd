"""NIfTI reading and writing, against nibabel as the reference."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brrrr.core import Volume, load_volume, save_volume
from brrrr.core.errors import (
    UnsupportedFormatError,
    VolumeReadError,
    VolumeTooLargeError,
    VolumeWriteError,
)
from brrrr.core.testing import write_broken_nifti, write_nifti

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def _nibabel_layout(volume: Volume) -> np.ndarray:
    """Our (C, I, J, K) back to nibabel's (I, J, K, C)."""
    return volume.data if volume.data.ndim == 3 else np.moveaxis(volume.data, 0, -1)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", ["u1", "i2", "u2", "i4", "f4", "f8", ">i2", ">f4"])
def test_read_matches_nibabel(tmp_path: Path, suffix: str, dtype: str) -> None:
    rng = np.random.default_rng(3)
    data = (rng.normal(size=(7, 8, 9)) * 50 + 100).astype(dtype)
    affine = np.array([[0, 0, 2.5, -10], [-1.5, 0, 0, 20], [0, 3.0, 0, 5], [0, 0, 0, 1]])
    path = tmp_path / f"img{suffix}"
    nib.save(nib.Nifti1Image(data, affine), path)
    volume = load_volume(path)
    reference = nib.load(path)
    np.testing.assert_array_equal(volume.data, np.asanyarray(reference.dataobj))
    np.testing.assert_allclose(volume.affine, reference.affine)
    assert volume.dtype == np.dtype(dtype).newbyteorder("=")
    assert volume.data.flags.writeable
    assert volume.axcodes == "".join(nib.aff2axcodes(reference.affine))
    assert volume.metadata["compressed"] is (suffix == ".nii.gz")


def test_scaled_data_matches_nibabel_fdata(tmp_path: Path) -> None:
    data = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.set_slope_inter(0.5, -3.0)
    path = tmp_path / "scaled.nii.gz"
    nib.save(image, path)
    volume = load_volume(path)
    assert volume.dtype == np.float32
    np.testing.assert_allclose(volume.data, nib.load(path).get_fdata(), rtol=1e-6)
    assert volume.metadata["scl_slope"] == 0.5
    assert volume.metadata["scl_inter"] == -3.0


def test_dtype_conversion_on_read(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "x.nii.gz")
    volume = load_volume(path, dtype="float32")
    assert volume.dtype == np.float32
    np.testing.assert_array_equal(volume.data, nib.load(path).get_fdata(dtype=np.float32))


def test_example4d_channels_first() -> None:
    path = NIBABEL_DATA / "example4d.nii.gz"
    volume = load_volume(path)
    reference = nib.load(path)
    assert volume.data.shape == (2, 128, 96, 24)
    assert volume.shape == (128, 96, 24)
    assert volume.channels == 2
    np.testing.assert_array_equal(np.moveaxis(volume.data, 0, -1), np.asanyarray(reference.dataobj))
    np.testing.assert_allclose(volume.affine, reference.affine)


def test_five_dimensional_axes_flatten_to_channels(tmp_path: Path) -> None:
    data = np.arange(3 * 4 * 5 * 2 * 3, dtype=np.float32).reshape(3, 4, 5, 2, 3)
    path = tmp_path / "vec.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    volume = load_volume(path)
    assert volume.data.shape == (6, 3, 4, 5)
    # Channels follow the 4th axis fastest (Fortran order), as Volume.from_nibabel does.
    np.testing.assert_array_equal(volume.data, Volume.from_nibabel(nib.load(path)).data)
    np.testing.assert_array_equal(volume.data[1], data[..., 1, 0])
    np.testing.assert_array_equal(volume.data[2], data[..., 0, 1])


def test_two_dimensional_image_gets_a_unit_axis(tmp_path: Path) -> None:
    path = tmp_path / "slice.nii"
    nib.save(nib.Nifti1Image(np.ones((6, 5), dtype=np.uint8), np.eye(4)), path)
    assert load_volume(path).shape == (6, 5, 1)


def test_nifti2_round_trip(tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((6, 5, 4)).astype(np.float32)
    path = tmp_path / "two.nii.gz"
    nib.save(nib.Nifti2Image(data, np.diag([1.0, 2.0, 3.0, 1.0])), path)
    volume = load_volume(path)
    assert volume.metadata["format"] == "nifti2"
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.spacing, (1.0, 2.0, 3.0))


def test_qform_used_when_no_sform(tmp_path: Path) -> None:
    affine = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])
    image = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), None)
    image.set_qform(affine, code=1)
    image.set_sform(None, code=0)
    path = tmp_path / "q.nii"
    nib.save(image, path)
    volume = load_volume(path)
    np.testing.assert_allclose(volume.affine, affine)
    assert volume.metadata["affine_source"] == "qform"


def test_micron_units_converted_to_mm(tmp_path: Path) -> None:
    image = nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.diag([0.99, 0.99, 5.0, 1.0]))
    image.header.set_xyzt_units("micron")
    path = tmp_path / "um.nii.gz"
    nib.save(image, path)
    volume = load_volume(path)
    np.testing.assert_allclose(volume.spacing, (0.00099, 0.00099, 0.005))
    assert volume.metadata["spatial_unit_on_disk"] == "micron"


def test_nan_and_inf_loaded_and_reported(tmp_path: Path) -> None:
    data = np.ones((4, 5, 6), dtype=np.float32)
    data[0, 0, 0], data[1, 1, 1], data[2, 2, 2] = np.nan, np.inf, -np.inf
    path = write_nifti(tmp_path / "nan.nii.gz", data)
    volume = load_volume(path)
    assert np.isnan(volume.data[0, 0, 0])
    assert volume.metadata["nonfinite_voxels"] == 3


def test_bytes_input(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "x.nii.gz")
    volume = load_volume(path.read_bytes())
    np.testing.assert_array_equal(volume.data, np.asanyarray(nib.load(path).dataobj))
    assert volume.source is None


def test_multi_member_gzip(tmp_path: Path) -> None:
    raw = nib.Nifti1Image(np.arange(120, dtype=np.int16).reshape(4, 5, 6), np.eye(4)).to_bytes()
    path = tmp_path / "members.nii.gz"
    path.write_bytes(gzip.compress(raw[:500]) + gzip.compress(raw[500:]))
    np.testing.assert_array_equal(
        load_volume(path).data, np.arange(120, dtype=np.int16).reshape(4, 5, 6)
    )


# -- bad input: each fault has its own error, naming the file -------------------------------
@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("truncated_gzip", VolumeReadError, "truncated"),
        ("corrupt_gzip", VolumeReadError, "corrupt gzip"),
        ("wrong_magic", VolumeReadError, "magic"),
        ("singular_affine", VolumeReadError, "singular"),
        ("nonfinite_affine", VolumeReadError, "NaN or Inf"),
        ("zero_dim", VolumeReadError, "zero-length"),
        ("truncated_data", VolumeReadError, "truncated"),
        ("not_an_image", UnsupportedFormatError, "unrecognised"),
        ("empty", VolumeReadError, "empty"),
    ],
)
def test_broken_files_raise_named_errors(
    tmp_path: Path, kind: str, error: type, words: str
) -> None:
    path = write_broken_nifti(tmp_path / f"{kind}.nii.gz", kind)  # type: ignore[arg-type]
    with pytest.raises(error) as info:
        load_volume(path)
    assert str(path) in str(info.value)
    assert words in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VolumeReadError, match="no such file"):
        load_volume(tmp_path / "nope.nii.gz")


def test_max_voxels_refused_before_allocation(tmp_path: Path) -> None:
    # A header declaring 2**40 voxels with almost no data: refusing it must not try
    # to allocate terabytes (it would raise MemoryError or hang instead).
    header = nib.Nifti1Header()
    header.set_data_shape((1 << 14, 1 << 13, 1 << 13))
    header.set_data_dtype(np.int16)
    header["vox_offset"] = 352
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(header.binaryblock + b"\x00" * 4 + b"\x00" * 1000))
    with pytest.raises(VolumeTooLargeError, match="max_voxels"):
        load_volume(path)
    small = write_nifti(tmp_path / "small.nii", shape=(8, 9, 10))
    with pytest.raises(VolumeTooLargeError):
        load_volume(small, max_voxels=100)
    assert load_volume(small, max_voxels=720).shape == (8, 9, 10)


# -- writing --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["out.nii", "out.nii.gz", "out.mgz", "out.mgh"])
def test_save_round_trip(tmp_path: Path, name: str) -> None:
    data = np.random.default_rng(1).integers(-100, 100, size=(2, 6, 7, 8)).astype(np.int16)
    affine = np.array([[0, -1.5, 0, 10], [2.0, 0, 0, -5], [0, 0, 2.5, 3], [0, 0, 0, 1]])
    volume = Volume(data, affine)
    path = save_volume(volume, tmp_path / name)
    back = load_volume(path)
    np.testing.assert_array_equal(back.data, data)
    np.testing.assert_allclose(back.affine, affine, atol=1e-5)
    if name.startswith("out.nii"):
        reference = nib.load(path)
        np.testing.assert_array_equal(np.asanyarray(reference.dataobj), np.moveaxis(data, 0, -1))


def test_save_reoriented_view_and_bool(tmp_path: Path) -> None:
    data = np.random.default_rng(2).random((5, 6, 7)) > 0.5
    volume = Volume(data, np.eye(4)).reorient("LPI")
    back = load_volume(save_volume(volume, tmp_path / "mask.nii.gz"))
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back.data, volume.data.astype(np.uint8))
    np.testing.assert_allclose(back.affine, volume.affine)
    assert back.axcodes == "LPI"


def test_save_refuses_unknown_extension_and_dtype(tmp_path: Path) -> None:
    volume = Volume(np.zeros((2, 2, 2), np.float32), np.eye(4))
    with pytest.raises(VolumeWriteError, match="extension"):
        save_volume(volume, tmp_path / "x.png")
    with pytest.raises(VolumeWriteError, match="complex"):
        save_volume(Volume(np.zeros((2, 2, 2), np.complex64), np.eye(4)), tmp_path / "c.nii")
    with pytest.raises(VolumeWriteError, match="does not exist"):
        save_volume(volume, tmp_path / "missing" / "x.nii")


def test_save_is_atomic_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "vol.nii.gz"
    save_volume(Volume(np.ones((3, 3, 3), np.int16), np.eye(4)), target)
    before = target.read_bytes()

    def crash(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", crash)
    with pytest.raises(VolumeWriteError, match="No space left"):
        save_volume(Volume(np.zeros((30, 30, 30), np.int16), np.eye(4)), target)
    assert target.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.nii.gz"]  # no temporary left


def test_metadata_survives_save(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "x.nii.gz")
    volume = load_volume(path)
    volume.metadata["descrip"] = "brrrr test"
    back = load_volume(save_volume(volume, tmp_path / "y.nii.gz"))
    assert back.metadata["descrip"] == "brrrr test"
    assert back.metadata["sform_code"] == volume.metadata["sform_code"]
