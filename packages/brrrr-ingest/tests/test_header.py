"""Header facts without decoding, against nibabel and core's read_header; damaged files are
refused as a BidsError naming them; voxel data cut short passes a header read and fails the
size and full checks (NIfTI-1/2, MGH, plain and gzip)."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brrrr.core import load_volume
from brrrr.core.io import read_header as read_volume_header
from brrrr.core.testing import write_broken_nifti, write_nifti
from brrrr.ingest.errors import BidsError
from brrrr.ingest.header import read_header


@pytest.mark.parametrize("name", ["a.nii", "a.nii.gz"])
def test_header_matches_nibabel_and_load_volume(tmp_path: Path, name: str) -> None:
    affine = np.array([[0, 0, -1.5, 90], [2.0, 0, 0, -100], [0, 3.0, 0, -80], [0, 0, 0, 1]])
    path = write_nifti(tmp_path / name, affine=affine, shape=(5, 6, 7, 2))
    header = read_header(path)
    image = nib.load(path)
    assert header.shape == (5, 6, 7, 2)
    assert header.dtype == "int16"
    assert header.axcodes == "".join(nib.aff2axcodes(image.affine))
    np.testing.assert_allclose(header.affine, image.affine)
    np.testing.assert_array_equal(header.affine, load_volume(path).affine)
    np.testing.assert_allclose(header.spacing, [2.0, 3.0, 1.5])
    assert header.file_bytes == path.stat().st_size
    assert repr(header) == repr(read_volume_header(path))  # core's reader, nothing added


@pytest.mark.parametrize(
    "kind", ["empty", "wrong_magic", "zero_dim", "singular_affine", "not_an_image"]
)
def test_damaged_headers_are_refused_with_the_path(tmp_path: Path, kind: str) -> None:
    path = write_broken_nifti(tmp_path / "bad.nii", kind)  # type: ignore[arg-type]
    with pytest.raises(BidsError, match=r"bad\.nii: cannot read the image header: "):
        read_header(path)


def test_a_missing_file_is_refused_with_the_path(tmp_path: Path) -> None:
    with pytest.raises(BidsError, match=r"gone\.nii\.gz: cannot read the image header: no such"):
        read_header(tmp_path / "gone.nii.gz")


def test_full_check_finds_corrupt_data_that_a_header_read_cannot(tmp_path: Path) -> None:
    path = write_broken_nifti(tmp_path / "cut.nii.gz", "corrupt_gzip")
    assert read_header(path).shape == (16, 16, 16)
    with pytest.raises(BidsError, match=r"cut\.nii\.gz: cannot decode"):
        read_header(path, check="full")


def _cut_content(path: Path) -> Path:
    """Drop the last 100 voxel bytes; a ``.gz`` stays a valid gzip stream of the shorter content."""
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    else:
        path.write_bytes(path.read_bytes()[:-100])
    return path


def _cut_stream(path: Path) -> Path:
    """Cut the stored bytes of a compressed file at 70 %, as an interrupted download does."""
    stored = path.read_bytes()
    path.write_bytes(stored[: len(stored) * 7 // 10])
    return path


def _noise(path: Path) -> Path:
    data = np.random.default_rng(0).integers(0, 30000, size=(16, 16, 16), dtype=np.int16)
    if path.name.endswith((".mgh", ".mgz")):
        nib.save(nib.MGHImage(data, np.eye(4)), path)
    elif "nifti2" in path.name:
        nib.save(nib.Nifti2Image(data, np.eye(4)), path)
    else:
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


@pytest.mark.parametrize(
    "name", ["a.nii", "a.nii.gz", "a_nifti2.nii", "a_nifti2.nii.gz", "a.mgh", "a.mgz"]
)
@pytest.mark.parametrize("check", ["size", "full"])
def test_size_and_full_checks_pass_intact_images(tmp_path: Path, name: str, check: str) -> None:
    path = _noise(tmp_path / name)
    assert read_header(path, check=check).shape == (16, 16, 16)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "cut"),
    [
        ("cut.nii", _cut_content),
        ("cut.nii.gz", _cut_content),
        ("cut.nii.gz", _cut_stream),
        ("cut_nifti2.nii", _cut_content),
        ("cut.mgh", _cut_content),
        ("cut.mgz", _cut_stream),
    ],
)
def test_truncated_voxels_pass_a_header_read_and_fail_size_and_full(
    tmp_path: Path, name: str, cut: object
) -> None:
    path = cut(_noise(tmp_path / name))  # type: ignore[operator]
    assert read_header(path).shape == (16, 16, 16)
    escaped = name.replace(".", r"\.")
    with pytest.raises(BidsError, match=rf"{escaped}: voxel data truncated"):
        read_header(path, check="size")
    with pytest.raises(BidsError, match=rf"{escaped}: cannot decode the voxels"):
        read_header(path, check="full")


def test_the_size_check_states_what_is_missing(tmp_path: Path) -> None:
    path = _cut_content(_noise(tmp_path / "cut.nii"))
    stored = path.stat().st_size
    with pytest.raises(BidsError) as caught:
        read_header(path, check="size")
    needed = 352 + 16**3 * 2
    assert caught.value.message == (
        f"voxel data truncated: the header declares {needed} bytes (offset + 16×16×16 voxels "
        f"of int16) but the file holds {stored}; download the file again"
    )
    assert stored == needed - 100
