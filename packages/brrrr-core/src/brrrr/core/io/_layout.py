"""From a flat buffer of stored voxels to a ``(I, J, K)`` / ``(C, I, J, K)`` array."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from brrrr.core.errors import VolumeTooLargeError

__all__ = ["arrange_fortran", "convert", "result_dtype"]


def check_voxel_count(
    shape: Sequence[int], max_voxels: int | None, *, path: str | os.PathLike[str] | None
) -> int:
    """The number of voxels a header declares; refused above ``max_voxels``.

    Called before anything is allocated or decoded.

    Raises:
        VolumeTooLargeError: More than ``max_voxels`` voxels.
    """
    n_voxels = int(np.prod(shape, dtype=np.int64))
    if max_voxels is not None and n_voxels > max_voxels:
        raise VolumeTooLargeError(
            f"header declares {n_voxels:,} voxels {tuple(shape)}, more than "
            f"max_voxels={max_voxels:,}; nothing was allocated",
            path=path,
        )
    return n_voxels


def result_dtype(disk: np.dtype, *, scaled: bool, requested: np.dtype | None) -> np.dtype:
    """The dtype a reader returns: the requested one; else the stored one in native
    byte order; else, when a scale applies, float32 (float64 for wide stored types)."""
    if requested is not None:
        return requested
    if not scaled:
        return disk.newbyteorder("=")
    wide = (disk.kind == "f" and disk.itemsize > 4) or (disk.kind in "iu" and disk.itemsize > 2)
    return np.dtype(np.float64 if wide else np.float32)


def convert(
    flat: np.ndarray, out_dtype: np.dtype, *, slope: float = 1.0, inter: float = 0.0
) -> np.ndarray:
    """Convert stored values to ``out_dtype`` in one pass (byte swap included),
    applying ``value * slope + inter``. Always returns a new, writable array."""
    if slope == 1.0 and inter == 0.0:
        return flat.astype(out_dtype)
    work = out_dtype if out_dtype.kind == "f" else np.dtype(np.float64)
    values = flat.astype(work)
    values *= slope
    values += inter
    return values if values.dtype == out_dtype else values.astype(out_dtype)


def arrange_fortran(values: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """View flat Fortran-ordered voxels of ``shape`` (I, J, K, T…) as our layout.

    Returns ``(I, J, K)`` when there are at most 3 axes (missing ones are 1),
    else ``(C, I, J, K)`` with the 4th and later axes flattened in Fortran order
    (the 4th axis varies fastest). No copy.
    """
    dims = [int(d) for d in shape]
    spatial = ([*dims, 1, 1, 1])[:3]
    if len(dims) <= 3:
        return values.reshape(spatial[::-1]).T
    channels = int(np.prod(dims[3:], dtype=np.int64))
    return values.reshape(channels, spatial[2], spatial[1], spatial[0]).transpose(0, 3, 2, 1)
