"""Atomic file writes: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from brrrr.core.errors import VolumeWriteError

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], payload: bytes | memoryview) -> Path:
    """Write ``payload`` to ``path`` so that ``path`` is either absent/old or complete.

    The bytes go to a hidden temporary file in the destination folder (so the
    final ``os.replace`` is a rename on the same file system), are flushed and
    fsynced, then renamed over ``path``. On any failure the temporary file is
    removed and ``path`` is untouched.

    Raises:
        VolumeWriteError: The folder does not exist or the write fails.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise VolumeWriteError(f"folder {str(folder)!r} does not exist", path=path)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise VolumeWriteError(
            f"cannot create a file in {str(folder)!r}: {exc.strerror or exc}", path=path
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise VolumeWriteError(f"write failed: {exc.strerror or exc}", path=path) from None
        raise
    return path
