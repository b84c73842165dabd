"""The shared download machinery against a real local server that injects faults."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from brrrr.ingest.errors import ChecksumError, FetchError, UnsafePathError
from brrrr.ingest.fetch.download import (
    MANIFEST_NAME,
    RemoteFile,
    download_files,
    safe_relpath,
    select_files,
)
from brrrr.ingest.fetch.testing import FakeDataServer, Fault
from brrrr.ingest.retry import RetryPolicy

BUCKET = "bkt"


def _blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


FILES = {
    "a/dropped.bin": _blob(1, 300_000),
    "a/errors.bin": _blob(2, 70_000),
    "b/limited.bin": _blob(3, 50_000),
    "b/slow.bin": _blob(4, 20_000),
    "plain.txt": b"hello\n",
}


@pytest.fixture
def server() -> Iterator[FakeDataServer]:
    with FakeDataServer() as srv:
        srv.s3[BUCKET] = dict(FILES)
        yield srv


def _remotes(server: FakeDataServer, names: list[str] | None = None) -> list[RemoteFile]:
    return [
        RemoteFile(
            name=name,
            url=f"{server.url}/{BUCKET}/{name}",
            size=len(FILES[name]),
            md5=hashlib.md5(FILES[name]).hexdigest(),
        )
        for name in names or FILES
    ]


def _fast(sleeps: list[float] | None = None, attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(
        attempts=attempts,
        backoff_s=0.01,
        max_delay_s=30.0,
        jitter=0.0,
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
    )


def _no_partials(root: Path) -> None:
    assert not [p for p in root.rglob("*.part")]


@pytest.mark.parametrize(
    "name", ["sub-01/anat/sub-01_T1w.nii.gz", "README", "a b/ü.json", "x..y/z..", ".hidden"]
)
def test_safe_relpath_accepts_names_inside_the_folder(name: str) -> None:
    assert str(safe_relpath(name)) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../evil.txt", "'..'"),
        ("sub-01/../../evil.txt", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:/Windows/evil.dll", "drive letter"),
        ("c:evil", "drive letter"),
        ("sub-01\\..\\evil", "backslash"),
        ("a//b", "empty"),
        ("./a", "'.'"),
        ("", "empty name"),
    ],
)
def test_safe_relpath_refuses_names_that_escape(name: str, problem: str) -> None:
    with pytest.raises(UnsafePathError, match=problem) as info:
        safe_relpath(name, source="http://127.0.0.1/listing")
    assert "http://127.0.0.1/listing" in str(info.value)


def test_select_files_by_include_and_exclude(server: FakeDataServer) -> None:
    files = _remotes(server)
    assert [f.name for f in select_files(files, include=["a/*"])] == [
        "a/dropped.bin",
        "a/errors.bin",
    ]
    kept = select_files(files, include=["*.bin"], exclude=["*/slow.*"])
    assert [f.name for f in kept] == ["a/dropped.bin", "a/errors.bin", "b/limited.bin"]


def test_faults_are_survived_and_files_are_byte_identical(
    server: FakeDataServer, tmp_path: Path
) -> None:
    server.add_faults("a/dropped.bin", Fault("drop", fraction=0.4))
    server.add_faults("a/errors.bin", Fault("status", status=500), Fault("status", status=503))
    server.add_faults("b/limited.bin", Fault("status", status=429, retry_after="2"))
    server.add_faults("b/slow.bin", Fault("slow", delay_s=2.0))
    sleeps: list[float] = []
    report = download_files(
        _remotes(server), tmp_path, retry=_fast(sleeps), timeout_s=1.0, progress=False
    )
    assert sorted(report.downloaded) == sorted(FILES)
    for name, data in FILES.items():
        assert (tmp_path / name).read_bytes() == data
    _no_partials(tmp_path)
    # The dropped file resumed where the connection died instead of starting over.
    ranges = [r.range for r in server.requests if r.name == "a/dropped.bin"]
    assert ranges == [None, f"bytes={int(300_000 * 0.4)}-"]
    assert server.count("content", name="a/errors.bin") == 3
    assert server.count("content", name="b/slow.bin") >= 2  # timed out at least once
    assert 2.0 in sleeps  # Retry-After: 2 honoured (backoff alone would be 0.01)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())["files"]
    for name, data in FILES.items():
        assert manifest[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest[name]["size"] == len(data)


def test_a_partial_file_is_resumed_with_a_range_request(
    server: FakeDataServer, tmp_path: Path
) -> None:
    data = FILES["a/dropped.bin"]
    (tmp_path / "a").mkdir()
    (tmp_path / "a/dropped.bin.part").write_bytes(data[:123_456])
    download_files(_remotes(server, ["a/dropped.bin"]), tmp_path, retry=_fast(), progress=False)
    assert (tmp_path / "a/dropped.bin").read_bytes() == data
    assert [r.range for r in server.requests] == ["bytes=123456-"]
    _no_partials(tmp_path)


def test_a_second_run_fetches_only_what_is_missing(server: FakeDataServer, tmp_path: Path) -> None:
    first = download_files(_remotes(server), tmp_path, retry=_fast(), progress=False)
    assert len(first.downloaded) == 5
    assert first.bytes_downloaded == sum(map(len, FILES.values()))
    assert server.count("content") == 5
    again = download_files(_remotes(server), tmp_path, retry=_fast(), progress=False)
    assert again.downloaded == []
    assert len(again.present) == 5
    assert server.count("content") == 5
    (tmp_path / "b/limited.bin").unlink()
    (tmp_path / "plain.txt").write_bytes(b"tampered")
    third = download_files(_remotes(server), tmp_path, retry=_fast(), progress=False)
    assert third.downloaded == ["b/limited.bin", "plain.txt"]
    assert server.count("content") == 7
    assert (tmp_path / "plain.txt").read_bytes() == FILES["plain.txt"]


def test_a_file_present_without_manifest_is_checked_by_md5(
    server: FakeDataServer, tmp_path: Path
) -> None:
    (tmp_path / "plain.txt").write_bytes(FILES["plain.txt"])
    report = download_files(_remotes(server, ["plain.txt"]), tmp_path, progress=False)
    assert report.present == ["plain.txt"]
    assert server.count() == 0


def test_a_wrong_checksum_never_reaches_the_final_name(
    server: FakeDataServer, tmp_path: Path
) -> None:
    bad = RemoteFile(
        name="plain.txt",
        url=f"{server.url}/{BUCKET}/plain.txt",
        size=len(FILES["plain.txt"]),
        md5="0" * 32,
    )
    with pytest.raises(ChecksumError, match="checksum mismatch") as info:
        download_files([bad], tmp_path, retry=_fast(attempts=3), progress=False)
    assert f"{server.url}/{BUCKET}/plain.txt" in str(info.value)
    assert not (tmp_path / "plain.txt").exists()
    _no_partials(tmp_path)
    assert server.count("content") == 3


def test_other_files_finish_when_one_fails(server: FakeDataServer, tmp_path: Path) -> None:
    missing = RemoteFile(name="gone.bin", url=f"{server.url}/{BUCKET}/gone.bin", size=3)
    files = [*_remotes(server, ["plain.txt", "b/slow.bin"]), missing]
    report = download_files(files, tmp_path, retry=_fast(), on_error="report", progress=False)
    assert report.downloaded == ["b/slow.bin", "plain.txt"]
    assert "HTTP 404" in report.failed["gone.bin"]
    assert server.count("content", name="gone.bin") == 1  # a 404 is not retried
    with pytest.raises(FetchError, match="HTTP 404") as info:
        download_files([missing], tmp_path, retry=_fast(), progress=False)
    assert "gone.bin" in str(info.value)


def test_retries_are_bounded(server: FakeDataServer, tmp_path: Path) -> None:
    server.add_faults("plain.txt", *[Fault("status", status=500)] * 10)
    with pytest.raises(FetchError, match="failed after 3 attempts; last: HTTP 500"):
        download_files(
            _remotes(server, ["plain.txt"]), tmp_path, retry=_fast(attempts=3), progress=False
        )
    assert server.count("content") == 3


def test_an_unsafe_name_refuses_the_whole_listing(server: FakeDataServer, tmp_path: Path) -> None:
    hostile = RemoteFile(name="../evil.txt", url=f"{server.url}/{BUCKET}/plain.txt", size=6)
    out = tmp_path / "out"
    with pytest.raises(UnsafePathError, match=r"\.\./evil\.txt: refused: a '\.\.' segment"):
        download_files([*_remotes(server), hostile], out, progress=False)
    assert not out.exists()
    assert not (tmp_path / "evil.txt").exists()
    assert server.count() == 0


def test_a_symlink_inside_the_folder_cannot_lead_outside(
    server: FakeDataServer, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        download_files(_remotes(server, ["a/errors.bin"]), out, progress=False)
    assert list(outside.iterdir()) == []


def test_a_remote_file_may_not_take_the_manifest_name(
    server: FakeDataServer, tmp_path: Path
) -> None:
    clash = RemoteFile(name=MANIFEST_NAME, url=f"{server.url}/{BUCKET}/plain.txt", size=6)
    with pytest.raises(FetchError, match="the name of this tool's manifest"):
        download_files([clash], tmp_path, progress=False)
