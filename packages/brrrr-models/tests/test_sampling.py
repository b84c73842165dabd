"""Tests of brrrr.models.pointnet.sampling against brute-force numpy versions."""

from __future__ import annotations

import numpy as np
import torch

from brrrr.models.pointnet.sampling import ball_query, farthest_point_sampling, index_points


def _greedy_fps(points: np.ndarray, n: int) -> list[int]:
    """Textbook FPS: start at point 0, then repeatedly the point farthest from the chosen set."""
    chosen = [0]
    while len(chosen) < n:
        gaps = [min(np.linalg.norm(p - points[c]) for c in chosen) for p in points]
        chosen.append(int(np.argmax(gaps)))
    return chosen


def test_fps_matches_greedy_numpy():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(3, 40, 3))
    ours = farthest_point_sampling(torch.from_numpy(points), 12)
    for b in range(3):
        assert ours[b].tolist() == _greedy_fps(points[b], 12)


def test_fps_each_pick_is_the_farthest_from_the_previous_ones():
    points = torch.randn(1, 50, 3, dtype=torch.float64)
    picks = farthest_point_sampling(points, 10)[0].tolist()
    for i in range(1, 10):
        gaps = torch.cdist(points[0], points[0, picks[:i]]).amin(dim=1)
        assert gaps[picks[i]] == gaps.max()


def test_fps_never_picks_padding_while_real_points_remain():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(1, 20, 3))
    points[0, 10:] = 100.0  # far away, would be picked first if it counted
    mask = np.zeros((1, 20), dtype=bool)
    mask[0, 2:10] = True
    ours = farthest_point_sampling(torch.from_numpy(points), 6, mask=torch.from_numpy(mask))
    real = np.flatnonzero(mask[0])
    assert ours[0].tolist() == [int(real[i]) for i in _greedy_fps(points[0, real], 6)]
    assert set(
        farthest_point_sampling(torch.from_numpy(points), 12, mask=torch.from_numpy(mask))[
            0
        ].tolist()
    ) <= set(real)


def _numpy_ball_query(
    points: np.ndarray, centre: np.ndarray, radius: float, k: int, mask: np.ndarray
) -> list[int]:
    inside = [
        i for i in range(len(points)) if mask[i] and np.sum((points[i] - centre) ** 2) <= radius**2
    ]
    if not inside:
        real = np.flatnonzero(mask)
        inside = [int(real[np.argmin(np.sum((points[real] - centre) ** 2, axis=1))])]
    return (inside + [inside[0]] * k)[:k]


def test_ball_query_matches_numpy_first_k_within_radius():
    rng = np.random.default_rng(2)
    points = rng.uniform(-1, 1, size=(2, 30, 3))
    centres = rng.uniform(-1, 1, size=(2, 7, 3))
    mask = rng.random((2, 30)) < 0.8
    ours = ball_query(
        torch.from_numpy(points),
        torch.from_numpy(centres),
        radius=0.6,
        n_neighbors=5,
        mask=torch.from_numpy(mask),
    )
    for b in range(2):
        for s in range(7):
            assert ours[b, s].tolist() == _numpy_ball_query(
                points[b], centres[b, s], 0.6, 5, mask[b]
            )


def test_index_points_gathers_per_batch():
    points = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    index = torch.tensor([[[3, 0]], [[1, 1]]])
    out = index_points(points, index)
    assert out.shape == (2, 1, 2, 3)
    assert torch.equal(out[1, 0, 0], points[1, 1])
    assert torch.equal(out[0, 0, 0], points[0, 3])
