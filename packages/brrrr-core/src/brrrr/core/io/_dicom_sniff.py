"""Recognise DICOM content from its first bytes, without importing pydicom.

A DICOM file normally starts with a 128-byte preamble and ``DICM``. Older exports
and some PACS dumps store the data set alone: no preamble, no prefix, the first
element straight away. Such content is recognised by walking its first elements:
tags in ascending order that start in group 0002 (file meta) or 0008 (identifying
attributes, where every image data set begins), with a valid explicit VR or a
plausible implicit length. A NIfTI header (``sizeof_hdr`` 348 or 540 in the first
4 bytes), an MGH header, text or a JSON sidecar never passes.
"""

from __future__ import annotations

import struct

__all__ = ["SNIFF_BYTES", "has_dicom_prefix", "looks_like_dicom"]

#: How many leading bytes :func:`looks_like_dicom` wants to see.
SNIFF_BYTES = 1024

_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)
# Explicit VRs with a 2-byte reserved field and a 4-byte length.
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
_FIRST_GROUPS = (0x0002, 0x0008)
_MAX_IMPLICIT_LENGTH = 1 << 16  # the first elements are short strings and numbers


def has_dicom_prefix(head: bytes) -> bool:
    """Whether ``head`` has the ``DICM`` prefix after a 128-byte preamble."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def _walk(head: bytes, *, explicit: bool, endian: str) -> bool:
    at, previous, seen = 0, (-1, -1), 0
    while at + 8 <= len(head) and seen < 4:
        group, element = struct.unpack_from(f"{endian}HH", head, at)
        if seen == 0 and group not in _FIRST_GROUPS:
            return False
        if (group, element) <= previous or group > 0x0010:
            return seen >= 2
        if explicit:
            vr = head[at + 4 : at + 6]
            if vr not in _VRS:
                return False
            if vr in _LONG_VRS:
                if at + 12 > len(head) or head[at + 6 : at + 8] != b"\x00\x00":
                    return seen >= 1
                (length,) = struct.unpack_from(f"{endian}I", head, at + 8)
                at += 12
            else:
                (length,) = struct.unpack_from(f"{endian}H", head, at + 6)
                at += 8
        else:
            (length,) = struct.unpack_from(f"{endian}I", head, at + 4)
            at += 8
            if length >= _MAX_IMPLICIT_LENGTH and length != 0xFFFFFFFF:
                return False
        if length == 0xFFFFFFFF:  # an undefined-length sequence: far enough
            return True
        if length % 2:
            return False  # DICOM values have even lengths
        at += length
        previous = (group, element)
        seen += 1
    # Two elements parsed, or one whose value runs past what we were shown.
    return seen >= 2 or (seen == 1 and at >= len(head))


def looks_like_dicom(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file's content) is DICOM.

    Args:
        head: At least the first 132 bytes (:data:`SNIFF_BYTES` recommended).

    Returns:
        ``True`` for the ``DICM`` prefix at byte 128, or for a data set stored
        without preamble (implicit or explicit VR, little or big endian) whose
        first elements parse as described in the module docstring.
    """
    if has_dicom_prefix(head):
        return True
    if len(head) < 8:
        return False
    return any(
        _walk(head, explicit=explicit, endian=endian)
        for explicit, endian in ((True, "<"), (False, "<"), (True, ">"))
    )
