"""Tests of brrrr.models.export: onnxruntime agrees with torch within 1e-4 for every network."""

from __future__ import annotations

import onnx
import pytest
import torch

from brrrr.models import BetaVAE, HierarchicalVAE, PointVAE, export_onnx


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["beta", "hierarchical", "point"])
def test_encoder_and_decoder_match_torch(
    kind, tmp_path, tiny_beta_config, tiny_hierarchical_config, tiny_point_config
):
    model: torch.nn.Module
    if kind == "beta":
        model = BetaVAE(
            tiny_beta_config(metadata_dim=2, nuisance_dim=1, decoder_output="mean_logvar")
        )
    elif kind == "hierarchical":
        model = HierarchicalVAE(tiny_hierarchical_config())
    else:
        model = PointVAE(tiny_point_config(metadata_dim=2))
    model.train()
    report = export_onnx(model, tmp_path, batch_size=2, check_batch_size=3)
    assert model.training  # mode restored
    assert set(report.paths) == {"encoder", "decoder"}
    for path in report.paths.values():
        onnx.checker.check_model(onnx.load(str(path)))
    assert all(diff <= 1e-4 for diff in report.max_abs_diff.values()), report.max_abs_diff
