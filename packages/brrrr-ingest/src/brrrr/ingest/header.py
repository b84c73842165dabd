"""The header of a BIDS image — shape, spacing, affine, orientation, dtype — without its voxels.

The header is read by :func:`brrrr.core.io.read_header`, the code
:func:`brrrr.core.load_volume` uses, so the columns built from it agree exactly with
the :class:`~brrrr.core.Volume` a user decodes later. Here its errors become
:class:`~brrrr.ingest.errors.BidsError` (naming the file), and two deeper checks find
voxel data that a header read cannot see (see :data:`Check`).

Example:
    >>> header = read_header("sub-01_T1w.nii.gz")  # doctest: +SKIP
    >>> header.shape, header.axcodes  # doctest: +SKIP
    ((176, 256, 256), 'RAS')
    >>> read_header("sub-01_T1w.nii", check="size")  # a cut download: BidsError  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from brrrr.core.errors import BrrrrError
from brrrr.core.io import header as core_header
from brrrr.ingest.errors import BidsError

__all__ = ["Check", "read_header"]

#: How much of an image is checked:
#:
#: * ``"header"``: the header only (shape, affine, dtype); a stored prefix of the file.
#: * ``"size"``: also that the file stores every voxel byte the header declares
#:   (``vox_offset + shape × itemsize``). For ``.nii`` / ``.mgh`` this is one
#:   ``stat``, no data read; for ``.nii.gz`` / ``.mgz`` the stream is inflated and
#:   counted without being kept (which also verifies its gzip CRC), so it costs about
#:   one gunzip but no array.
#: * ``"full"``: also decode every voxel with :func:`brrrr.core.load_volume`, which
#:   finds whatever the decoder refuses.
Check = Literal["header", "size", "full"]

_GZIP_MAGIC = b"\x1f\x8b"
_MGH_DATA_OFFSET = 284  # MGH voxels follow the fixed 284-byte header
_READ = 1 << 20


def read_header(
    path: str | os.PathLike[str], *, check: Check = "header"
) -> core_header.VolumeHeader:
    """Read the header of a NIfTI-1/2 or MGH/MGZ image without decoding its voxels.

    Args:
        path: The image file.
        check: ``"header"``, ``"size"`` or ``"full"`` (see :data:`Check`): how much
            beyond the header is checked.

    Returns:
        The :class:`~brrrr.core.io.header.VolumeHeader`.

    Raises:
        BidsError: The file is missing, empty, not an image, or its header is
            invalid (zero-length axis, singular or non-finite affine); with
            ``check="size"``, it stores fewer voxel bytes than its header declares or
            its gzip stream is cut or corrupt; with ``check="full"``, its voxel data
            cannot be decoded.
    """
    if check not in ("header", "size", "full"):
        raise ValueError(f"check must be 'header', 'size' or 'full', got {check!r}")
    try:
        header = core_header.read_header(path)
    except BrrrrError as exc:
        raise BidsError(f"cannot read the image header: {exc.message}", path=path) from None
    if check == "size":
        _check_size(Path(path), header)
    elif check == "full":
        from brrrr.core import load_volume

        try:
            load_volume(path, max_voxels=None)
        except BrrrrError as exc:
            raise BidsError(f"cannot decode the voxels: {exc.message}", path=path) from None
    return header


def _data_offset(head: bytes, header: core_header.VolumeHeader) -> int:
    """Where the voxels start in the (inflated) content, from its first bytes."""
    if header.format == "mgh":
        return _MGH_DATA_OFFSET
    # NIfTI: sizeof_hdr (348 or 540) in the file's byte order tells the order and version;
    # vox_offset is a float32 at byte 108 (NIfTI-1) or an int64 at byte 168 (NIfTI-2).
    order = "<" if struct.unpack("<i", head[:4])[0] in (348, 540) else ">"
    if header.format == "nifti1":
        return int(struct.unpack(f"{order}f", head[108:112])[0])
    return int(struct.unpack(f"{order}q", head[168:176])[0])


def _content(path: Path) -> tuple[bytes, int, bool]:
    """The first 540 content bytes, the content's length, and whether it was gzip.

    Raises:
        BidsError: The file cannot be read, or its gzip stream is cut short or corrupt.
    """
    try:
        with path.open("rb") as file:
            compressed = file.read(2) == _GZIP_MAGIC
            if not compressed:
                file.seek(0)
                return file.read(540), os.fstat(file.fileno()).st_size, False
        head, length = b"", 0
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_READ):
                if len(head) < 540:
                    head += chunk[: 540 - len(head)]
                length += len(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise BidsError(
            f"voxel data truncated or corrupt: the gzip stream cannot be read to its end "
            f"({exc}); download the file again",
            path=path,
        ) from None
    except OSError as exc:
        raise BidsError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    return head, length, True


def _check_size(path: Path, header: core_header.VolumeHeader) -> None:
    head, stored, compressed = _content(path)
    needed = _data_offset(head, header) + math.prod(header.shape) * np.dtype(header.dtype).itemsize
    if stored < needed:
        what = "its decompressed content holds" if compressed else "the file holds"
        raise BidsError(
            f"voxel data truncated: the header declares {needed} bytes (offset + "
            f"{'×'.join(map(str, header.shape))} voxels of {header.dtype}) but {what} "
            f"{stored}; download the file again",
            path=path,
        )
