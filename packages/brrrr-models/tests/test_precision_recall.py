"""Improved precision/recall on constructed cases and against a brute-force reference."""

from __future__ import annotations

import numpy as np
import torch

from brrrr.models.evaluation import improved_precision_recall, knn_radii


def test_identical_sets_give_one_and_disjoint_sets_zero() -> None:
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    same = improved_precision_recall(x, x.clone(), k=3)
    assert (same.precision, same.recall) == (1.0, 1.0)
    far = improved_precision_recall(x, x + 1000.0, k=3)
    assert (far.precision, far.recall) == (0.0, 0.0)


def test_mode_collapse_has_precision_but_no_recall() -> None:
    generator = torch.Generator().manual_seed(1)
    real = torch.randn(200, 2, generator=generator)
    collapsed = real[:5].repeat(40, 1) + 1e-3 * torch.randn(200, 2, generator=generator)
    result = improved_precision_recall(real, collapsed, k=3)
    assert result.precision == 1.0
    assert result.recall < 0.2


def test_against_brute_force_numpy() -> None:
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(60, 3)), rng.normal(0.5, 1.2, size=(45, 3))

    def radii(points: np.ndarray, k: int) -> np.ndarray:
        d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def inside(queries: np.ndarray, manifold: np.ndarray, r: np.ndarray) -> float:
        d = np.sqrt(((queries[:, None] - manifold[None]) ** 2).sum(-1))
        return float((d <= r[None]).any(axis=1).mean())

    result = improved_precision_recall(torch.from_numpy(real), torch.from_numpy(fake), k=3)
    assert result.precision == inside(fake, real, radii(real, 3))
    assert result.recall == inside(real, fake, radii(fake, 3))
    np.testing.assert_allclose(knn_radii(torch.from_numpy(real), k=3, chunk=7), radii(real, 3))
