"""Repository-level checks: the README's Quickstart and the DVC pipeline run as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "the Quickstart has no bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quickstart_is_exactly_two_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert commands[1] == "uv run pytest"
    assert commands[0].startswith("uv run brrrr ")


def test_quickstart_main_job_runs(tmp_path: Path) -> None:
    # Run the first command's `brrrr …` part with this environment's console script.
    argv = shlex.split(_quickstart_commands()[0])[2:]
    process = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert process.returncode == 0, process.stderr
    assert "wrote" in process.stdout


def test_dvc_stages_run_with_their_params(tmp_path: Path) -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, stage in stages.items():
        command = re.sub(
            r"\$\{([\w.]+)\}",
            lambda m: str(_lookup(params, m.group(1))),
            stage["cmd"],
        )
        argv = shlex.split(command)
        process = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert process.returncode == 0, f"stage {name}: {process.stderr}"
        for out in stage.get("outs", []):
            assert (tmp_path / out).exists(), f"stage {name} did not write {out}"


def _lookup(params: dict, dotted: str) -> object:
    value: object = params
    for key in dotted.split("."):
        assert isinstance(value, dict)
        value = value[key]
    return value
