"""Run files: YAML and JSON, defaults, unknown keys rejected; the shipped run parses and trains."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from brrrr.models import BetaVAEConfig
from brrrr.models.config import config_from_dict
from brrrr.models.errors import ModelConfigError
from brrrr.models.training import (
    BetaVAEModule,
    build_module,
    load_run_config,
    run_config_from_dict,
    train,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "atlas_vae.yaml"


def test_shipped_example_config() -> None:
    config = load_run_config(EXAMPLE)
    assert config.optim.betas == (0.9, 0.995)
    assert config.kl is not None
    assert config.kl.mode == "linear"
    assert config.data.metadata[0] == "year"
    model = config_from_dict(BetaVAEConfig, config.model)
    assert model.decoder_output == "mean_logvar"
    assert model.channels[-1] == 256
    # the recipe of scripts/train_atlas_vae.py: reference maps, the detached variance fit,
    # one long snapshot cycle, then short ones restarted at a quarter of the rate
    assert model.reference_maps
    assert model.variance_gradient == "stopped"
    assert config.module["variance_fit"] == "detached"
    snapshots = config.snapshots
    assert snapshots.n_snapshots == 3
    assert snapshots.first_cycle_steps is not None
    assert snapshots.first_cycle_steps > snapshots.cycle_steps
    assert snapshots.restart_lr == config.optim.lr / 4
    last = snapshots.first_cycle_steps + (snapshots.n_snapshots - 1) * snapshots.cycle_steps
    assert last == config.trainer.max_steps  # the run ends on the last snapshot
    assert config.kl.warmup_steps < config.trainer.max_steps


def test_shipped_example_trains(tmp_path: Path, peak_csv: Callable[[Path], Path]) -> None:
    """Two steps of the shipped run, on the 16 mm grid (12×14×12) and toy peaks, on CPU."""
    config = load_run_config(EXAMPLE)
    config = replace(
        config,
        data=replace(config.data, source=str(peak_csv(tmp_path / "peaks.csv")), downsample=8),
        trainer=replace(config.trainer, max_steps=2, accelerator="cpu", progress_bar=False),
        output_dir=str(tmp_path / "run"),
    )
    result = train("vae", config, enable_model_summary=False)
    assert result.trainer.global_step == 2
    module = result.module
    assert isinstance(module, BetaVAEModule)
    assert module.variance_fit == "detached"
    assert module.model.config.grid_shape == (12, 14, 12)
    assert module.model.reference_mean is not None
    assert float(module.model.reference_mean.abs().sum()) > 0
    assert all(torch.isfinite(p).all() for p in module.model.parameters())
    assert (result.model_dir / "model.safetensors").exists()


def test_unknown_module_settings_are_rejected(tmp_path: Path, tiny_maps: Any) -> None:
    config = run_config_from_dict({"module": {"variance_fit": "detached"}})
    with pytest.raises(ModelConfigError, match=r"no setting\(s\) \['variance_fit'\]"):
        build_module("hvae", config, tiny_maps(tmp_path / "cache"))


def test_json_and_yaml_agree_and_null_kl_disables_the_controller(tmp_path: Path) -> None:
    payload = {"trainer": {"max_steps": 7, "devices": 2}, "kl": None, "output_dir": "x"}
    (tmp_path / "run.json").write_text(json.dumps(payload))
    (tmp_path / "run.yaml").write_text(
        "trainer: {max_steps: 7, devices: 2}\nkl: null\noutput_dir: x\n"
    )
    a, b = load_run_config(tmp_path / "run.json"), load_run_config(tmp_path / "run.yaml")
    assert a == b
    assert a.kl is None
    assert a.trainer.max_steps == 7
    assert a.output_dir == "x"


def test_bad_run_files_are_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: {max_stepz: 7}\n")
    with pytest.raises(ModelConfigError, match="max_stepz"):
        load_run_config(bad)
    bad.write_text("optimiser: {}\n")
    with pytest.raises(ModelConfigError, match="unknown run-file section"):
        load_run_config(bad)
    bad.write_text("kl: {mode: target}\n")
    with pytest.raises(ModelConfigError, match="target_kl"):
        load_run_config(bad)
    toml = tmp_path / "run.toml"
    toml.write_text("")
    with pytest.raises(ModelConfigError, match=r"\.yaml, \.yml or \.json"):
        load_run_config(toml)
