"""The tutorials in docs/tutorials run as written (offline, on CPU) and draw their figures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.py"))
DOCS_IMAGES = ROOT / "docs" / "images" / "tutorials"


def test_there_are_tutorials() -> None:
    assert {p.stem for p in TUTORIALS} >= {
        "bids_to_hub",
        "neurovfm_preparation",
        "coordinate_maps",
        "segmentation",
    }


@pytest.mark.slow
@pytest.mark.parametrize("script", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_and_draws(script: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "out"
    env = {**os.environ, "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    process = subprocess.run(
        [sys.executable, str(script), str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    figure = out / f"{script.stem}.png"
    assert figure.is_file(), sorted(p.name for p in out.iterdir())
    with Image.open(figure) as image:
        width, height = image.size
        assert 200 <= width <= 4000
        assert 150 <= height <= 4000
        assert (
            len(image.convert("L").getcolors(maxcolors=1 << 16) or []) > 10
        )  # something was drawn
    if os.environ.get("BRRRR_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(figure, DOCS_IMAGES / figure.name)


def test_every_tutorial_has_a_page_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for script in TUTORIALS:
        page = script.with_suffix(".md")
        assert page.is_file(), page
        assert f"tutorials/{page.name}" in nav
        assert f'--8<-- "docs/tutorials/{script.name}"' in page.read_text()
        assert (DOCS_IMAGES / f"{script.stem}.png").is_file()
