"""Repository-level checks: the README's Quickstart and the DVC pipeline run as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _stage_paths(stage: dict[str, Any], section: str) -> list[str]:
    """The paths of a stage's ``deps``/``outs``/``metrics``/``plots`` (strings or one-key maps)."""
    return [next(iter(item)) if isinstance(item, dict) else item for item in stage.get(section, [])]


def test_dvc_stages_are_brrrr_commands_with_their_params() -> None:
    # Fast check of dvc.yaml's shape; tests/test_dvc_repro.py runs `dvc repro` for real.
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    written: set[str] = set()
    for name, stage in stages.items():
        argv = shlex.split(stage["cmd"])
        assert argv[0] == "brrrr", f"stage {name} is not a brrrr command"
        used = set(re.findall(r"\$\{([\w.]+)\}", stage["cmd"]))
        for dotted in used:
            _lookup(params, dotted)
        declared = [next(iter(p)) if isinstance(p, dict) else p for p in stage.get("params", [])]
        for dotted in declared:
            _lookup(params, dotted)
        # Every parameter the command reads is declared, so changing it reruns the stage.
        for dotted in used:
            assert any(dotted == d or dotted.startswith(d + ".") for d in declared), (
                f"stage {name} reads {dotted} without declaring it"
            )
        for dep in _stage_paths(stage, "deps"):
            if dep.startswith(("data/", "metrics/")):
                assert any(dep == w or dep.startswith(w + "/") for w in written), (
                    f"stage {name} reads {dep}, which no earlier stage writes"
                )
            else:
                assert (ROOT / dep).exists(), f"stage {name} reads {dep}, which is missing"
        for section in ("outs", "metrics", "plots"):
            written.update(_stage_paths(stage, section))


def _lookup(params: dict[str, Any], dotted: str) -> object:
    value: object = params
    for key in dotted.split("."):
        assert isinstance(value, dict), f"params.yaml has no {dotted}"
        assert key in value, f"params.yaml has no {dotted}"
        value = value[key]
    return value
