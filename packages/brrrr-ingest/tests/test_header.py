"""Header facts without decoding, against nibabel and core's read_header; damaged files are
refused as a BidsError naming them."""

from __future__ import annotations

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
