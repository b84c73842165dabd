"""Repository-level checks: the README's Quickstart and the DVC pipeline run as written."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
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


@pytest.mark.slow
def test_quickstart_main_job_runs(tmp_path: Path) -> None:
    # Run the first command's `brrrr …` part (`brrrr demo`) with this environment's console
    # script, the sample in tmp_path, on a free port; it serves until interrupted, so the test
    # waits for the URL it prints, drives the app there, then stops it with Ctrl+C (SIGINT).
    from gradio_client import Client

    from brrrr.demos.apps.stroke import SHIPPED
    from brrrr.demos.testing import free_port

    argv = shlex.split(_quickstart_commands()[0])[2:]
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "BRRRR_DEMO_DIR": str(tmp_path / "sample"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [str(BIN / argv[0]), *argv[1:], "--port", str(free_port())],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    seen: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 600
        url = None
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            seen.append(line)
            found = re.search(r"running on (http://127\.0\.0\.1:\d+/?)", line)
            url = found.group(1) if found else None
        assert url is not None, "brrrr demo printed no URL:\n" + "".join(seen)
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        _, summary, metrics, _ = client.predict(
            "case-000", None, None, None, None, SHIPPED, "mean", 0.5, api_name="/segment"
        )
        assert summary["lesion_count"] >= 1
        assert metrics["dice"] > 0.5
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _stage_paths(stage: dict[str, Any], section: str) -> list[str]:
    """The paths of a stage's ``deps``/``outs``/``metrics``/``plots`` (strings or one-key maps)."""
    return [next(iter(item)) if isinstance(item, dict) else item for item in stage.get(section, [])]


def test_dvc_stages_are_brrrr_commands_with_their_params() -> None:
    # Fast check of dvc.yaml's shape; tests/test_dvc_repro.py runs `dvc repro` for real.
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    written: set[str] = set()
    for name, stage in stages.items():
        for command in stage["cmd"].split("&&"):
            assert shlex.split(command)[0] == "brrrr", f"stage {name} runs a non-brrrr command"
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
