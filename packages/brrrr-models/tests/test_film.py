"""Tests of brrrr.models.blocks.film: identity at zero init, per-channel affine once trained."""

from __future__ import annotations

import torch

from brrrr.models.blocks.film import FiLM


def test_zero_init_is_the_identity_and_gets_gradients():
    film = FiLM(8, cond_dim=3)
    x = torch.randn(2, 8, 3, 4, 5)
    cond = torch.randn(2, 3)
    out = film(x, cond)
    assert torch.equal(out, x)
    assert torch.equal(film(x, None), x)
    (out * torch.randn_like(out)).sum().backward()
    assert film.linear.weight.grad is not None
    assert film.linear.weight.grad.abs().sum() > 0


def test_modulation_is_a_per_channel_scale_and_shift():
    film = FiLM(2, cond_dim=1)
    with torch.no_grad():
        film.linear.bias.copy_(torch.tensor([1.0, -0.5, 3.0, 0.0]))  # gamma (2), beta (2)
    x = torch.ones(1, 2, 2, 2)
    out = film(x, torch.zeros(1, 1))
    assert torch.allclose(out[0, 0], torch.full((2, 2), 2.0 + 3.0))
    assert torch.allclose(out[0, 1], torch.full((2, 2), 0.5))
