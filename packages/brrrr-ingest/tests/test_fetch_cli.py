"""`brrrr fetch …` through core's app, against a local server."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brrrr.core.cli import build_app
from brrrr.ingest.errors import UnsafePathError
from brrrr.ingest.fetch.minivess import MINIVESS_DATASET_ID
from brrrr.ingest.fetch.testing import FakeDataServer

runner = CliRunner()
DATASET = "5a5a5a5a-0000-1111-2222-333333333333"


def _run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(build_app(), ["fetch", *args])


@pytest.fixture
def server() -> Iterator[FakeDataServer]:
    with FakeDataServer(page_size=2) as srv:
        srv.ebrains[DATASET] = {"a.txt": b"alpha", "dir/b.txt": b"beta"}
        srv.s3["openneuro.org"] = {
            "ds004884/dataset_description.json": b"{}",
            "ds004884/sub-1/ses-1/anat/sub-1_ses-1_T1w.nii.gz": b"t1",
            "ds004884/sub-1/ses-1/dwi/sub-1_ses-1_dwi.nii.gz": b"dwi",
        }
        yield srv


def test_fetch_commands_are_registered() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    for name in ("ebrains", "openneuro", "minivess"):
        assert name in result.output


def test_fetch_ebrains(server: FakeDataServer, tmp_path: Path) -> None:
    base = f"{server.url}/api/v1"
    result = _run("ebrains", DATASET, str(tmp_path), "--base-url", base, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "2 downloaded" in result.output
    assert (tmp_path / "dir/b.txt").read_bytes() == b"beta"
    again = _run("ebrains", DATASET, str(tmp_path), "--base-url", base, "--no-progress")
    assert "0 downloaded (0 bytes), 2 already present" in again.output


def test_fetch_openneuro_with_include(server: FakeDataServer, tmp_path: Path) -> None:
    result = _run(
        "openneuro",
        "ds004884",
        str(tmp_path),
        "--include",
        "sub-*/ses-*/anat/*",
        "--base-url",
        f"{server.url}/openneuro.org",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.*") if p.is_file()) == [
        ".brrrr-fetch.json",
        "dataset_description.json",
        "sub-1/ses-1/anat/sub-1_ses-1_T1w.nii.gz",
    ]


def test_a_hostile_name_exits_with_the_error(server: FakeDataServer, tmp_path: Path) -> None:
    server.ebrains[DATASET]["../../evil.txt"] = b"x"
    result = _run("ebrains", DATASET, str(tmp_path / "out"), "--base-url", f"{server.url}/api/v1")
    assert result.exit_code == 1
    assert isinstance(result.exception, UnsafePathError)
    assert "../../evil.txt: refused" in str(result.exception)


def test_fetch_minivess_from_zip(tmp_path: Path) -> None:
    archive = tmp_path / f"d-{MINIVESS_DATASET_ID}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("raw/mv01.nii.gz", b"img")
        zf.writestr("seg/mv01_y.nii.gz", b"lbl")
        zf.writestr("json/mv01.json", b"{}")
    out = tmp_path / "out"
    args = ("minivess", str(out), "--zip", str(archive), "--expected-volumes", "1", "--no-progress")
    result = _run(*args)
    assert result.exit_code == 0, result.output
    assert "1 volumes in" in result.output
    assert "(from zip)" in result.output
    assert (out / "labelsTr/mv01.nii.gz").read_bytes() == b"lbl"
    assert "(from existing)" in _run(*args).output
