"""Header facts without decoding, against nibabel; damaged files are refused with their path."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brrrr.core.testing import write_broken_nifti, write_nifti
from brrrr.ingest.errors import BidsError
from brrrr.ingest.header import read_header


@pytest.mark.parametrize("name", ["a.nii", "a.nii.gz"])
def test_facts_match_nibabel(tmp_path: Path, name: str) -> None:
    affine = np.array([[0, 0, -1.5, 90], [2.0, 0, 0, -100], [0, 3.0, 0, -80], [0, 0, 0, 1]])
    path = write_nifti(tmp_path / name, affine=affine, shape=(5, 6, 7, 2))
    facts = read_header(path)
    image = nib.load(path)
    assert facts.shape == (5, 6, 7, 2)
    assert facts.dtype == "int16"
    assert facts.axcodes == "".join(nib.aff2axcodes(image.affine))
    np.testing.assert_allclose(np.reshape(facts.affine, (4, 4)), image.affine)
    np.testing.assert_allclose(facts.spacing, [2.0, 3.0, 1.5])
    assert facts.file_bytes == path.stat().st_size


@pytest.mark.parametrize(
    "kind", ["empty", "wrong_magic", "zero_dim", "singular_affine", "not_an_image"]
)
def test_damaged_headers_are_refused_with_the_path(tmp_path: Path, kind: str) -> None:
    path = write_broken_nifti(tmp_path / "bad.nii", kind)  # type: ignore[arg-type]
    with pytest.raises(BidsError, match=r"bad\.nii"):
        read_header(path)


def test_full_check_finds_corrupt_data_that_a_header_read_cannot(tmp_path: Path) -> None:
    path = write_broken_nifti(tmp_path / "cut.nii.gz", "corrupt_gzip")
    assert read_header(path).shape == (16, 16, 16)
    with pytest.raises(BidsError, match=r"cut\.nii\.gz: cannot decode"):
        read_header(path, check="full")
