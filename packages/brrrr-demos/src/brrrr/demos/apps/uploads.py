"""Reading an uploaded volume safely: size limit, content sniffing, clear messages.

An upload is judged by its bytes, not its name: gzip is recognised by its magic number,
NIfTI-1 and NIfTI-2 by ``sizeof_hdr`` (348 or 540, either byte order) and MGH/MGZ by its
version field. Everything that can go wrong — too large, a truncated gzip stream, a text
file, a 2-D image, several volumes, NaN voxels — raises
:class:`~brrrr.demos.errors.DemoInputError` whose message names the file (by the name the
user uploaded) and says what is wrong; the app turns it into a ``gr.Error``.

Example:
    >>> from brrrr.demos.apps.uploads import sniff_format
    >>> sniff_format(b"hello, world")
    'unknown'
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from brrrr.demos.errors import DemoInputError

if TYPE_CHECKING:
    from brrrr.core import Volume

__all__ = ["UploadFormat", "read_upload", "sniff_format"]

UploadFormat = Literal["nifti1", "nifti2", "mgh", "unknown"]
"""What the (decompressed) first bytes of an upload are."""

_GZIP_MAGIC = b"\x1f\x8b"
# A gzip stream expands: cap what decompression may produce, so a small "gzip bomb"
# cannot fill the memory (16x the upload limit is far more than any real volume needs).
_EXPANSION = 16


def sniff_format(head: bytes) -> UploadFormat:
    """The format of an uncompressed file from its first bytes (at least 4 are needed).

    Args:
        head: The first bytes of the file (after gunzip).

    Returns:
        ``"nifti1"`` / ``"nifti2"`` (``sizeof_hdr`` 348 / 540, little- or big-endian),
        ``"mgh"`` (version 1, big-endian, as FreeSurfer writes it) or ``"unknown"``.
    """
    if len(head) < 4:
        return "unknown"
    little, big = struct.unpack("<i", head[:4])[0], struct.unpack(">i", head[:4])[0]
    if 348 in (little, big):
        return "nifti1"
    if 540 in (little, big):
        return "nifti2"
    if big == 1 and len(head) >= 28:
        # MGH: version 1, then width, height, depth, frames, type (all big-endian int32).
        dims = struct.unpack(">5i", head[4:24])
        if all(d > 0 for d in dims[:4]) and dims[4] in (0, 1, 3, 4):
            return "mgh"
    return "unknown"


def _display_name(path: Path, name: str | None) -> str:
    return name or path.name


def _raw_bytes(path: Path, shown: str, max_mb: float) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DemoInputError(
            f"the upload cannot be read ({exc.strerror or exc})", path=shown
        ) from None
    limit = int(max_mb * 1e6)
    if size > limit:
        raise DemoInputError(
            f"the file is {size / 1e6:.1f} MB; this app accepts uploads up to {max_mb:g} MB",
            path=shown,
        )
    if size == 0:
        raise DemoInputError("the file is empty", path=shown)
    data = path.read_bytes()
    if not data.startswith(_GZIP_MAGIC):
        return data
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, _EXPANSION * limit)
    except zlib.error as exc:
        raise DemoInputError(f"the gzip stream is corrupt ({exc})", path=shown) from None
    if inflater.unconsumed_tail:
        raise DemoInputError(
            f"the file expands to more than {_EXPANSION * max_mb:g} MB when decompressed",
            path=shown,
        )
    if not inflater.eof:
        raise DemoInputError(
            "the gzip stream is truncated (the file ends before the end of the compressed "
            "data); upload the whole file again",
            path=shown,
        )
    return out


def _nibabel_image(raw: bytes, kind: UploadFormat, shown: str) -> Any:
    import nibabel as nib

    classes: dict[str, Any] = {
        "nifti1": nib.Nifti1Image,
        "nifti2": nib.Nifti2Image,
        "mgh": nib.MGHImage,
    }
    try:
        image = classes[kind].from_bytes(raw)
        np.asanyarray(image.dataobj)  # reads the voxels now: a short file fails here
    except (ValueError, OSError, EOFError, struct.error, gzip.BadGzipFile) as exc:
        raise DemoInputError(
            f"not a readable {kind.upper()} file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
            path=shown,
        ) from None
    return image


def read_upload(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    max_mb: float = 256.0,
    what: str = "volume",
) -> Volume:
    """Read one uploaded 3-D volume, checking it on the way.

    Args:
        path: Where the upload is on disk (Gradio's temporary copy).
        name: The name to show in messages (default: the file's name, which Gradio keeps).
        max_mb: The largest file accepted, in MB (the compressed size of a ``.nii.gz``).
        what: What the file should be (``"DWI"``, ``"ground-truth mask"``), for messages.

    Returns:
        The :class:`~brrrr.core.Volume` (its ``source`` is the shown name).

    Raises:
        DemoInputError: Too large, empty, a corrupt or truncated gzip stream, not NIfTI or
            MGH/MGZ, a 2-D image, several volumes, or NaN / infinite voxels.
    """
    from brrrr.core import Volume

    file = Path(path)
    shown = _display_name(file, name)
    raw = _raw_bytes(file, shown, max_mb)
    kind = sniff_format(raw[:32])
    if kind == "unknown":
        compressed = " (inside its gzip stream)" if file.read_bytes()[:2] == _GZIP_MAGIC else ""
        raise DemoInputError(
            f"not a NIfTI or MGZ file{compressed}: its first bytes are no NIfTI-1/NIfTI-2 or "
            f"MGH header; upload the {what} as .nii, .nii.gz or .mgz",
            path=shown,
        )
    volume = Volume.from_nibabel(_nibabel_image(raw, kind, shown), source=shown)
    spatial = [n for n in volume.shape if n > 1]
    if len(spatial) < 3:
        raise DemoInputError(
            f"{len(spatial)}-D image (shape {volume.shape}): the {what} must be a 3-D volume",
            path=shown,
        )
    if volume.channels > 1:
        raise DemoInputError(
            f"{volume.channels} volumes in one file (shape {volume.data.shape}): the {what} "
            "must be one 3-D volume",
            path=shown,
        )
    data = volume.data
    if data.dtype.kind in "fc":
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise DemoInputError(
                f"{bad} NaN or infinite voxels: the {what} must hold finite values", path=shown
            )
    return volume
