"""Atomic writes (the complete file or the old one, never a part; errors name the file) and
SHA-256 of files against hashlib."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from brrrr.core.errors import (
    BrrrrError,
    FileReadError,
    FileWriteError,
    VolumeReadError,
    VolumeWriteError,
)
from brrrr.core.files import atomic_open, atomic_write, sha256_file, sha256_hex


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_gives_the_bytes_mode_644_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    assert atomic_write(target, b"old") == target
    assert atomic_write(str(target), memoryview(b'{"a": 1}')) == target
    assert target.read_bytes() == b'{"a": 1}'
    assert target.stat().st_mode & 0o777 == 0o644
    assert _names(tmp_path) == ["manifest.json"]


def test_a_missing_folder_is_a_file_write_error_naming_the_path(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "manifest.json"
    with pytest.raises(FileWriteError, match=r"missing/manifest\.json: folder .* does not exist"):
        atomic_write(target, b"{}")
    with pytest.raises(FileWriteError, match=r"missing/manifest\.json"), atomic_open(target):
        pass
    assert not (tmp_path / "missing").exists()


def test_a_failing_fsync_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "card.md"
    atomic_write(target, b"old")

    def crash(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", crash)
    with pytest.raises(FileWriteError, match=r"card\.md: write failed: No space left on device"):
        atomic_write(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["card.md"]


_FILE_SIZE_LIMIT = """
import resource, signal, sys
from brrrr.core.errors import FileWriteError
from brrrr.core.files import atomic_open, atomic_write

# A write past RLIMIT_FSIZE fails with EFBIG (File too large), as on a full disk.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, resource.RLIM_INFINITY))
try:
    atomic_write(sys.argv[1], bytes(1 << 20))
except FileWriteError as exc:
    print(type(exc).__name__, exc)
try:
    with atomic_open(sys.argv[1]) as handle:
        for _ in range(64):
            handle.write(bytes(1 << 12))
except FileWriteError as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_write_past_the_file_size_limit_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "shard.bin"
    target.write_bytes(b"old")
    done = subprocess.run(
        [sys.executable, "-c", _FILE_SIZE_LIMIT, str(target)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout + done.stderr
    for line in lines:  # atomic_write, then a streamed atomic_open
        assert line.startswith(f"FileWriteError {target}: write failed: File too large")
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["shard.bin"]


_KILLED = """
import os, sys
from brrrr.core.files import atomic_open

with atomic_open(sys.argv[1]) as handle:
    handle.write(b"half of the new")
    handle.flush()
    os._exit(3)  # killed mid-write: no cleanup runs
"""


def test_a_process_killed_mid_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "cache.npy"
    target.write_bytes(b"old")
    done = subprocess.run([sys.executable, "-c", _KILLED, str(target)], check=False)
    assert done.returncode == 3
    assert target.read_bytes() == b"old"
    # Only the hidden temporary stays behind, never a partial file under the real name.
    assert [n for n in _names(tmp_path) if not n.startswith(".cache.npy.")] == ["cache.npy"]


def test_atomic_open_leaves_the_old_content_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "table.csv.gz"
    atomic_write(target, b"old")

    class Interrupted(Exception):
        pass

    def interrupted() -> None:
        with atomic_open(target) as handle:
            handle.write(bytes(300_000))  # past the write buffer: on disk in the temporary
            raise Interrupted

    with pytest.raises(Interrupted):
        interrupted()
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["table.csv.gz"]


def test_atomic_open_streams_into_place(tmp_path: Path) -> None:
    target = tmp_path / "table.csv.gz"
    rows = b"".join(b"%d,%d\n" % (i, i * i) for i in range(10_000))
    with atomic_open(target) as handle, gzip.GzipFile(fileobj=handle, mode="wb") as gz:
        for start in range(0, len(rows), 4096):
            gz.write(rows[start : start + 4096])
        assert not target.exists()  # nothing under the name until the block ends
    assert gzip.decompress(target.read_bytes()) == rows
    assert target.stat().st_mode & 0o777 == 0o644
    assert _names(tmp_path) == ["table.csv.gz"]


def test_atomic_open_accepts_a_handle_closed_in_the_block(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    with atomic_open(target) as handle:
        handle.write(b"abc")
        handle.close()
    assert target.read_bytes() == b"abc"


def test_atomic_open_refuses_text_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'wb'"), atomic_open(tmp_path / "x", mode="w"):  # type: ignore[arg-type]
        pass
    assert _names(tmp_path) == []


def test_volume_errors_are_file_errors() -> None:
    # `except VolumeWriteError` around volume writes keeps working; `except FileWriteError`
    # now also catches them.
    assert issubclass(VolumeWriteError, FileWriteError)
    assert issubclass(VolumeReadError, FileReadError)
    assert issubclass(FileWriteError, BrrrrError)
    assert issubclass(FileReadError, BrrrrError)
    assert not issubclass(FileWriteError, VolumeWriteError)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 5])
def test_sha256_equals_hashlib(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(path, chunk_size=4096).hexdigest() == expected
    assert sha256_hex(path) == expected
    assert sha256_hex(str(path)) == expected


def test_several_files_feed_one_digest(tmp_path: Path) -> None:
    parts = [os.urandom(n) for n in (10, 0, 5000, 70_000)]
    digest = hashlib.sha256(b"prefix")
    for i, part in enumerate(parts):
        (tmp_path / f"{i}.bin").write_bytes(part)
        assert sha256_file(tmp_path / f"{i}.bin", digest=digest, chunk_size=1024) is digest
    assert digest.hexdigest() == hashlib.sha256(b"prefix" + b"".join(parts)).hexdigest()


def test_sha256_of_open_files() -> None:
    data = os.urandom(10_000)

    class ReadOnly:  # a file object with read() and no readinto()
        def __init__(self) -> None:
            self._inner = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._inner.read(n)

    handle = io.BytesIO(data)
    handle.seek(100)
    assert sha256_hex(handle) == hashlib.sha256(data[100:]).hexdigest()
    assert sha256_hex(ReadOnly()) == hashlib.sha256(data).hexdigest()  # type: ignore[arg-type]


def test_sha256_read_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileReadError, match=r"nothing\.bin: no such file"):
        sha256_hex(tmp_path / "nothing.bin")
    with pytest.raises(FileReadError, match="is a folder"):
        sha256_file(tmp_path)


def test_sha256_refuses_another_digest(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    with pytest.raises(ValueError, match="sha256"):
        sha256_file(tmp_path / "a", digest=hashlib.md5())
    with pytest.raises(ValueError, match="chunk_size"):
        sha256_file(tmp_path / "a", chunk_size=0)
