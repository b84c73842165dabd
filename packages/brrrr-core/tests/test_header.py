"""read_header: the shape, affine and dtype load_volume gives, against nibabel's header, from
the header alone (damaged voxel data does not matter); damaged headers are named."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brrrr.core import load_volume, save_volume
from brrrr.core.errors import UnsupportedFormatError, VolumeReadError
from brrrr.core.io import VolumeHeader, read_header
from brrrr.core.testing import write_broken_nifti, write_dicom_series, write_nifti
from brrrr.core.volume import Volume

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
OBLIQUE = np.array(
    [[0.0, 0.0, -1.5, 90.0], [2.0, 0.0, 0.0, -100.0], [0.0, 3.0, 0.0, -80.0], [0, 0, 0, 1]]
)


def _nifti(
    path: Path,
    *,
    shape: tuple[int, ...] = (5, 6, 7),
    dtype: str = "i2",
    sform: int = 1,
    qform: int = 0,
    unit: str = "mm",
    cls: type[nib.Nifti1Image] = nib.Nifti1Image,
) -> Path:
    data = np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)
    image = cls(data, None)
    header = image.header
    header.set_zooms((1.5, 2.0, 2.5, *([0.7] * (len(shape) - 3))))
    header.set_sform(OBLIQUE if sform else None, code=sform)
    header.set_qform(OBLIQUE if qform else None, code=qform)
    header.set_xyzt_units(xyz=unit, t="sec")
    nib.save(cls(data, None, header), path)
    return path


def _mgh(path: Path, *, shape: tuple[int, ...] = (4, 5, 6), dtype: str = "f4") -> Path:
    data = np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)
    nib.save(nib.MGHImage(data, OBLIQUE), path)
    return path


CASES = {
    "sform.nii": lambda d: _nifti(d / "sform.nii"),
    "qform_only.nii.gz": lambda d: _nifti(d / "qform_only.nii.gz", sform=0, qform=1),
    "pixdim_only.nii": lambda d: _nifti(d / "pixdim_only.nii", sform=0, qform=0),
    "micron.nii.gz": lambda d: _nifti(d / "micron.nii.gz", unit="micron"),
    "meter.nii": lambda d: _nifti(d / "meter.nii", unit="meter", qform=1),
    "big_endian_f4.nii.gz": lambda d: _nifti(d / "big_endian_f4.nii.gz", dtype=">f4"),
    "4d.nii.gz": lambda d: _nifti(d / "4d.nii.gz", shape=(5, 6, 7, 3), dtype="u1"),
    "nifti2.nii.gz": lambda d: _nifti(d / "nifti2.nii.gz", cls=nib.Nifti2Image),
    "volume.mgz": lambda d: _mgh(d / "volume.mgz"),
    "frames.mgh": lambda d: _mgh(d / "frames.mgh", shape=(4, 5, 6, 2), dtype="i2"),
    "example4d.nii.gz": lambda d: NIBABEL_DATA / "example4d.nii.gz",
    "example_nifti2.nii.gz": lambda d: NIBABEL_DATA / "example_nifti2.nii.gz",
    "test.mgz": lambda d: NIBABEL_DATA / "test.mgz",
}


AFFINE_SOURCE = {"sform.nii": "sform", "qform_only.nii.gz": "qform", "pixdim_only.nii": "pixdim"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_header_equals_load_volume_and_nibabel(tmp_path: Path, case: str) -> None:
    path = CASES[case](tmp_path)
    header = read_header(path)
    volume = load_volume(path)
    if case in AFFINE_SOURCE:  # the cases cover each of load_volume's affine rules
        assert volume.metadata["affine_source"] == AFFINE_SOURCE[case]
    np.testing.assert_array_equal(header.affine, volume.affine)  # exactly, not close
    assert header.shape == tuple(volume.metadata["shape_on_disk"])
    assert header.dtype == volume.metadata["dtype_on_disk"]
    assert header.format == volume.metadata["format"]
    assert header.spacing == volume.spacing
    assert header.axcodes == volume.axcodes
    assert header.file_bytes == path.stat().st_size
    reference = nib.load(path).header
    assert header.shape == tuple(int(n) for n in reference.get_data_shape())
    assert header.dtype == str(reference.get_data_dtype().newbyteorder("="))


def test_units_scale_the_affine_to_mm(tmp_path: Path) -> None:
    mm = read_header(_nifti(tmp_path / "mm.nii"))
    micron = read_header(_nifti(tmp_path / "micron.nii", unit="micron"))
    meter = read_header(_nifti(tmp_path / "meter.nii", unit="meter"))
    np.testing.assert_allclose(micron.affine[:3], mm.affine[:3] * 1e-3)
    np.testing.assert_allclose(meter.affine[:3], mm.affine[:3] * 1e3)
    assert mm.spacing == (2.0, 3.0, 1.5)


def test_the_header_is_frozen_and_its_affine_read_only(tmp_path: Path) -> None:
    header = read_header(write_nifti(tmp_path / "a.nii.gz"))
    assert isinstance(header, VolumeHeader)
    with pytest.raises(ValueError, match="read-only"):
        header.affine[0, 0] = 5.0
    with pytest.raises(AttributeError):
        header.shape = (1, 1, 1)  # type: ignore[misc]
    assert repr(header) == (
        "VolumeHeader(format='nifti1', shape=(8, 9, 10), dtype=int16, spacing=(2, 2, 2) mm, "
        f"axcodes='RAS', file_bytes={header.file_bytes})"
    )


@pytest.mark.parametrize("kind", ["truncated_gzip", "corrupt_gzip", "truncated_data"])
def test_damaged_voxel_data_does_not_stop_a_header_read(tmp_path: Path, kind: str) -> None:
    suffix = ".nii" if kind == "truncated_data" else ".nii.gz"
    path = write_broken_nifti(tmp_path / f"cut{suffix}", kind)  # type: ignore[arg-type]
    header = read_header(path)
    assert header.shape in ((6, 7, 8), (16, 16, 16))
    with pytest.raises(VolumeReadError):
        load_volume(path)


def test_a_header_declaring_32_gb_of_voxels_reads_at_once(tmp_path: Path) -> None:
    # Nothing past the header is there, and nothing is allocated for the voxels.
    header = nib.Nifti1Header()
    header.set_data_shape((2048, 2048, 2048))
    header.set_data_dtype(np.float32)
    header.set_sform(np.diag([0.1, 0.1, 0.1, 1.0]), code=1)
    header["vox_offset"] = 352
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(header.binaryblock + bytes(4)))
    found = read_header(path)
    assert (found.shape, found.dtype) == ((2048, 2048, 2048), "float32")
    np.testing.assert_allclose(found.spacing, (0.1, 0.1, 0.1))


def _truncated_header(tmp_path: Path) -> Path:
    path = write_nifti(tmp_path / "bad.nii")
    path.write_bytes(path.read_bytes()[:200])
    return path


def _truncated_gzip_header(tmp_path: Path) -> Path:
    path = tmp_path / "bad.nii.gz"
    path.write_bytes(gzip.compress(write_nifti(tmp_path / "whole.nii").read_bytes()[:300]))
    return path


def _truncated_mgh_header(tmp_path: Path) -> Path:
    path = _mgh(tmp_path / "bad.mgh")
    path.write_bytes(path.read_bytes()[:100])
    return path


def _zero_length_mgh(tmp_path: Path) -> Path:
    path = _mgh(tmp_path / "bad.mgh")
    raw = bytearray(path.read_bytes())
    raw[4:8] = (0).to_bytes(4, "big")  # dims[0]
    path.write_bytes(bytes(raw))
    return path


def _complex(tmp_path: Path) -> Path:
    path = tmp_path / "bad.nii"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.complex64), np.eye(4)), path)
    return path


def _dicom(tmp_path: Path) -> Path:
    files = write_dicom_series(tmp_path / "series", np.zeros((4, 4, 2), np.int16), np.eye(4))
    return sorted(files)[0].rename(tmp_path / "bad.dcm")


def _pair(tmp_path: Path) -> Path:
    nib.save(nib.Nifti1Pair(np.zeros((2, 2, 2), np.int16), np.eye(4)), tmp_path / "bad.img")
    return tmp_path / "bad.hdr"


BAD = {
    "empty": (lambda d: write_broken_nifti(d / "bad.nii", "empty"), VolumeReadError, "empty"),
    "not_an_image": (
        lambda d: write_broken_nifti(d / "bad.nii", "not_an_image"),
        UnsupportedFormatError,
        "not a NIfTI-1/2 or MGH/MGZ file",
    ),
    "truncated_header": (_truncated_header, VolumeReadError, "truncated inside the 348-byte"),
    "truncated_gzip_header": (
        _truncated_gzip_header,
        VolumeReadError,
        "truncated inside the 348-byte",
    ),
    "truncated_mgh_header": (_truncated_mgh_header, VolumeReadError, "284-byte MGH header"),
    "zero_dim": (lambda d: write_broken_nifti(d / "bad.nii", "zero_dim"), VolumeReadError, "zero"),
    "zero_length_mgh": (_zero_length_mgh, VolumeReadError, "zero-length"),
    "singular_affine": (
        lambda d: write_broken_nifti(d / "bad.nii", "singular_affine"),
        VolumeReadError,
        "invalid sform affine",
    ),
    "nonfinite_affine": (
        lambda d: write_broken_nifti(d / "bad.nii", "nonfinite_affine"),
        VolumeReadError,
        "NaN",
    ),
    "wrong_magic": (
        lambda d: write_broken_nifti(d / "bad.nii", "wrong_magic"),
        VolumeReadError,
        "magic",
    ),
    "missing": (lambda d: d / "bad.nii", VolumeReadError, "no such file"),
    "folder": (lambda d: (d / "bad.nii").mkdir() or d / "bad.nii", VolumeReadError, "folder"),
    "complex": (_complex, UnsupportedFormatError, "complex"),
    "dicom": (_dicom, UnsupportedFormatError, "load_volume reads DICOM"),
    "nifti_pair": (_pair, UnsupportedFormatError, "NIfTI pair"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_is_refused_naming_the_file(tmp_path: Path, kind: str) -> None:
    make, error, message = BAD[kind]
    path = make(tmp_path)
    with pytest.raises(error, match=rf"{path.name}: .*{message}"):
        read_header(path)


def test_a_written_volume_reads_back_its_header(tmp_path: Path) -> None:
    volume = Volume(np.zeros((3, 4, 5), np.float32), OBLIQUE)
    for name in ("v.nii.gz", "v.mgz"):
        header = read_header(save_volume(volume, tmp_path / name))
        np.testing.assert_allclose(header.affine, volume.affine)
        assert (header.shape, header.dtype) == ((3, 4, 5), "float32")


def test_importing_read_header_does_not_import_nibabel() -> None:
    code = (
        "import sys; from brrrr.core.io.header import read_header; "
        "from brrrr.core import read_header; "
        "print(sorted(m for m in ('nibabel', 'pydicom', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
