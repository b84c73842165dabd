"""The header of a BIDS image — shape, spacing, affine, orientation, dtype — without its voxels.

The header is read by :func:`brrrr.core.io.read_header`, the code
:func:`brrrr.core.load_volume` uses, so the columns built from it agree exactly with
the :class:`~brrrr.core.Volume` a user decodes later. Here its errors become
:class:`~brrrr.ingest.errors.BidsError` (naming the file), and ``check="full"`` also
decodes the voxels.

Example:
    >>> header = read_header("sub-01_T1w.nii.gz")  # doctest: +SKIP
    >>> header.shape, header.axcodes  # doctest: +SKIP
    ((176, 256, 256), 'RAS')
"""

from __future__ import annotations

import os
from typing import Literal

from brrrr.core.errors import BrrrrError
from brrrr.core.io import header as core_header
from brrrr.ingest.errors import BidsError

__all__ = ["read_header"]


def read_header(
    path: str | os.PathLike[str], *, check: Literal["header", "full"] = "header"
) -> core_header.VolumeHeader:
    """Read the header of a NIfTI-1/2 or MGH/MGZ image without decoding its voxels.

    Args:
        path: The image file.
        check: ``"header"`` reads only the header; ``"full"`` also decodes every
            voxel with :func:`brrrr.core.load_volume`, which finds truncated or
            corrupt data that a header read cannot see.

    Returns:
        The :class:`~brrrr.core.io.header.VolumeHeader`.

    Raises:
        BidsError: The file is missing, empty, not an image, or its header is
            invalid (zero-length axis, singular or non-finite affine); with
            ``check="full"``, its voxel data cannot be decoded.
    """
    try:
        header = core_header.read_header(path)
    except BrrrrError as exc:
        raise BidsError(f"cannot read the image header: {exc.message}", path=path) from None
    if check == "full":
        from brrrr.core import load_volume

        try:
            load_volume(path, max_voxels=None)
        except BrrrrError as exc:
            raise BidsError(f"cannot decode the voxels: {exc.message}", path=path) from None
    return header
