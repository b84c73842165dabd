"""MiniVess preset: layout, idempotence, resume, and safe ZIP extraction."""

from __future__ import annotations

import random
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from brrrr.ingest.errors import FetchError, UnsafePathError
from brrrr.ingest.fetch.minivess import (
    MINIVESS_DATASET_ID,
    complete_volumes,
    fetch_minivess,
    minivess_layout_name,
    safe_extract_zip,
)
from brrrr.ingest.fetch.testing import FakeDataServer, Fault
from brrrr.ingest.retry import RetryPolicy

FAST = RetryPolicy(attempts=4, backoff_s=0.001, max_delay_s=0.01, jitter=0.0)
IDS = ["mv01", "mv02", "mv03"]


def _source() -> dict[str, bytes]:
    files: dict[str, bytes] = {"Licence (CCBY-NC-SA).pdf": b"%PDF-1.4 licence"}
    for n, vid in enumerate(IDS):
        files[f"raw/{vid}.nii.gz"] = random.Random(n).randbytes(9_000)
        files[f"seg/{vid}_y.nii.gz"] = random.Random(100 + n).randbytes(3_000)
        files[f"json/{vid}.json"] = f'{{"id": "{vid}", "spacing_um": [0.7, 0.7, 5.0]}}'.encode()
    return files


SOURCE = _source()


def _expected_layout() -> dict[str, bytes]:
    out = {}
    for name, data in SOURCE.items():
        layout = minivess_layout_name(name)
        assert layout is not None
        out[layout] = data
    return out


def _layout_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture
def server() -> Iterator[FakeDataServer]:
    with FakeDataServer() as srv:
        srv.ebrains[MINIVESS_DATASET_ID] = dict(SOURCE)
        yield srv


def test_layout_names() -> None:
    assert minivess_layout_name("raw/mv12.nii.gz") == "imagesTr/mv12.nii.gz"
    assert minivess_layout_name("seg/mv12_y.nii.gz") == "labelsTr/mv12.nii.gz"
    assert minivess_layout_name("json/mv12.json") == "metadata/mv12.json"
    assert minivess_layout_name("d-bf268b89/seg/mv12_y.nii.gz") == "labelsTr/mv12.nii.gz"
    assert minivess_layout_name("Licence.pdf") == "metadata/Licence.pdf"
    assert minivess_layout_name("raw/notes.txt") is None


def test_fetch_reorganises_and_is_idempotent(server: FakeDataServer, tmp_path: Path) -> None:
    server.add_faults("seg/mv02_y.nii.gz", Fault("drop", fraction=0.5))
    api = f"{server.url}/api/v1"
    result = fetch_minivess(tmp_path, expected_volumes=3, base_url=api, retry=FAST, progress=False)
    assert result.source == "ebrains"
    assert result.volumes == IDS
    assert _layout_of(tmp_path) == _expected_layout()
    assert not list(tmp_path.rglob("*.part"))
    requests = len(server.requests)
    again = fetch_minivess(tmp_path, expected_volumes=3, base_url=api, progress=False)
    assert again.source == "existing"
    assert len(server.requests) == requests  # complete: not even a listing
    (tmp_path / "labelsTr/mv03.nii.gz").unlink()
    resumed = fetch_minivess(tmp_path, expected_volumes=3, base_url=api, progress=False)
    assert resumed.fetched is not None
    assert resumed.fetched.downloaded == ["labelsTr/mv03.nii.gz"]
    assert server.count("content") == len(SOURCE) + 1 + 1  # + the drop's retry + mv03
    assert _layout_of(tmp_path) == _expected_layout()


def test_a_source_with_fewer_volumes_than_expected_is_an_error(
    server: FakeDataServer, tmp_path: Path
) -> None:
    with pytest.raises(FetchError, match=r"3 complete volumes .* expected 70"):
        fetch_minivess(tmp_path, base_url=f"{server.url}/api/v1", retry=FAST, progress=False)


def _zip(path: Path, members: dict[str, bytes], *, top: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(top + name, data)
    return path


@pytest.mark.parametrize("top", ["", f"d-{MINIVESS_DATASET_ID}/"])
def test_from_a_local_zip(tmp_path: Path, top: str) -> None:
    archive = _zip(tmp_path / "minivess.zip", SOURCE, top=top)
    out = tmp_path / "out"
    result = fetch_minivess(out, zip_path=archive, expected_volumes=3, progress=False)
    assert result.source == "zip"
    assert result.volumes == IDS
    assert _layout_of(out) == _expected_layout()
    again = fetch_minivess(out, zip_path=archive, expected_volumes=3, progress=False)
    assert again.source == "existing"
    assert complete_volumes(out) == IDS


@pytest.mark.parametrize(
    "member",
    ["../evil.txt", "raw/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt", "raw\\..\\evil.txt"],
)
def test_a_zip_member_that_escapes_is_refused(tmp_path: Path, member: str) -> None:
    archive = _zip(tmp_path / "bad.zip", {"raw/mv01.nii.gz": b"ok", member: b"pwned"})
    out = tmp_path / "out"
    with pytest.raises(UnsafePathError, match="refused") as info:
        safe_extract_zip(archive, out, progress=False)
    assert "bad.zip" in str(info.value)
    assert not out.exists()  # refused before anything was written
    assert not list(tmp_path.rglob("evil.txt"))


def test_a_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("raw/mv01.nii.gz")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safe_extract_zip(archive, tmp_path / "out", progress=False)


def test_not_a_zip_and_too_large(tmp_path: Path) -> None:
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"not a zip")
    with pytest.raises(FetchError, match="cannot open as a ZIP"):
        safe_extract_zip(fake, tmp_path / "out", progress=False)
    archive = _zip(tmp_path / "big.zip", {"a.bin": b"x" * 1000})
    with pytest.raises(FetchError, match="over the 10 allowed"):
        safe_extract_zip(archive, tmp_path / "out", max_bytes=10, progress=False)
