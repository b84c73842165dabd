"""Tests of brrrr.models.losses.chamfer against a brute-force numpy double loop."""

from __future__ import annotations

import numpy as np
import torch

from brrrr.models.losses.chamfer import chamfer_distance


def _brute_force(x: np.ndarray, y: np.ndarray) -> float:
    def directed(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean([min(float(np.sum((p - q) ** 2)) for q in b) for p in a]))

    return directed(x, y) + directed(y, x)


def test_matches_brute_force_numpy_with_masks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 9, 3))
    y = rng.normal(size=(3, 12, 3)) * 2
    x_mask = rng.random((3, 9)) < 0.7
    y_mask = rng.random((3, 12)) < 0.6
    x_mask[:, 0] = y_mask[:, 0] = True
    ours = chamfer_distance(
        torch.from_numpy(x),
        torch.from_numpy(y),
        x_mask=torch.from_numpy(x_mask),
        y_mask=torch.from_numpy(y_mask),
    )
    expected = [_brute_force(x[b][x_mask[b]], y[b][y_mask[b]]) for b in range(3)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


def test_identical_sets_are_zero_and_padding_is_ignored():
    x = torch.randn(2, 6, 3)
    assert torch.equal(chamfer_distance(x, x), torch.zeros(2))
    padded = torch.cat([x, torch.full((2, 4, 3), 1e3)], dim=1)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[:, :6] = True
    assert torch.allclose(chamfer_distance(x, padded, y_mask=mask), torch.zeros(2))


def test_gradients_are_finite():
    x = torch.randn(1, 5, 3, requires_grad=True)
    chamfer_distance(x, x.detach().clone()).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
