"""Tests of brrrr.models.blocks.gradient_reversal and the nuisance adversary."""

from __future__ import annotations

import torch

from brrrr.models.blocks.adversary import NuisanceAdversary
from brrrr.models.blocks.gradient_reversal import GradientReversal, gradient_reversal


def test_forward_is_identity_backward_is_negated_and_scaled():
    x = torch.randn(4, 3, requires_grad=True)
    weights = torch.randn(4, 3)
    y = gradient_reversal(x, scale=0.7)
    assert torch.equal(y, x)
    (y * weights).sum().backward()
    assert x.grad is not None
    assert torch.allclose(x.grad, -0.7 * weights)


def test_module_scale_can_change_during_training():
    layer = GradientReversal(scale=1.0)
    x = torch.ones(2, requires_grad=True)
    layer.scale = 0.0
    layer(x).sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, torch.zeros(2))


def test_adversary_trains_itself_but_pushes_the_latent_the_other_way():
    torch.manual_seed(0)
    adversary = NuisanceAdversary(5, hidden_dim=8)
    latent = torch.randn(6, 5, requires_grad=True)
    target = torch.randn(6, 1)

    def grads(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        adversary.zero_grad()
        latent.grad = None
        adversary.reversal.scale = scale
        ((adversary(latent) - target) ** 2).mean().backward()
        assert latent.grad is not None
        assert adversary.mlp[0].weight.grad is not None
        return latent.grad.clone(), adversary.mlp[0].weight.grad.clone()

    reversed_latent, reversed_adversary = grads(1.0)
    plain_latent, plain_adversary = grads(-1.0)  # scale -1: an ordinary pass-through
    assert torch.allclose(reversed_latent, -plain_latent)
    assert torch.allclose(reversed_adversary, plain_adversary)
