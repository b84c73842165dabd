"""A minimal JPEG Lossless encoder (process 14, first-order prediction), for test files.

No installed package encodes DICOM's JPEG Lossless transfer syntax
(1.2.840.10008.1.2.4.70), the one most scanners and PACS archives use for lossless
compression, so the test writer encodes it itself: one greyscale component, predictor
1 (the pixel to the left; the one above at the start of a row; ``2**(P - 1)`` for the
first pixel), no point transform, and one Huffman table that gives each of the 17
difference categories a 5-bit code. It favours clarity over compression.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = ["encode_jpeg_lossless"]

_CODE_LENGTH = 5  # 17 categories (0..16), each a 5-bit code 0..16


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def encode_jpeg_lossless(image: np.ndarray, *, precision: int = 16) -> bytes:
    """Encode a 2D unsigned image as one JPEG Lossless (SV1) codestream.

    Args:
        image: ``(rows, cols)`` unsigned integers below ``2**precision``.
        precision: Bits per sample (2–16).

    Returns:
        The JPEG bytes, from SOI to EOI.

    Raises:
        ValueError: A non-2D image, or values outside ``0 .. 2**precision - 1``.
    """
    pixels = np.asarray(image).astype(np.int64)
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"expected a non-empty 2D image, got shape {pixels.shape}")
    if pixels.min() < 0 or pixels.max() >= 1 << precision:
        raise ValueError(f"values must lie in 0..{(1 << precision) - 1}")
    rows, cols = pixels.shape
    predicted = np.empty_like(pixels)
    predicted[0, 0] = 1 << (precision - 1)
    predicted[0, 1:] = pixels[0, :-1]
    predicted[1:, 0] = pixels[:-1, 0]
    predicted[1:, 1:] = pixels[1:, :-1]
    modulus = 1 << 16
    diffs = (pixels - predicted) % modulus
    diffs = np.where(diffs >= modulus // 2, diffs - modulus, diffs)

    bits: list[str] = []
    for diff in diffs.ravel().tolist():
        size = abs(diff).bit_length()
        bits.append(format(size, f"0{_CODE_LENGTH}b"))
        if 0 < size < 16:
            extra = diff if diff > 0 else diff + (1 << size) - 1
            bits.append(format(extra, f"0{size}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    entropy = bytearray()
    for at in range(0, len(stream), 8):
        byte = int(stream[at : at + 8], 2)
        entropy.append(byte)
        if byte == 0xFF:
            entropy.append(0x00)  # byte stuffing

    counts = [0] * 16
    counts[_CODE_LENGTH - 1] = 17
    huffman = bytes([0x00, *counts, *range(17)])
    frame = struct.pack(">BHHB", precision, rows, cols, 1) + bytes([1, 0x11, 0])
    scan = bytes([1, 1, 0x00, 1, 0, 0])  # one component, table 0; predictor 1; Pt 0
    return (
        b"\xff\xd8"
        + _segment(0xFFC3, frame)
        + _segment(0xFFC4, huffman)
        + _segment(0xFFDA, scan)
        + bytes(entropy)
        + b"\xff\xd9"
    )
