"""HashingWriter: the digest is the file's, whatever the sizes of the writes; the caller may
reuse its buffer; a failed write in the background thread is raised, not lost."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from brrrr.ingest._hashing import HashingWriter


def test_digest_and_size_are_those_of_the_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    rng = os.urandom
    # Small writes are gathered, large ones go as they are; the order must survive both.
    pieces = [rng(n) for n in (4, 100, 70_000, 3, 5 << 20, 9, 200_000, 1)] * 3
    sink = HashingWriter(path, max_pending_bytes=1 << 20)
    for piece in pieces:
        assert sink.write(piece) == len(piece)
    assert sink.tell() == sum(map(len, pieces))
    digest, size = sink.finish()
    data = path.read_bytes()
    assert data == b"".join(pieces)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert sink.closed


def test_a_reused_buffer_does_not_change_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    buffer = bytearray(b"a" * (1 << 20))
    with HashingWriter(path) as sink:
        sink.write(memoryview(buffer))
        buffer[:] = b"b" * len(buffer)
        sink.write(buffer)
        digest, _ = sink.finish()
    expected = b"a" * (1 << 20) + b"b" * (1 << 20)
    assert path.read_bytes() == expected
    assert digest == hashlib.sha256(expected).hexdigest()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_failed_write_is_raised() -> None:
    sink = HashingWriter("/dev/full")
    sink.write(b"x" * (1 << 20))
    with pytest.raises(OSError, match="No space left"):
        sink.finish()
    sink.close()


def test_write_after_close_is_refused(tmp_path: Path) -> None:
    sink = HashingWriter(tmp_path / "out.bin")
    sink.close()
    with pytest.raises(ValueError, match="closed"):
        sink.write(b"x")
