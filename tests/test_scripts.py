"""Every runnable example in scripts/ runs on the built-in sample data; the atlas script trains
the shipped run file."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.py"))
# Arguments that shrink a script to a smoke test (its default run takes minutes).
SMOKE_ARGS = {
    "train_atlas_vae.py": ["--steps", "24"],
    "train_lesion_model.py": ["--steps", "2", "--train-cases", "2", "--val-cases", "1"],
}


# Scripts that train (minutes of CPU) run in CI's full suite, not in the default `uv run pytest`.
SLOW_SCRIPTS = {"train_atlas_vae.py", "train_lesion_model.py", "vessel_drift_table.py"}


@pytest.mark.parametrize(
    "script",
    [pytest.param(s, marks=pytest.mark.slow) if s.name in SLOW_SCRIPTS else s for s in SCRIPTS],
    ids=[s.name for s in SCRIPTS],
)
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


def _load_script(name: str) -> ModuleType:
    path = next(s for s in SCRIPTS if s.name == name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_atlas_script_trains_the_shipped_recipe(tmp_path: Path) -> None:
    """``--full`` is the run file as it is; the quick run changes only the model and grid."""
    from brrrr.models.training import load_run_config

    script = _load_script("train_atlas_vae.py")
    recipe = load_run_config(script.RECIPE)
    args = {"steps": None, "downsample": 4, "seed": 3, "accelerator": "cpu"}
    full = script.run_config(argparse.Namespace(**args, full=True), tmp_path)
    assert full == replace(
        recipe,
        trainer=replace(recipe.trainer, seed=3, accelerator="cpu", progress_bar=False),
        output_dir=str(tmp_path / "run"),
    )
    quick = script.run_config(argparse.Namespace(**{**args, "steps": 384}, full=False), tmp_path)
    assert quick.optim == recipe.optim
    assert quick.module == {**recipe.module, "beta": 0.1}
    assert {k: quick.model[k] for k in recipe.model if k not in script.QUICK_MODEL} == {
        k: v for k, v in recipe.model.items() if k not in script.QUICK_MODEL
    }
    # the schedules keep their share of the run
    assert quick.trainer.max_steps == 384
    assert quick.snapshots.first_cycle_steps == 256
    assert quick.snapshots.cycle_steps == 64
    assert quick.snapshots.restart_lr == recipe.snapshots.restart_lr
    assert quick.kl is not None
    assert quick.kl.warmup_steps == 128
