"""Errors raised by :mod:`brrrr.preprocess.kernels` (all derive from ``BrrrrError``)."""

from __future__ import annotations

from brrrr.core.errors import BrrrrError

__all__ = ["CoordinateError", "KernelError", "MapCacheError"]


class CoordinateError(BrrrrError):
    """A peak table is unusable: non-finite coordinates, mismatched columns, empty studies."""


class KernelError(BrrrrError):
    """Kernel settings cannot produce a map (unknown sample size, impossible dtype, ...)."""


class MapCacheError(BrrrrError):
    """A map cache is missing entries, or its manifest or shards are inconsistent."""
