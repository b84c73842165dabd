"""scripts/fetch_niivue.py, offline: the integrity check, the licence and colormap readers."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fetch_niivue.py"


@pytest.fixture(scope="module")
def fetch() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_niivue", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def test_integrity_check_accepts_the_recorded_hash_and_refuses_another(
    fetch: ModuleType, tmp_path: Path
) -> None:
    tarball = _tarball(tmp_path / "niivue-1.0.0.tgz", {"package/dist/niivue.umd.js": b"x"})
    fetch._check_integrity(tarball, _integrity(tarball))
    other = _integrity(_tarball(tmp_path / "other.tgz", {"package/a": b"y"}))
    with pytest.raises(SystemExit, match="does not match the registry's recorded integrity"):
        fetch._check_integrity(tarball, other)
    with pytest.raises(SystemExit, match="unexpected integrity algorithm"):
        fetch._check_integrity(tarball, "sha1-abc")


def test_licence_from_the_tarball_or_the_declared_bsd_2_clause(
    fetch: ModuleType, tmp_path: Path
) -> None:
    with_file = _tarball(tmp_path / "a.tgz", {"package/LICENSE": b"own licence"})
    with tarfile.open(with_file) as archive:
        assert fetch._licence_text(archive, {}) == ("own licence", "tarball package/LICENSE")
    without = _tarball(tmp_path / "b.tgz", {"package/package.json": b"{}"})
    with tarfile.open(without) as archive:
        text, source = fetch._licence_text(archive, {"license": "BSD-2-Clause"})
        assert "BSD 2-Clause License" in text
        assert "no LICENSE file" in source
        with pytest.raises(SystemExit, match="check the new licence by hand"):
            fetch._licence_text(archive, {"license": "GPL-3.0"})


def test_colormaps_are_the_cmaps_json_files(fetch: ModuleType, tmp_path: Path) -> None:
    files = {f"package/src/cmaps/{n}.json": b"{}" for n in ("gray", "red", "_itksnap")}
    files["package/src/other/hot.json"] = b"{}"
    with tarfile.open(_tarball(tmp_path / "c.tgz", files)) as archive:
        assert fetch._colormaps(archive) == ["gray", "red"]


def test_pinned_version_is_read_from_the_shipped_pin(fetch: ModuleType) -> None:
    pin = json.loads((fetch.STATIC / fetch.PIN).read_text())
    assert fetch._pinned_version() == pin["version"]
