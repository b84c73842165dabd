"""scripts/train_lesion_model.py end to end on a tiny budget (a few steps on two cases):
it writes loadable safetensors weights, the config and metrics, and is deterministic."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from brrrr.models.segmentation import load_network_segmenter, synthetic_stroke_case
from brrrr.models.segmentation.preprocessing import same_grid

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "train_lesion_model.py"
TINY = ["--steps", "2", "--train-cases", "2", "--val-cases", "1"]


@pytest.mark.slow
def test_training_script_runs_end_to_end_and_is_deterministic(tmp_path: Path) -> None:
    out = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "held-out Dice" in completed.stdout
    weights = out / "lesion_segresnet_synthetic.safetensors"
    config = json.loads((out / "lesion_segresnet_synthetic.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["metadata"]["steps"] == 2
    assert "SYNTHETIC" in config["description"]
    assert set(metrics["held_out"]) >= {"dice", "dice_no_flair", "dice_varied_grid", "lesion_f1"}
    assert metrics["training"]["parameters"] > 0

    segmenter = load_network_segmenter(weights)
    case = synthetic_stroke_case(7, shape=(42, 51, 42), spacing=4.0)
    assert same_grid(segmenter.segment(case.inputs()).mask, case.dwi)

    # The same run in this process gives the same weights. Bytes are not compared: the pytest
    # process may have other torch thread settings (and, once some compiled libraries are loaded,
    # flush-to-zero floats), which changes float32 summation order and subnormals.
    spec = importlib.util.spec_from_file_location("train_lesion_model", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recipe = yaml.safe_load(module.RECIPE.read_text())
    again = tmp_path / "again"
    module.train(recipe, out=again, steps=2, train_cases=2, val_cases=1)
    first, second = load_file(weights), load_file(again / weights.name)
    assert first.keys() == second.keys()
    for name, tensor in first.items():
        assert torch.allclose(tensor, second[name], rtol=1e-4, atol=1e-5), name
