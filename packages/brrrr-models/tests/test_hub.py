"""Tests of brrrr.models.hub: safetensors + config round trip in a local folder."""

from __future__ import annotations

import json

import pytest
import torch

from brrrr.models import BetaVAE, HierarchicalVAE, PointVAE
from brrrr.models.errors import ModelConfigError


def test_beta_vae_round_trip_gives_identical_outputs(tmp_path, tiny_beta_config):
    model = BetaVAE(tiny_beta_config(metadata_dim=2, nuisance_dim=1)).eval()
    model.save_pretrained(tmp_path)
    assert {"model.safetensors", "config.json"} <= {p.name for p in tmp_path.iterdir()}
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "BetaVAE"
    assert saved["channels"] == [8, 8, 16]
    loaded = BetaVAE.from_pretrained(tmp_path)
    assert loaded.config == model.config
    assert not loaded.training
    x, meta = torch.randn(2, 1, 11, 13, 11), torch.randn(2, 2)
    a, b = model(x, metadata=meta), loaded(x, metadata=meta)
    assert torch.equal(a.reconstruction, b.reconstruction)
    assert torch.equal(a.mu, b.mu)


def test_point_and_hierarchical_round_trips(tmp_path, tiny_point_config, tiny_hierarchical_config):
    point = PointVAE(tiny_point_config()).eval()
    point.save_pretrained(tmp_path / "point")
    points = torch.randn(2, 32, 3) * 40
    assert torch.equal(
        PointVAE.from_pretrained(tmp_path / "point")(points).reconstruction,
        point(points).reconstruction,
    )
    hier = HierarchicalVAE(tiny_hierarchical_config()).eval()
    hier.save_pretrained(tmp_path / "hier")
    x = torch.randn(2, 1, 8, 8, 8)
    assert torch.equal(
        HierarchicalVAE.from_pretrained(tmp_path / "hier")(x).reconstruction, hier(x).reconstruction
    )


def test_loading_with_the_wrong_class_names_the_right_one(tmp_path, tiny_point_config):
    PointVAE(tiny_point_config()).save_pretrained(tmp_path)
    with pytest.raises(ModelConfigError, match=r"PointVAE\.from_pretrained"):
        BetaVAE.from_pretrained(tmp_path)


def test_missing_weights_are_an_error(tmp_path, tiny_beta_config):
    model = BetaVAE(tiny_beta_config())
    model.save_pretrained(tmp_path)
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(tmp_path / "model.safetensors"))
    tensors.pop("encoder.stem.weight")
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(RuntimeError, match=r"encoder\.stem\.weight"):
        BetaVAE.from_pretrained(tmp_path)
