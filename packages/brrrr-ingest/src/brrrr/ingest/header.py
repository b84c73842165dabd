"""What an image header says — shape, spacing, affine, orientation, dtype — without its voxels.

nibabel parses the header (it reads only the first bytes of a ``.nii.gz``);
the affine follows the same rules as :func:`brrrr.core.load_volume` (best of
sform/qform/pixdim, scaled to mm), so the columns built from these facts agree
with the :class:`~brrrr.core.Volume` a user decodes later.

Example:
    >>> facts = read_header("sub-01_T1w.nii.gz")  # doctest: +SKIP
    >>> facts.shape, facts.axcodes
    ((176, 256, 256), 'RAS')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from brrrr.core.errors import BrrrrError, GeometryError
from brrrr.core.geometry import axcodes, check_affine, spacing
from brrrr.ingest.errors import BidsError

__all__ = ["HeaderFacts", "read_header"]

_UNIT_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 1e-3, "unknown": 1.0}


@dataclass(frozen=True)
class HeaderFacts:
    """Facts read from an image header.

    Attributes:
        shape: Array shape as stored, e.g. ``(I, J, K)`` or ``(I, J, K, T)``.
        spacing: Voxel size in mm along the three spatial axes (from the affine).
        affine: (4, 4) voxel→world (RAS+, mm), row-major as 16 floats.
        axcodes: Orientation code such as ``"RAS"``.
        dtype: Voxel dtype on disk, e.g. ``"int16"``.
        file_bytes: Size of the file in bytes.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, float, float]
    affine: tuple[float, ...]
    axcodes: str
    dtype: str
    file_bytes: int


def read_header(
    path: str | os.PathLike[str], *, check: Literal["header", "full"] = "header"
) -> HeaderFacts:
    """Read the header of a NIfTI image (``.nii`` or ``.nii.gz``) without decoding voxels.

    Args:
        path: The image file.
        check: ``"header"`` reads only the header; ``"full"`` also decodes every
            voxel with :func:`brrrr.core.load_volume`, which finds truncated or
            corrupt data that a header read cannot see.

    Returns:
        The header facts.

    Raises:
        BidsError: The file is missing, empty, not an image, or its header is
            invalid (zero-length axis, singular or non-finite affine); with
            ``check="full"``, its voxel data cannot be decoded.
    """
    import nibabel as nib

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BidsError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    if size == 0:
        raise BidsError("the file is empty (0 bytes)", path=path)
    try:
        header: Any = nib.load(path).header
        shape = tuple(int(n) for n in header.get_data_shape())
        dtype = str(np.dtype(header.get_data_dtype()).newbyteorder("="))
        best = header.get_best_affine()
        space_unit = header.get_xyzt_units()[0]
    except Exception as exc:  # nibabel raises many kinds for damaged headers
        raise BidsError(f"cannot read the image header: {exc}", path=path) from None
    if not shape or min(shape) <= 0:
        raise BidsError(f"the header declares no voxels: shape {shape}", path=path)
    try:
        affine = check_affine(best, path=path)
    except GeometryError as exc:
        raise BidsError(f"invalid affine: {exc.message}", path=path) from None
    affine[:3, :] *= _UNIT_TO_MM.get(space_unit, 1.0)
    if check == "full":
        from brrrr.core import load_volume

        try:
            load_volume(path, max_voxels=None)
        except BrrrrError as exc:
            raise BidsError(f"cannot decode the voxels: {exc.message}", path=path) from None
    sizes = spacing(affine)
    return HeaderFacts(
        shape=shape,
        spacing=(float(sizes[0]), float(sizes[1]), float(sizes[2])),
        affine=tuple(float(v) for v in affine.ravel()),
        axcodes=axcodes(affine),
        dtype=dtype,
        file_bytes=size,
    )
