"""Run files: YAML and JSON, defaults, unknown keys rejected; the shipped example parses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brrrr.models import BetaVAEConfig
from brrrr.models.config import config_from_dict
from brrrr.models.errors import ModelConfigError
from brrrr.models.training import load_run_config

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "atlas_vae.yaml"


def test_shipped_example_config() -> None:
    config = load_run_config(EXAMPLE)
    assert config.optim.betas == (0.9, 0.995)
    assert config.kl is not None
    assert config.kl.mode == "linear"
    assert config.snapshots.n_snapshots == 5
    assert config.data.metadata[0] == "year"
    model = config_from_dict(BetaVAEConfig, config.model)
    assert model.decoder_output == "mean_logvar"
    assert model.channels[-1] == 256


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
