"""Tests of brrrr.models.layers.padding: the MNI grid, and crop undoes pad."""

from __future__ import annotations

import pytest
import torch

from brrrr.models.layers.padding import crop_to_shape, pad_to_multiple, pad_widths, padded_shape


def test_mni_2mm_grid_pads_to_96_112_96():
    assert padded_shape((91, 109, 91), multiple=16) == (96, 112, 96)
    assert pad_widths((91, 109, 91), multiple=16) == ((2, 3), (1, 2), (2, 3))


def test_crop_undoes_pad_and_the_padding_is_zero():
    x = torch.randn(2, 3, 11, 13, 9)
    padded = pad_to_multiple(x, multiple=4)
    assert padded.shape == (2, 3, 12, 16, 12)
    assert torch.equal(crop_to_shape(padded, (11, 13, 9), multiple=4), x)
    assert float(padded.abs().sum()) == pytest.approx(float(x.abs().sum()), rel=1e-6)


def test_divisible_grid_is_left_alone():
    x = torch.randn(1, 1, 8, 8, 8)
    assert pad_to_multiple(x, multiple=8) is x
