"""Latent traversals, their PNG grid, loss and calibration plots, and the evaluation report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from brrrr.models import BetaVAE, BetaVAEConfig
from brrrr.models.evaluation import (
    PCAFeatures,
    evaluate_maps,
    gaussian_calibration_curve,
    latent_traversal,
    plot_calibration,
    plot_loss_curves,
    save_traversal_png,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _model() -> BetaVAE:
    return BetaVAE(
        BetaVAEConfig(
            grid_shape=(8, 10, 8),
            channels=(8, 8),
            dilations=(1,),
            latent_dim=3,
            bottleneck_channels=8,
            decoder_output="mean_logvar",
        )
    ).eval()


def test_traversal_changes_only_the_swept_dimension(tmp_path: Path) -> None:
    model = _model()
    maps = latent_traversal(model, dims=[0, 2], values=[-2.0, 0.0, 2.0])
    assert maps.shape == (2, 3, 8, 10, 8)
    zero, _ = model.decode(torch.zeros(1, 3))
    torch.testing.assert_close(maps[0, 1], zero[0, 0])  # value 0 is the base latent
    torch.testing.assert_close(maps[1, 1], zero[0, 0])
    z = torch.zeros(1, 3)
    z[0, 2] = 2.0
    torch.testing.assert_close(maps[1, 2], model.decode(z)[0][0, 0])
    path = save_traversal_png(maps, tmp_path / "t.png", dims=[0, 2], values=[-2.0, 0.0, 2.0])
    assert path.read_bytes()[:8] == PNG


def test_plots_write_pngs(tmp_path: Path) -> None:
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,train/loss,val/loss\n0,1,5.0,\n0,2,4.0,\n0,2,,4.5\n1,3,3.0,\n")
    assert plot_loss_curves(csv, tmp_path / "loss.png").read_bytes()[:8] == PNG
    x = torch.randn(100)
    curve = gaussian_calibration_curve(x, torch.zeros(100), torch.ones(100))
    assert plot_calibration({"aleatoric": curve}, tmp_path / "c.png").read_bytes()[:8] == PNG


def test_evaluate_maps_reports_every_metric() -> None:
    models = [_model() for _ in range(2)]
    x = torch.rand(6, 1, 8, 10, 8)
    metrics, curves = evaluate_maps(models[0], x, ensemble=models, k=2)
    assert metrics["n_maps"] == 6
    assert set(metrics["reconstruction"]) == {
        "mse",
        "mae",
        "correlation",
    }
    assert 0 <= metrics["ece_aleatoric"] <= 1
    assert set(curves) == {
        "aleatoric",
        "ensemble",
        "epistemic only",
    }
    assert metrics["ensemble"]["members"] == 2
    assert metrics["ensemble"]["mean_epistemic_variance"] > 0
    assert 0 <= metrics["precision_recall"]["precision"] <= 1


def _brute_force_pr(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def radii(points: np.ndarray) -> np.ndarray:
        d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]

    def inside(queries: np.ndarray, manifold: np.ndarray) -> float:
        d = np.sqrt(((queries[:, None] - manifold[None]) ** 2).sum(-1))
        return float((d <= radii(manifold)[None]).any(axis=1).mean())

    return inside(fake, real), inside(real, fake)


def test_latent_precision_recall_compares_posterior_draws_with_prior_draws() -> None:
    model = _model()
    x = torch.rand(12, 1, 8, 10, 8)
    metrics, _ = evaluate_maps(model, x, k=3, seed=5)
    with torch.no_grad():
        out = model(x)
    generator = torch.Generator().manual_seed(5)
    real = out.mu + torch.exp(0.5 * out.logvar) * torch.randn(out.mu.shape, generator=generator)
    prior = torch.randn(out.mu.shape, generator=generator)
    precision, recall = _brute_force_pr(real.double().numpy(), prior.double().numpy(), 3)
    pr = metrics["precision_recall"]
    assert (pr["precision"], pr["recall"]) == (precision, recall)
    assert pr["n"] == 12
    assert pr["k"] == 3
    assert 0 < pr["same_distribution"]["precision"] <= 1


def test_baseline_and_feature_space_metrics() -> None:
    model = _model()
    x = torch.rand(10, 1, 8, 10, 8)
    mask = torch.ones(1, 1, 8, 10, 8)
    mask[..., :2] = 0
    mean_map = x.mean(dim=0, keepdim=True)
    features = PCAFeatures.fit(torch.rand(20, 1, 8, 10, 8), n_components=4, mask=mask)
    metrics, _ = evaluate_maps(
        model, x, voxel_mask=mask, baseline=mean_map, features=features, k=3, seed=1
    )
    assert set(metrics["baseline"]) == {"mse", "mae", "correlation"}
    versus = metrics["versus_baseline"]
    assert versus["mse_ratio"] == pytest.approx(
        metrics["reconstruction"]["mse"] / metrics["baseline"]["mse"]
    )
    assert 0 <= versus["share_of_maps_lower_mse"] <= 1
    in_features = metrics["precision_recall_features"]
    assert in_features["dim"] == 4
    # the same draws, in the same order: posterior, prior, two reference sets, then the decoder's
    generator = torch.Generator().manual_seed(1)
    draws = [torch.randn(10, 3, generator=generator) for _ in range(5)]
    with torch.no_grad():
        decoded, _ = model.decode(draws[4])
    precision, recall = _brute_force_pr(features(x).numpy(), features(decoded).numpy(), 3)
    assert (in_features["precision"], in_features["recall"]) == (precision, recall)
