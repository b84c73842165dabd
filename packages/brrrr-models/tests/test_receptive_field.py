"""Tests of brrrr.models.layers.receptive_field: formula, the β-VAE's figure, and an empirical check."""

from __future__ import annotations

import torch
from torch import nn

from brrrr.models import BetaVAE
from brrrr.models.blocks.encoder import ResNetEncoder3d
from brrrr.models.blocks.resnet import ResBlock3d
from brrrr.models.layers.receptive_field import ConvSpec, receptive_field


def test_formula_on_a_hand_worked_chain():
    # 1 + 2 + 2 + 2*2*2 (dilation 2 after one stride 2)
    assert receptive_field([ConvSpec(3), ConvSpec(3, stride=2), ConvSpec(3, dilation=2)]) == 13
    assert receptive_field([]) == 1


def test_default_beta_vae_sees_more_than_150_mm_at_2_mm():
    model = BetaVAE()
    assert model.receptive_field_voxels() == 249
    assert model.receptive_field_mm(spacing_mm=2.0) == 498.0
    assert model.receptive_field_mm(spacing_mm=2.0) > 150.0


def test_formula_matches_the_gradient_footprint_of_a_real_encoder():
    encoder = ResNetEncoder3d(1, channels=(8, 8, 8), dilations=(1, 2))
    # GroupNorm mixes every voxel through its statistics; take it out to see the conv footprint.
    for module in encoder.modules():
        if isinstance(module, ResBlock3d):
            module.norm1, module.norm2 = nn.Identity(), nn.Identity()
    x = torch.randn(1, 1, 72, 72, 72, requires_grad=True)
    deepest = encoder(x)[-1]
    centre = deepest.shape[-1] // 2
    deepest[0, :, centre, centre, centre].sum().backward()
    assert x.grad is not None
    touched = x.grad[0, 0].abs().sum(dim=(1, 2)).nonzero().flatten()
    span = int(touched.max() - touched.min() + 1)
    assert span == encoder.receptive_field_voxels() == 49
