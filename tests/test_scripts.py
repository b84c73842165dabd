"""Every runnable example in scripts/ runs on the built-in sample data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.py"))
# Arguments that shrink a script to a smoke test (its default run takes minutes).
SMOKE_ARGS = {"train_atlas_vae.py": ["--steps", "24"]}


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_script_runs_on_sample_data(script: Path, tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, str(script), *SMOKE_ARGS.get(script.name, [])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip(), f"{script.name} printed nothing"
