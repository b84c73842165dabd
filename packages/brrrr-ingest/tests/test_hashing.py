"""TrailingHasher: the digest is the file's, however the file grew; an error on the hashing
thread is raised, not lost; a closed hasher refuses more work."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pytest

from brrrr.ingest import _hashing
from brrrr.ingest._hashing import TrailingHasher


def test_digest_and_size_are_those_of_the_file_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_hashing, "_CHUNK", 1 << 16)  # ranges span several reads
    path = tmp_path / "out.bin"
    pieces = [os.urandom(n) for n in (4, 100, 70_000, 3, 5 << 20, 9, 200_000, 1)] * 3
    with pa.OSFile(str(path), "wb") as sink, TrailingHasher(path) as hasher:
        for i, piece in enumerate(pieces):
            sink.write(piece)
            if i % 3 == 0:  # the writer reports its progress now and then
                hasher.catch_up(sink.tell())
        digest, size = hasher.finish(sink.tell())
    data = path.read_bytes()
    assert data == b"".join(pieces)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert hasher.closed


def test_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.bin"
    path.touch()
    with TrailingHasher(path) as hasher:
        assert hasher.finish(0) == (hashlib.sha256(b"").hexdigest(), 0)


def test_a_file_shorter_than_reported_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"x" * 1000)
    with (
        TrailingHasher(path) as hasher,
        pytest.raises(OSError, match=r"short\.bin: ended at byte 1,000"),
    ):
        hasher.finish(5000)


def test_catch_up_after_close_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"x")
    hasher = TrailingHasher(path)
    hasher.close()
    hasher.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        hasher.catch_up(1)
