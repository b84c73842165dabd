"""``brrrr view``: the command added to the ``brrrr`` CLI through the entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from brrrr.core import Volume, save_volume
from brrrr.core.cli import build_app


def test_brrrr_view_writes_a_page_with_the_overlay(
    tmp_path: Path, phantom: tuple[Volume, Volume]
) -> None:
    image, lesion = phantom
    t1 = save_volume(image, tmp_path / "t1.nii.gz")
    mask = save_volume(lesion, tmp_path / "lesion.nii.gz")
    out = tmp_path / "view.html"
    result = CliRunner().invoke(
        build_app(), ["view", str(t1), "--overlay", str(mask), "--opacity", "0.5", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    spec = re.search(r'id="brrrr-viewer-spec">(.*?)</script>', out.read_text(), re.S)
    assert spec is not None
    layers = json.loads(spec.group(1))["layers"]
    assert [(x["name"], x["colormap"], x["opacity"]) for x in layers] == [
        ("t1.nii.gz", "gray", 1.0),
        ("lesion.nii.gz", "red", 0.5),
    ]


def test_brrrr_view_names_a_bad_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = CliRunner().invoke(build_app(), ["view", str(notes)])
    assert result.exit_code != 0
    assert "notes.txt" in str(result.exception)
