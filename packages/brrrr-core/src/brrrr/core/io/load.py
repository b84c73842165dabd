"""`load_volume` and `save_volume`: one entry point for every supported format.

The format is recognised from the content, not the file name: a NIfTI-1/2
header, an MGH header, DICOM (the ``DICM`` prefix after the preamble, or a data set
stored without preamble whose first elements parse; each possibly gzip-compressed),
or a folder of DICOM files. A DICOM preamble may start with the bytes of a NIfTI
``sizeof_hdr`` (Siemens exports do): the ``DICM`` prefix wins unless the NIfTI magic
is there too. Other formats nibabel reads (ANALYZE/NIfTI pairs, MINC, PAR/REC, AFNI
BRIK) are loaded through nibabel.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from brrrr.core.errors import BrrrrError, UnsupportedFormatError, VolumeReadError, VolumeWriteError
from brrrr.core.io._dicom_sniff import SNIFF_BYTES, has_dicom_prefix, looks_like_dicom
from brrrr.core.io._layout import check_voxel_count
from brrrr.core.io._source import open_source
from brrrr.core.io.mgh import is_mgh_header, read_mgh, write_mgh
from brrrr.core.io.nifti import is_nifti_header, read_nifti, write_nifti
from brrrr.core.volume import Volume

if TYPE_CHECKING:
    from brrrr.core.io._dicom_frames import PhilipsScaling

__all__ = ["DEFAULT_MAX_VOXELS", "load_volume", "save_volume"]

#: Default limit on the voxels a header may declare (1024³): refused before allocation.
DEFAULT_MAX_VOXELS = 1 << 30

_NIBABEL_SUFFIXES = (
    ".hdr",
    ".img",
    ".img.gz",
    ".mnc",
    ".par",
    ".rec",
    ".head",
    ".brik",
    ".brik.gz",
)
_SUPPORTED = (
    "NIfTI-1/2 (.nii, .nii.gz), MGH/MGZ, DICOM (a file or a folder), and nibabel's other formats"
)


_NIFTI_MAGICS = (b"n+1\x00", b"ni1\x00")


def _is_dicom(head: bytes) -> bool:
    if has_dicom_prefix(head):
        # A 128-byte preamble is free-form: Siemens' starts with 348, NIfTI-1's sizeof_hdr.
        return head[344:348] not in _NIFTI_MAGICS and head[4:8] != b"n+2\x00"
    return looks_like_dicom(head)


def load_volume(
    source: str | os.PathLike[str] | bytes,
    *,
    max_voxels: int | None = DEFAULT_MAX_VOXELS,
    dtype: np.dtype | str | None = None,
    series_uid: str | None = None,
    echo: int | None = None,
    philips_scaling: PhilipsScaling = "display",
) -> Volume:
    """Load a volume from a file, a DICOM folder, or the bytes of a file.

    Args:
        source: Path to a ``.nii``/``.nii.gz``/``.mgh``/``.mgz``/DICOM file, a
            folder of DICOM files, or the bytes of such a file.
        max_voxels: Refuse, before allocating anything, an image whose header
            declares more voxels. ``None`` removes the limit.
        dtype: Convert the voxels to this dtype while reading (e.g. ``"float32"``);
            ``None`` keeps the stored type (float32 when a scale is applied).
        series_uid: For a DICOM folder holding several series, the one to read.
        echo: For a multi-echo DICOM series, the echo to read (from 1); ``None``
            reads every echo as channels.
        philips_scaling: For Philips DICOM, ``"display"`` (``RescaleSlope``/
            ``RescaleIntercept``) or ``"precise"`` (the floating-point value from
            Philips' private scale slope); see :mod:`brrrr.core.io.dicom`.

    Returns:
        The :class:`~brrrr.core.volume.Volume`.

    Raises:
        VolumeReadError: Missing, empty, truncated or corrupt input.
        VolumeTooLargeError: More voxels than ``max_voxels``.
        DicomSeriesError: An ambiguous or inconsistent DICOM series.
        MissingDependencyError: Compressed DICOM pixel data and no decoder installed
            (``pip install "brrrr-core[dicom-codecs]"``).
        UnsupportedFormatError: Not a format ``brrrr`` can read.

    Example:
        >>> from brrrr.core import load_volume
        >>> vol = load_volume("sub-01_T1w.nii.gz", dtype="float32")  # doctest: +SKIP
    """
    dicom_options = {"series_uid": series_uid, "echo": echo, "philips_scaling": philips_scaling}
    if not isinstance(source, bytes | bytearray | memoryview):
        path = Path(source)
        if path.is_dir():
            return _as_dtype(_read_dicom(path, max_voxels=max_voxels, **dicom_options), dtype)
    src = open_source(source)
    head = src.head(max(540, SNIFF_BYTES))
    if _is_dicom(head):
        # The path, not the inflated bytes, so that every message names the file.
        payload = src.path if src.path is not None else src.read()
        return _as_dtype(_read_dicom(payload, max_voxels=max_voxels, **dicom_options), dtype)
    if is_nifti_header(head):
        return read_nifti(src, max_voxels=max_voxels, dtype=dtype)
    if is_mgh_header(head):
        return read_mgh(src, max_voxels=max_voxels, dtype=dtype)
    if src.path is not None and src.name.lower().endswith(_NIBABEL_SUFFIXES):
        return _as_dtype(_load_with_nibabel(src.path, max_voxels=max_voxels), dtype)
    raise UnsupportedFormatError(
        f"unrecognised file content (first bytes {head[:8]!r}); supported: {_SUPPORTED}",
        path=src.name,
    )


def _read_dicom(source: Path | bytes, *, max_voxels: int | None, **options: Any) -> Volume:
    # pydicom is imported only when DICOM is actually read.
    from brrrr.core.io.dicom import read_dicom as read

    return read(source, max_voxels=max_voxels, **options)


def _as_dtype(volume: Volume, dtype: np.dtype | str | None) -> Volume:
    if dtype is None or volume.dtype == np.dtype(dtype):
        return volume
    return volume.with_data(volume.data.astype(dtype))


def _load_with_nibabel(path: Path, *, max_voxels: int | None) -> Volume:
    import nibabel as nib

    try:
        image = nib.load(path)
        shape = tuple(getattr(image, "shape", ()))
    except Exception as exc:
        raise VolumeReadError(f"nibabel cannot read this file: {exc}", path=path) from None
    check_voxel_count(shape, max_voxels, path=path)
    try:
        volume = Volume.from_nibabel(image, source=path)
    except BrrrrError:
        raise
    except Exception as exc:
        raise VolumeReadError(f"cannot read the voxels: {exc}", path=path) from None
    volume.metadata["format"] = type(image).__name__
    return volume


def save_volume(volume: Volume, path: str | os.PathLike[str], *, compresslevel: int = 2) -> Path:
    """Save a volume atomically as NIfTI (``.nii``, ``.nii.gz``) or MGH (``.mgh``, ``.mgz``).

    The bytes are written to a temporary file in the destination folder and
    renamed into place: a crash never leaves a partial file under ``path``.

    Args:
        volume: The volume to write.
        path: Destination; the extension picks the format.
        compresslevel: gzip level (ISA-L, 0–3) for ``.nii.gz`` and ``.mgz``.

    Returns:
        The destination path.

    Raises:
        VolumeWriteError: Unknown extension, unsupported dtype, or an I/O failure.
    """
    name = Path(path).name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return write_nifti(volume, path, compresslevel=compresslevel)
    if name.endswith((".mgh", ".mgz")):
        return write_mgh(volume, path, compresslevel=compresslevel)
    raise VolumeWriteError("unknown extension: use .nii, .nii.gz, .mgh or .mgz", path=path)
