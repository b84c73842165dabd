"""RawSource.head: the first bytes of a stored or gzip-compressed file, inflating only what it
needs; a corrupt stream is a VolumeReadError naming the file."""

from __future__ import annotations

import gzip
import os

import pytest

from brrrr.core.errors import VolumeReadError
from brrrr.core.io._source import RawSource


@pytest.mark.parametrize("size", [0, 10, 540, 5000, 3_000_000])
@pytest.mark.parametrize("n", [0, 1, 348, 540, 70_000])
def test_head_equals_the_content_prefix(size: int, n: int) -> None:
    content = os.urandom(min(size, 2000)) + bytes(max(0, size - 2000))
    assert RawSource(content, "a.nii", None).head(n) == content[:n]
    assert RawSource(gzip.compress(content), "a.nii.gz", None).head(n) == content[:n]


def test_head_stops_at_the_first_gzip_member() -> None:
    stored = gzip.compress(b"first") + gzip.compress(b"second")
    assert RawSource(stored, "two.gz", None).head(100) == b"first"


def test_a_corrupt_stream_is_named() -> None:
    # A valid gzip header, then a deflate block of the reserved type 3 (0xff: final, BTYPE 11).
    stored = gzip.compress(b"")[:10] + b"\xff" * 50
    with pytest.raises(VolumeReadError, match=r"broken\.nii\.gz.*corrupt gzip"):
        RawSource(stored, "broken.nii.gz", None).head(348)
