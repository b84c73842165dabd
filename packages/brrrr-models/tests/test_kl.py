"""Tests of brrrr.models.losses.kl against torch.distributions."""

from __future__ import annotations

import torch
from torch.distributions import Normal, kl_divergence

from brrrr.models.losses.kl import kl_normal, kl_standard_normal


def test_standard_normal_kl_matches_torch_distributions():
    mu, logvar = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(dim=1)
    assert torch.allclose(kl_standard_normal(mu, logvar), expected, rtol=1e-12)


def test_general_kl_matches_torch_distributions_over_spatial_latents():
    shape = (2, 3, 4, 4, 4)
    mq, lq, mp, lp = (torch.randn(shape, dtype=torch.float64) for _ in range(4))
    expected = kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp()))
    assert torch.allclose(kl_normal(mq, lq, mp, lp), expected.flatten(1).sum(1), rtol=1e-12)
    assert torch.allclose(kl_normal(mq, lq, mq, lq), torch.zeros(2, dtype=torch.float64))
