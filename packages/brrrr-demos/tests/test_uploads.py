"""brrrr.demos.apps.uploads: each kind of bad upload gets a message naming the file."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brrrr.demos.apps.uploads import read_upload, sniff_format
from brrrr.demos.errors import DemoInputError


def _nifti(path: Path, shape: tuple[int, ...], value: float = 1.0) -> Path:
    nib.Nifti1Image(np.full(shape, value, np.float32), np.eye(4)).to_filename(path)
    return path


def test_reads_a_nifti(tmp_path: Path) -> None:
    volume = read_upload(_nifti(tmp_path / "dwi.nii.gz", (8, 9, 10)))
    assert volume.shape == (8, 9, 10)


def test_sniffs_by_content() -> None:
    assert sniff_format((348).to_bytes(4, "big")) == "nifti1"
    assert sniff_format((540).to_bytes(4, "little")) == "nifti2"
    assert sniff_format(b"hello world") == "unknown"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("truncated", "gzip stream is truncated"),
        ("text", "not a NIfTI or MGZ file"),
        ("flat", "2-D image"),
        ("nan", "NaN or infinite"),
        ("large", "accepts uploads up to"),
    ],
)
def test_bad_uploads_name_file_and_problem(tmp_path: Path, kind: str, expected: str) -> None:
    max_mb = 256.0
    if kind == "truncated":
        whole = _nifti(tmp_path / "whole.nii.gz", (16, 16, 16)).read_bytes()
        path = tmp_path / "bad.nii.gz"
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "text":
        path = tmp_path / "bad.nii.gz"
        path.write_text("not an image")
    elif kind == "flat":
        path = _nifti(tmp_path / "bad.nii", (8, 8, 1))
    elif kind == "nan":
        path = _nifti(tmp_path / "bad.nii", (8, 8, 8), value=float("nan"))
    else:
        path = _nifti(tmp_path / "bad.nii", (8, 8, 8))
        max_mb = 1e-4
    with pytest.raises(DemoInputError, match=expected) as caught:
        read_upload(path, max_mb=max_mb)
    assert str(caught.value).startswith(path.name)
