"""Tests of brrrr.models.layers.gaussian: the reparameterisation and the head."""

from __future__ import annotations

import torch

from brrrr.models.layers.gaussian import GaussianHead, reparameterize, soft_clamp


def test_reparameterize_has_the_requested_moments_and_gradients():
    mu = torch.full((20000, 2), 3.0, requires_grad=True)
    logvar = torch.full((20000, 2), 2 * torch.log(torch.tensor(0.5)).item(), requires_grad=True)
    z = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert abs(float(z.detach().mean()) - 3.0) < 0.02
    assert abs(float(z.detach().std()) - 0.5) < 0.02
    z.sum().backward()
    assert mu.grad is not None
    assert torch.all(mu.grad == 1)
    assert logvar.grad is not None
    assert torch.all(logvar.grad != 0)


def test_head_soft_clamps_the_log_variance():
    head = GaussianHead(4, latent_dim=3, logvar_limit=5.0)
    with torch.no_grad():
        mu, logvar = head(torch.randn(2, 4) * 1e4)
    assert mu.shape == logvar.shape == (2, 3)
    assert float(logvar.abs().max()) <= 5.0
    assert torch.allclose(
        soft_clamp(torch.tensor([0.1]), limit=10.0), torch.tensor([0.1]), atol=1e-4
    )
