"""Tests of brrrr.models.blocks.{resnet, encoder, decoder}: shapes, GroupNorm(8), FiLM wiring."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from brrrr.models.blocks.decoder import ResNetDecoder3d
from brrrr.models.blocks.encoder import ResNetEncoder3d
from brrrr.models.blocks.resnet import Downsample3d, ResBlock3d, Upsample3d, group_norm


def test_block_keeps_the_grid_at_any_dilation_and_uses_groupnorm_8():
    for dilation in (1, 2, 3):
        block = ResBlock3d(8, out_channels=16, dilation=dilation, cond_dim=4)
        assert block(torch.randn(2, 8, 5, 6, 7), torch.randn(2, 4)).shape == (2, 16, 5, 6, 7)
    assert block.norm1.num_groups == block.norm2.num_groups == 8
    with pytest.raises(ValueError, match="divisible"):
        group_norm(12)


def test_block_ignores_conditioning_at_init():
    block = ResBlock3d(8, cond_dim=3)
    x = torch.randn(1, 8, 4, 4, 4)
    assert torch.equal(block(x, torch.randn(1, 3)), block(x, None))


def test_down_and_up_sampling_halve_and_double():
    assert Downsample3d(8, out_channels=16)(torch.randn(1, 8, 6, 8, 10)).shape == (1, 16, 3, 4, 5)
    assert Upsample3d(16, out_channels=8)(torch.randn(1, 16, 3, 4, 5)).shape == (1, 8, 6, 8, 10)


def test_encoder_and_decoder_mirror_each_other():
    encoder = ResNetEncoder3d(1, channels=(8, 16, 16), dilations=(1, 2), cond_dim=4)
    decoder = ResNetDecoder3d(2, channels=(8, 16, 16), dilations=(1, 2), cond_dim=4)
    cond = torch.randn(2, 4)
    features = encoder(torch.randn(2, 1, 8, 12, 8), cond)
    assert [tuple(f.shape[1:]) for f in features] == [(8, 8, 12, 8), (16, 4, 6, 4), (16, 2, 3, 2)]
    assert decoder(features[-1], cond).shape == (2, 2, 8, 12, 8)
    assert encoder.total_stride == 4
    norms = [m for m in encoder.modules() if isinstance(m, nn.GroupNorm)]
    assert norms
    assert all(m.num_groups == 8 for m in norms)


def test_decoder_can_be_split_at_a_stage():
    kwargs = {"channels": (8, 16, 16), "dilations": (1, 1)}
    low = ResNetDecoder3d(0, stop_stage=1, **kwargs)  # type: ignore[arg-type]
    high = ResNetDecoder3d(1, start_stage=1, **kwargs)  # type: ignore[arg-type]
    mid = low(torch.randn(1, 16, 2, 2, 2))
    assert mid.shape == (1, 16, 4, 4, 4)
    assert high(mid).shape == (1, 1, 8, 8, 8)
