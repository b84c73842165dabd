"""FreeSurfer MGH/MGZ: header parsed by nibabel, voxels inflated by ISA-L."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from nibabel.freesurfer.mghformat import MGHHeader, MGHImage

from brrrr.core.errors import FileWriteError, GeometryError, VolumeReadError, VolumeWriteError
from brrrr.core.files import atomic_write
from brrrr.core.geometry import check_affine
from brrrr.core.io._layout import arrange_fortran, check_voxel_count, convert, result_dtype
from brrrr.core.io._source import RawSource
from brrrr.core.volume import Volume

__all__ = ["is_mgh_header", "read_mgh", "write_mgh"]

_HEADER_BYTES = 284  # fixed size of an MGH header; voxels follow


def is_mgh_header(head: bytes) -> bool:
    """Whether ``head`` starts an MGH header (big-endian version 1, sane type code)."""
    if len(head) < 24:
        return False
    version, *_dims, type_code = np.frombuffer(head[:24], dtype=">i4")
    return int(version) == 1 and int(type_code) in (0, 1, 3, 4)


@dataclass(frozen=True)
class _Layout:
    """What an MGH header says about its voxels, checked before anything is allocated.

    Attributes:
        header: The parsed header.
        shape: ``(I, J, K)``, or ``(I, J, K, T)`` for more than one frame.
        disk_dtype: The stored voxel dtype (big-endian).
        affine: (4, 4) voxel→world (RAS+ mm).
    """

    header: MGHHeader
    shape: tuple[int, ...]
    disk_dtype: np.dtype
    affine: np.ndarray


def _layout(src: RawSource) -> _Layout:
    """Parse and check an MGH header: only its first 284 bytes of content are read.

    Raises:
        VolumeReadError: A truncated or unparsable header, a zero-length axis, or an
            invalid (singular, non-finite) affine.
    """
    head = src.head(_HEADER_BYTES)
    if len(head) < _HEADER_BYTES:
        raise VolumeReadError(
            f"file is truncated inside the {_HEADER_BYTES}-byte MGH header", path=src.name
        )
    try:
        header = MGHHeader(head[: MGHHeader.template_dtype.itemsize], check=False)
        shape = tuple(int(d) for d in header["dims"])
        disk_dtype = header.get_data_dtype()
    except Exception as exc:
        raise VolumeReadError(f"cannot parse the MGH header: {exc}", path=src.name) from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]  # MGH always stores a frame count; one frame is a 3D volume
    if min(shape) <= 0:
        raise VolumeReadError(f"zero-length or negative dimension in shape {shape}", path=src.name)
    try:
        affine = check_affine(header.get_affine())
    except GeometryError as exc:
        raise VolumeReadError(f"invalid MGH geometry: {exc.message}", path=src.name) from None
    return _Layout(header=header, shape=shape, disk_dtype=disk_dtype, affine=affine)


def read_mgh(
    src: RawSource, *, max_voxels: int | None = None, dtype: np.dtype | str | None = None
) -> Volume:
    """Read an MGH (``.mgh``) or gzip-compressed MGZ (``.mgz``) volume.

    Frames (the 4th axis) become channels. Raises like :func:`read_nifti`.
    """
    layout = _layout(src)
    header, shape, disk_dtype, affine = (
        layout.header,
        layout.shape,
        layout.disk_dtype,
        layout.affine,
    )
    n_voxels = check_voxel_count(shape, max_voxels, path=src.name)
    content = src.read(_HEADER_BYTES + n_voxels * disk_dtype.itemsize)
    flat = np.frombuffer(content, dtype=disk_dtype, count=n_voxels, offset=_HEADER_BYTES)
    out_dtype = result_dtype(
        disk_dtype, scaled=False, requested=None if dtype is None else np.dtype(dtype)
    )
    values = convert(flat, out_dtype)
    metadata: dict[str, Any] = {
        "format": "mgh",
        "compressed": src.is_gzip,
        "dtype_on_disk": str(disk_dtype.newbyteorder("=")),
        "shape_on_disk": list(shape),
    }
    tr_ms = float(header["tr"])
    if tr_ms > 0:
        metadata["repetition_time_s"] = tr_ms / 1000.0
    if out_dtype.kind == "f" and disk_dtype.kind == "f":
        metadata["nonfinite_voxels"] = int(n_voxels - np.count_nonzero(np.isfinite(values)))
    return Volume(arrange_fortran(values, shape), affine, metadata=metadata, source=src.path)


def write_mgh(volume: Volume, path: str | os.PathLike[str], *, compresslevel: int = 2) -> Path:
    """Write a volume as MGH (``.mgh``) or MGZ (``.mgz``), atomically.

    MGH stores uint8, int16, int32 and float32; other dtypes are converted to
    the closest of those that holds every value, or refused.
    """
    from isal import isal_zlib

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mgh", ".mgz"):
        raise VolumeWriteError("MGH file names end in .mgh or .mgz", path=path)
    data = volume.data if volume.data.ndim == 3 else np.moveaxis(volume.data, 0, -1)
    if data.dtype not in (np.uint8, np.int16, np.int32, np.float32):
        if (
            data.dtype.kind in "biu"
            and data.size
            and np.iinfo(np.int32).min <= data.min()
            and data.max() <= np.iinfo(np.int32).max
        ):
            data = data.astype(np.int32)
        elif data.dtype.kind in "fb":
            data = data.astype(np.float32)
        else:
            raise VolumeWriteError(f"cannot write voxels of dtype {data.dtype} as MGH", path=path)
    try:
        payload = MGHImage(data, volume.affine).to_bytes()
    except Exception as exc:
        raise VolumeWriteError(f"cannot encode the MGH image: {exc}", path=path) from None
    if suffix == ".mgz":
        payload = isal_zlib.compress(payload, level=compresslevel, wbits=31)
    try:
        atomic_write(path, payload)
    except FileWriteError as exc:  # callers catch VolumeWriteError around volume writes
        raise VolumeWriteError(exc.message, path=path) from None
    return path
