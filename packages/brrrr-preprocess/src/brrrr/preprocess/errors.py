"""Every error ``brrrr.preprocess`` raises on purpose, in one place.

All derive from :class:`brrrr.core.errors.BrrrrError`, so ``except BrrrrError`` catches them
along with core's I/O and geometry errors. Messages name the file when there is one.

Example:
    >>> from brrrr.preprocess.errors import PreparationError
    >>> str(PreparationError("too small to crop", path="scan.nii.gz"))
    'scan.nii.gz: too small to crop'
"""

from __future__ import annotations

from brrrr.core.errors import BrrrrError

__all__ = [
    "CacheBuildError",
    "CacheCorruptError",
    "CacheError",
    "CacheMissError",
    "CollateError",
    "CoordinateError",
    "DatasetError",
    "DriftError",
    "KernelError",
    "MapCacheError",
    "MemoryBudgetError",
    "MetadataError",
    "PairingError",
    "PointCloudError",
    "PreparationError",
    "SamplerError",
    "SidecarError",
    "TokenizeError",
]


# -- NeuroVFM preparation, tokens, caches, datasets -------------------------------------
class PreparationError(BrrrrError):
    """A volume cannot be prepared: unknown mode, too small to crop, bad settings."""


class TokenizeError(BrrrrError):
    """Arrays cannot be tokenised: shapes not divisible by the patch, mismatched mask, bad rule."""


class MetadataError(BrrrrError):
    """A dataset folder or metadata file is missing, malformed or ambiguous."""


class CacheError(BrrrrError):
    """Base class of the preparation cache's errors."""


class CacheMissError(CacheError):
    """An image has no cache entry (not built yet, or its build failed)."""


class CacheCorruptError(CacheError):
    """A cache file does not match its recorded checksum, size, shape or dtype."""


class CacheBuildError(CacheError):
    """Some images could not be prepared; the others were cached."""


class DatasetError(BrrrrError):
    """A dataset's arguments or label file are invalid."""


class CollateError(BrrrrError):
    """Samples cannot be batched together (missing keys, mismatched token sizes)."""


class SamplerError(BrrrrError):
    """A batch sampler was given inconsistent arguments."""


# -- coordinate kernels and point clouds -------------------------------------------------
class CoordinateError(BrrrrError):
    """A peak table is unusable: non-finite coordinates, mismatched columns, empty studies."""


class KernelError(BrrrrError):
    """Kernel settings cannot produce a map (unknown sample size, impossible dtype, ...)."""


class MapCacheError(BrrrrError):
    """A map cache is missing entries, or its manifest or shards are inconsistent."""


class PointCloudError(BrrrrError):
    """A study cannot become a point cloud, or a saved point-cloud folder is inconsistent."""


# -- microscopy and drift ----------------------------------------------------------------
class PairingError(BrrrrError):
    """Images and labels do not pair up (missing, extra or duplicated files)."""


class SidecarError(BrrrrError):
    """A per-volume JSON sidecar cannot be read or states an invalid voxel size."""


class MemoryBudgetError(BrrrrError):
    """A resample's output (or one slab of it) would exceed the memory budget."""


class DriftError(BrrrrError):
    """Invalid drift request: unknown kind or schedule, severity outside [0, 1], wrong input."""
