"""The shipped NiiVue bundle: pinned, verified, licensed, and in the wheel."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from brrrr.demos.errors import ViewerError
from brrrr.demos.viewer.assets import STATIC, inline_script, niivue_bundle, static_text

PACKAGE = Path(__file__).resolve().parents[1]


def test_shipped_bundle_has_the_pinned_sha256() -> None:
    bundle = niivue_bundle()
    pin = json.loads((STATIC / "niivue.json").read_text())
    assert pin["package"] == "@niivue/niivue"
    assert re.fullmatch(r"\d+\.\d+\.\d+", bundle.version)
    assert bundle.tarball_integrity.startswith("sha512-")
    assert hashlib.sha256(bundle.path.read_bytes()).hexdigest() == bundle.sha256 == pin["sha256"]
    assert bundle.path.stat().st_size == pin["bytes"] < 5_000_000
    bundle.verify()


def test_licence_is_shipped_beside_the_bundle() -> None:
    bundle = niivue_bundle()
    text = bundle.license_path.read_text()
    assert bundle.license == "BSD-2-Clause"
    assert "BSD 2-Clause License" in text
    assert "Copyright (c) 2021, Niivue" in text
    assert "fflate: MIT" in text  # the packages the bundle includes are listed


def test_bundle_is_the_umd_build_that_defines_the_niivue_global() -> None:
    code = static_text(niivue_bundle().path.name)
    assert code.startswith("(function(")
    assert "niivue={}" in code[:400]
    # No network at run time: no dynamic import, no script or module loading by URL.
    assert "import(" not in code
    assert "importScripts" not in code


def test_verify_names_a_changed_bundle(tmp_path: Path) -> None:
    changed = tmp_path / "niivue.umd.js"
    shutil.copyfile(niivue_bundle().path, changed)
    with changed.open("ab") as handle:
        handle.write(b"\n// changed\n")
    with pytest.raises(ViewerError, match=r"niivue\.umd\.js: NiiVue bundle has SHA-256"):
        replace(niivue_bundle(), path=changed).verify()


def test_colormaps_come_from_the_pinned_package() -> None:
    colormaps = niivue_bundle().colormaps
    assert {"gray", "red", "hot", "viridis", "warm"} <= set(colormaps)
    assert list(colormaps) == sorted(colormaps)


def test_inline_script_cannot_end_the_script_element() -> None:
    code = 'const a = "</script><script>alert(1)</SCRIPT>"; // <!-- x'
    safe = inline_script(code)
    assert "</script" not in safe.lower()
    assert "<!--" not in safe
    assert safe == 'const a = "<\\/script><script>alert(1)<\\/SCRIPT>"; // <\\!-- x'


@pytest.mark.slow
def test_wheel_contains_the_static_files(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    subprocess.run(
        [uv, "build", "--package", "brrrr-demos", "--wheel", "-o", str(tmp_path), "-q"],
        cwd=PACKAGE,
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("brrrr_demos-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        static = "brrrr/demos/viewer/static/"
        for name in ("niivue.umd.js", "niivue.json", "NIIVUE_LICENSE", "viewer.js", "widget.js"):
            assert static + name in names
        assert "brrrr/demos/py.typed" in names
        assert "brrrr/__init__.py" not in names  # PEP 420 namespace
        shipped = archive.read(static + "niivue.umd.js")
        assert hashlib.sha256(shipped).hexdigest() == niivue_bundle().sha256
        assert any(
            n.endswith(".dist-info/licenses/src/brrrr/demos/viewer/static/NIIVUE_LICENSE")
            for n in names
        )
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
        assert "Provides-Extra: gradio" in text
        assert "Provides-Extra: jupyter" in text
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
        assert b"[brrrr.commands]" in entry_points
        assert b"view = brrrr.demos.cli:view" in entry_points
