"""Tiny NIfTI files, good and deliberately broken, for tests."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np

__all__ = ["BrokenKind", "write_broken_nifti", "write_nifti"]

BrokenKind = Literal[
    "truncated_gzip",
    "corrupt_gzip",
    "wrong_magic",
    "singular_affine",
    "nonfinite_affine",
    "zero_dim",
    "truncated_data",
    "not_an_image",
    "empty",
]


def write_nifti(
    path: str | os.PathLike[str],
    data: np.ndarray | None = None,
    affine: np.ndarray | None = None,
    *,
    shape: tuple[int, ...] = (8, 9, 10),
    seed: int = 0,
) -> Path:
    """Write a small NIfTI-1 file with nibabel (the reference writer).

    Args:
        path: Destination, ``.nii`` or ``.nii.gz``.
        data: Voxels, in nibabel's ``(I, J, K[, T])`` layout; random int16 of
            ``shape`` when omitted.
        affine: (4, 4) voxel→world matrix; 2 mm RAS when omitted.
        shape: Shape of the random data.
        seed: Seed of the random data.
    """
    path = Path(path)
    if data is None:
        data = np.random.default_rng(seed).integers(0, 1000, size=shape, dtype=np.int16)
    if affine is None:
        affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def write_broken_nifti(path: str | os.PathLike[str], kind: BrokenKind) -> Path:
    """Write a file that must be refused, with one specific fault.

    Args:
        path: Destination (``.nii.gz`` for the gzip faults, any name otherwise).
        kind: Which fault: ``truncated_gzip`` (stream cut in the middle),
            ``corrupt_gzip`` (bytes flipped in the deflate data), ``wrong_magic``,
            ``singular_affine`` (sform with a zero column), ``nonfinite_affine``
            (NaN in the sform), ``zero_dim`` (a dimension of length 0),
            ``truncated_data`` (uncompressed, voxel data cut short),
            ``not_an_image`` (text), ``empty`` (0 bytes).
    """
    path = Path(path)
    data = np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8)
    image = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    raw = image.to_bytes()
    if kind == "truncated_gzip":
        blob = gzip.compress(raw)
        path.write_bytes(blob[: len(blob) // 2])
    elif kind == "corrupt_gzip":
        noise = np.random.default_rng(0).integers(0, 30000, size=(16, 16, 16), dtype=np.int16)
        damaged = bytearray(gzip.compress(nib.Nifti1Image(noise, np.eye(4)).to_bytes()))
        middle = len(damaged) // 2
        damaged[middle : middle + 16] = bytes(b ^ 0xFF for b in damaged[middle : middle + 16])
        path.write_bytes(bytes(damaged))
    elif kind == "wrong_magic":
        path.write_bytes(raw[:344] + b"xyz\x00" + raw[348:])
    elif kind in ("singular_affine", "nonfinite_affine"):
        affine = np.diag([2.0, 2.0, 2.0, 1.0])
        if kind == "singular_affine":
            affine[:, 1] = 0.0
        else:
            affine[0, 3] = np.nan
        header = image.header.copy()
        header.set_sform(affine, code=1)
        header.set_qform(None, code=0)
        path.write_bytes(header.binaryblock + raw[348:])
    elif kind == "zero_dim":
        header = image.header.copy()
        header["dim"][2] = 0
        path.write_bytes(header.binaryblock + raw[348:])
    elif kind == "truncated_data":
        path.write_bytes(raw[: len(raw) - 100])
    elif kind == "not_an_image":
        path.write_text("this is not a neuroimaging file\n")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return path
