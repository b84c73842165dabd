"""Decode, untile and rescale the pixel data of one DICOM series.

pydicom decodes every transfer syntax it knows: uncompressed (implicit/explicit VR,
little/big endian), deflated and RLE Lossless natively; JPEG (baseline, extended,
lossless), JPEG-LS and JPEG 2000 through plugins. The ``brrrr-core[dicom-codecs]``
extra installs pylibjpeg with its libjpeg, openjpeg and RLE plugins, which decode all
of them; without a decoder for a file's syntax the read stops, before any pixel is
decoded, with a :class:`~brrrr.core.errors.MissingDependencyError` that names the
extra.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pydicom
from pydicom.uid import UID

from brrrr.core.errors import (
    MissingDependencyError,
    UnsupportedFormatError,
    VolumeReadError,
)
from brrrr.core.io._dicom_frames import Frame, Header
from brrrr.core.io._dicom_mosaic import mosaic_tile

__all__ = ["check_decodable", "decode", "output_dtype"]

_EXTRA = 'pip install "brrrr-core[dicom-codecs]"'


def _decoder_available(uid: UID) -> bool | None:
    """Whether an installed plugin decodes ``uid``; ``None`` when pydicom has no decoder."""
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(uid).is_available)
    except NotImplementedError:
        return None


def check_decodable(headers: Sequence[Header]) -> None:
    """Check, before decoding anything, that every file's transfer syntax can be decoded.

    Raises:
        MissingDependencyError: Compressed pixel data and no installed decoder for it;
            the message names the ``dicom-codecs`` extra.
        VolumeReadError: A transfer syntax pydicom has no decoder for at all.
    """
    seen: set[str] = set()
    for header in headers:
        uid = header.transfer_syntax
        if uid in seen:
            continue
        seen.add(uid)
        available = _decoder_available(uid)
        if available is None:
            raise VolumeReadError(
                f"unknown or unsupported transfer syntax {uid.name} ({uid}): pydicom has no "
                "decoder for its pixel data",
                path=header.where,
            )
        if not available:
            raise MissingDependencyError(
                f"pixel data is compressed as {uid.name} ({uid}) and no installed package can "
                f"decode it; install brrrr's DICOM codecs: {_EXTRA} (pylibjpeg with "
                "pylibjpeg-libjpeg, pylibjpeg-openjpeg and pylibjpeg-rle; python-gdcm also "
                "works)",
                path=header.where,
            )


def _bits_range(ds: Any) -> tuple[int, int]:
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def output_dtype(headers: Sequence[Header], frames: Sequence[Frame]) -> np.dtype:
    """The dtype of the rescaled voxels, from the headers only (module docstring of dicom)."""
    kinds = {h.pixel_kind for h in headers}
    scales = {(f.slope, f.intercept) for f in frames}
    if kinds != {"int"}:
        return np.dtype("float64" if kinds == {"float64"} and scales == {(1.0, 0.0)} else "float32")
    if len(scales) > 1:
        return np.dtype("float32")
    slope, intercept = scales.pop()
    if not (slope.is_integer() and intercept.is_integer()) or slope == 0:
        return np.dtype("float32")
    # The in-place integer rescale goes through ``stored * slope`` first: it must fit too.
    ends = [
        v
        for h in headers
        for lim in _bits_range(h.ds)
        for v in (lim * slope, lim * slope + intercept)
    ]
    lo, hi = min(ends), max(ends)
    for size in (1, 2, 4, 8):
        dtype = np.dtype(f"{'u' if lo >= 0 else 'i'}{size}")
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return dtype
    return np.dtype("float64")


def _source(header: Header) -> Any:
    if header.gzipped and header.path is not None:
        with gzip.open(header.path, "rb") as fp:
            return io.BytesIO(fp.read())
    if header.path is not None:
        return header.path
    return io.BytesIO(header.raw or b"")


def _pixels(header: Header) -> Iterator[np.ndarray]:
    from pydicom.pixels import iter_pixels

    src = _source(header)
    if header.forced:
        src = pydicom.dcmread(src, force=True)
        src.file_meta.TransferSyntaxUID = header.transfer_syntax
    elif header.transfer_syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
        src = pydicom.dcmread(src)  # iter_pixels reads a path or stream only up to deflate
    yield from iter_pixels(src)


def _write(target: np.ndarray, pixels: np.ndarray, frame: Frame, dtype: np.dtype) -> None:
    if dtype.kind == "f" and (frame.slope != 1 or frame.intercept != 0):
        # float64 for the arithmetic, one rounding to float32 at the end.
        target[...] = pixels * frame.slope + frame.intercept
        return
    np.copyto(target, pixels, casting="unsafe")
    if frame.slope != 1:
        target *= dtype.type(frame.slope)
    if frame.intercept != 0:
        target += dtype.type(frame.intercept)


def decode(
    headers: Sequence[Header],
    frames: Sequence[Frame],
    volumes: Sequence[Sequence[int]],
    dtype: np.dtype,
) -> np.ndarray:
    """Decode the frames of ``volumes`` into one ``(C, K, rows, cols)`` array.

    ``C`` is the number of volumes, or 3 for one RGB volume; ``volumes[v][k]`` is the
    frame index of slice ``k`` of volume ``v``. Files are decoded one at a time, in
    slice order; a mosaic is decoded once and cut into its tiles.

    Raises:
        VolumeReadError: Pixel data that cannot be decoded (truncated, corrupt) or that
            does not match its header, naming the file.
    """
    rows, cols = frames[volumes[0][0]].shape
    samples = headers[frames[volumes[0][0]].header].samples
    channels = len(volumes) if samples == 1 else samples
    out = np.empty((channels, len(volumes[0]), rows, cols), dtype=dtype)
    # slots[file][frame number in the file] = [(volume, k, frame index), ...]
    slots: dict[int, dict[int, list[tuple[int, int, int]]]] = {}
    for v, volume in enumerate(volumes):
        for k, i in enumerate(volume):
            slots.setdefault(frames[i].header, {}).setdefault(frames[i].index, []).append((v, k, i))
    first_k = {h: min(k for ts in s.values() for _, k, _ in ts) for h, s in slots.items()}
    for h in sorted(slots, key=lambda h: first_k[h]):
        header = headers[h]
        decoded = 0
        expected = (int(header.ds.Rows), int(header.ds.Columns))
        try:
            for f, pixels in enumerate(_pixels(header)):
                decoded += 1
                if pixels.shape[:2] != expected or pixels.ndim != (2 if samples == 1 else 3):
                    raise ValueError(
                        f"decoded frame has shape {pixels.shape}, expected {expected}"
                        + ("" if samples == 1 else f" × {samples} samples")
                    )
                for v, k, i in slots[h].get(f, ()):
                    frame = frames[i]
                    src = pixels
                    if frame.tile is not None and header.mosaic is not None:
                        src = mosaic_tile(pixels, header.mosaic, frame.tile)
                    if samples == 1:
                        _write(out[v, k], src, frame, dtype)
                    else:
                        for s in range(samples):
                            _write(out[s, k], src[..., s], frame, dtype)
            if decoded != header.n_frames:
                raise ValueError(
                    f"{decoded} frame(s) decoded, the header declares {header.n_frames}"
                )
        except (VolumeReadError, UnsupportedFormatError):
            raise
        except Exception as exc:
            uid = header.transfer_syntax
            raise VolumeReadError(
                f"cannot decode the pixel data ({uid.name}): {type(exc).__name__}: {exc}; the "
                "file is probably truncated or corrupt",
                path=header.where,
            ) from None
    return out
