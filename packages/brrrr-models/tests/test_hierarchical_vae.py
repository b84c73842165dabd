"""Tests of brrrr.models.nets.hierarchical_vae: shapes, stop-gradients, both levels carry information."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from brrrr.models import HierarchicalVAE, hierarchical_vae_loss
from brrrr.models.losses.reconstruction import gaussian_nll


def _structured(n: int, generator: torch.Generator) -> torch.Tensor:
    """8×8×8 maps: two global gradients (for the top level) + 2×2×2-block local detail (bottom)."""
    ramp = torch.linspace(-1, 1, 8)
    gradients = torch.stack(
        [ramp.view(8, 1, 1).expand(8, 8, 8), ramp.view(1, 8, 1).expand(8, 8, 8)]
    )
    weights = torch.randn(n, 2, generator=generator) * 2
    glob = torch.einsum("nk,kijl->nijl", weights, gradients)[:, None]
    local = F.interpolate(
        torch.randn(n, 1, 4, 4, 4, generator=generator), scale_factor=2.0, mode="nearest"
    )
    return glob + local + 0.05 * torch.randn(n, 1, 8, 8, 8, generator=generator)


def test_shapes_with_metadata_and_aleatoric_outputs(tiny_hierarchical_config):
    model = HierarchicalVAE(tiny_hierarchical_config(metadata_dim=2, decoder_output="mean_logvar"))
    out = model(torch.randn(2, 1, 8, 8, 8), metadata=torch.randn(2, 2))
    assert out.reconstruction.shape == out.reconstruction_top.shape == (2, 1, 8, 8, 8)
    assert out.reconstruction_logvar is not None
    assert out.reconstruction_top_logvar is not None
    assert out.mu.shape == (2, 4)
    assert (
        out.mu_bottom.shape
        == out.prior_mu_bottom.shape
        == (
            2,
            2,
            4,
            4,
            4,
        )
    )
    assert out.kl.shape == (2,)
    mean, _ = model.decode(out.mu, metadata=torch.randn(2, 2))
    assert mean.shape == (2, 1, 8, 8, 8)


def test_stop_gradient_keeps_the_full_reconstruction_out_of_the_top_path(tiny_hierarchical_config):
    x = torch.randn(2, 1, 8, 8, 8)
    for mode, expect_zero in (("skips", True), ("none", False)):
        model = HierarchicalVAE(tiny_hierarchical_config(stop_gradient=mode))
        out = model(x)
        gaussian_nll(x, out.reconstruction).sum().backward()
        for module in (model.encoder, model.top_posterior, model.top_decoder):
            grads = [p.grad for p in module.parameters()]
            total = sum(float(g.abs().sum()) for g in grads if g is not None)
            assert (total == 0.0) is expect_zero, (mode, type(module).__name__)
        assert model.from_bottom.weight.grad is not None
        assert model.from_bottom.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_both_levels_carry_information_after_a_short_training(tiny_hierarchical_config):
    model = HierarchicalVAE(tiny_hierarchical_config())
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    held_out = _structured(32, torch.Generator().manual_seed(1))
    with torch.no_grad():
        start = model.eval()(held_out)
    model.train()
    for _ in range(40):
        x = _structured(8, generator)
        terms = hierarchical_vae_loss(model(x), x, beta=1.0)
        optimiser.zero_grad()
        terms["loss"].backward()
        optimiser.step()
    with torch.no_grad():
        end = model.eval()(held_out)
    kl_top, kl_bottom = float(end.kl_top.mean()), float(end.kl_bottom.mean())
    # Random init: KL_top ≈ 0.03 nats. After training both levels hold several nats.
    assert float(start.kl_top.mean()) < 0.5
    assert kl_top > 2.0, kl_top
    assert kl_bottom > 2.0, kl_bottom
