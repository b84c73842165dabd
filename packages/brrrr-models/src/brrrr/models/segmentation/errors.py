"""Errors raised on purpose by ``brrrr.models.segmentation``."""

from __future__ import annotations

from brrrr.core.errors import BrrrrError

__all__ = ["SegmentationError"]


class SegmentationError(BrrrrError, ValueError):
    """A mask or a folder of masks cannot be evaluated as given.

    The message names the file (``path``) and says what to change: masks on different
    grids, NaN voxels, labels other than 0/1, predictions without a ground truth…
    """
