"""Tests of brrrr.models.nets.point_vae: shapes, padding invariance, conditioning, loss."""

from __future__ import annotations

import pytest
import torch

from brrrr.models import PointVAE, point_vae_loss


def _clouds(batch: int = 2, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    points = torch.randn(batch, n, 3) * 40.0
    mask = torch.ones(batch, n, dtype=torch.bool)
    mask[1, 20:] = False
    points[1, 20:] = points[1, : n - 20]  # cyclic copies, as brrrr.preprocess.pointclouds makes
    return points, mask


def test_shapes_and_units(tiny_point_config):
    model = PointVAE(tiny_point_config())
    points, mask = _clouds()
    out = model(points, mask=mask)
    assert out.reconstruction.shape == (2, 16, 3)
    assert out.mu.shape == out.logvar.shape == (2, 4)
    assert out.kl.shape == (2,)
    assert model.decode(out.mu).shape == (2, 16, 3)


def test_padded_points_do_not_change_the_encoding(tiny_point_config):
    model = PointVAE(tiny_point_config()).eval()
    points, mask = _clouds()
    moved = points.clone()
    moved[1, 20:] = 999.0
    assert torch.equal(model.encode(points, mask=mask)[0], model.encode(moved, mask=mask)[0])


def test_metadata_conditioning_is_required_and_used(tiny_point_config):
    model = PointVAE(tiny_point_config(metadata_dim=2)).eval()
    points, mask = _clouds()
    with pytest.raises(ValueError, match="metadata"):
        model(points, mask=mask)
    a = model(points, mask=mask, metadata=torch.zeros(2, 2)).reconstruction
    b = model(points, mask=mask, metadata=torch.ones(2, 2)).reconstruction
    assert not torch.allclose(a, b)


def test_loss_terms_and_gradients(tiny_point_config):
    model = PointVAE(tiny_point_config())
    points, mask = _clouds()
    terms = point_vae_loss(
        model(points, mask=mask), points, target_mask=mask, chamfer_weight=1.0, sinkhorn_weight=0.5
    )
    assert set(terms) == {"loss", "chamfer", "sinkhorn", "kl"}
    expected = terms["chamfer"] + 0.5 * terms["sinkhorn"] + terms["kl"]
    assert torch.allclose(terms["loss"], expected)
    terms["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
