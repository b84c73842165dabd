"""One exception hierarchy for every ``brrrr`` package.

Every error a user can meet from bad input derives from :class:`BrrrrError`, so
``except BrrrrError`` catches all of them. Messages name the file (when there is
one), say what is wrong, and where possible what to do about it.

Example:
    >>> from brrrr.core.errors import VolumeReadError
    >>> err = VolumeReadError("truncated gzip stream", path="scan.nii.gz")
    >>> str(err)
    'scan.nii.gz: truncated gzip stream'
"""

from __future__ import annotations

import os

__all__ = [
    "BrrrrError",
    "DicomSeriesError",
    "DistributedError",
    "FileReadError",
    "FileWriteError",
    "GeometryError",
    "MissingDependencyError",
    "UnsupportedFormatError",
    "VolumeReadError",
    "VolumeTooLargeError",
    "VolumeWriteError",
]


class BrrrrError(Exception):
    """Base class of every error raised on purpose by ``brrrr``.

    Args:
        message: What is wrong, and what to do about it when that is known.
        path: The file or folder the problem is about, if any. It is prefixed to
            the message so the user always sees which file failed.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        self.message = message
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)

    def __reduce__(self) -> tuple[object, ...]:
        # Keeps the keyword-only ``path`` when errors cross process boundaries
        # (multiprocessing workers pickle exceptions).
        return (_rebuild, (type(self), self.message, self.path))


def _rebuild(cls: type[BrrrrError], message: str, path: str | None) -> BrrrrError:
    return cls(message, path=path)


class FileReadError(BrrrrError):
    """A file cannot be read: missing, a folder, no permission, an I/O failure."""


class FileWriteError(BrrrrError):
    """A file cannot be written: missing folder, no permission, disk full."""


class VolumeReadError(FileReadError):
    """A file exists but cannot be read as a volume (corrupt, truncated, inconsistent)."""


class VolumeWriteError(FileWriteError):
    """A volume cannot be written (bad destination, unsupported dtype, I/O failure)."""


class UnsupportedFormatError(BrrrrError):
    """The file is not in a format ``brrrr`` can read or write."""


class DicomSeriesError(VolumeReadError):
    """A DICOM file or series is ambiguous or inconsistent (several series, missing slices…)."""


class VolumeTooLargeError(VolumeReadError):
    """A header declares more voxels than the caller allows; nothing was allocated."""


class DistributedError(BrrrrError):
    """A sharded or Dask run cannot start or finish: bad shard arguments or cluster spec,
    share manifests missing or in conflict, a task that lost too many workers."""


class GeometryError(BrrrrError):
    """An affine, orientation code, spacing or grid is invalid."""


class MissingDependencyError(BrrrrError, ImportError):
    """An optional dependency is needed for this call; the message names the extra to install."""
