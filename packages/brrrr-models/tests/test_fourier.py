"""Tests of brrrr.models.pointnet.fourier."""

from __future__ import annotations

import math

import torch

from brrrr.models.pointnet.fourier import GaussianFourierFeatures


def test_features_are_sin_cos_of_seeded_gaussian_projections():
    features = GaussianFourierFeatures(3, n_frequencies=64, sigma=2.0, seed=7)
    again = GaussianFourierFeatures(3, n_frequencies=64, sigma=2.0, seed=7)
    assert torch.equal(features.frequencies, again.frequencies)
    assert abs(float(features.frequencies.std()) - 2.0) < 0.3
    coords = torch.randn(4, 5, 3)
    out = features(coords)
    assert out.shape == (4, 5, 128)
    assert features.out_features == 128
    projected = 2 * math.pi * coords @ features.frequencies
    assert torch.allclose(out, torch.cat([projected.sin(), projected.cos()], dim=-1), atol=1e-5)
    assert torch.allclose(out[..., :64] ** 2 + out[..., 64:] ** 2, torch.ones(4, 5, 64), atol=1e-5)


def test_frequencies_are_saved_with_the_weights():
    assert "frequencies" in GaussianFourierFeatures(3, n_frequencies=4).state_dict()
