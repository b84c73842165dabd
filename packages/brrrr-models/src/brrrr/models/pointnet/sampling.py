"""Farthest-point sampling, ball query and grouping for PointNet++, in pure torch.

No compiled extension: the loops are over the number of centroids (tens to hundreds), and
every step is a batched tensor operation, so it runs on CPU and GPU alike.

Padded points (mask false) are never picked as centroids while a real point is left, and never
returned as neighbours.

Example:
    >>> import torch
    >>> pts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [10, 0, 0], [5, 0, 0]]])
    >>> farthest_point_sampling(pts, 3).tolist()
    [[0, 2, 3]]
"""

from __future__ import annotations

import torch

from brrrr.models.losses.chamfer import pairwise_squared_distances

__all__ = ["ball_query", "farthest_point_sampling", "index_points"]


def index_points(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather points (or per-point features) by index, batch by batch.

    Args:
        points: ``(B, N, C)``.
        index: ``(B, *S)`` integer indices into ``N``.

    Returns:
        ``(B, *S, C)``.
    """
    batch, channels = points.shape[0], points.shape[-1]
    flat = index.reshape(batch, -1)
    gathered = torch.gather(points, 1, flat[..., None].expand(-1, -1, channels))
    return gathered.reshape(*index.shape, channels)


def farthest_point_sampling(
    points: torch.Tensor, n_samples: int, *, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Greedy farthest-point sampling.

    The first centroid is the first real point; each next one is the real point farthest (in
    Euclidean distance) from all centroids chosen so far, ties going to the lowest index. Once
    every real point is chosen, further picks repeat real points.

    Args:
        points: ``(B, N, D)`` coordinates.
        n_samples: Number ``S`` of centroids.
        mask: ``(B, N)`` bool, true for real points (``None``: all real).

    Returns:
        ``(B, S)`` long indices into ``N``.
    """
    batch, n = points.shape[:2]
    if mask is None:
        mask = torch.ones(batch, n, dtype=torch.bool, device=points.device)
    mask = mask.to(torch.bool)
    # Padded points sit at -1, below every real distance (>= 0), so they are never the argmax.
    unreached = torch.full(
        (batch, n), torch.finfo(points.dtype).max, dtype=points.dtype, device=points.device
    )
    distance = torch.where(mask, unreached, torch.full_like(unreached, -1.0))
    current = mask.to(torch.int64).argmax(dim=1)
    chosen = []
    for _ in range(n_samples):
        chosen.append(current)
        centre = index_points(points, current[:, None])  # (B, 1, D)
        step = (points - centre).square().sum(dim=-1)
        distance = torch.where(mask, torch.minimum(distance, step), distance)
        current = distance.argmax(dim=1)
    return torch.stack(chosen, dim=1)


def ball_query(
    points: torch.Tensor,
    centroids: torch.Tensor,
    *,
    radius: float,
    n_neighbors: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The first ``K`` real points (by index) within ``radius`` of each centroid.

    As in the reference PointNet++ implementation, a ball with fewer than ``K`` points is
    filled with its first neighbour repeated; a ball with none (a centroid away from every
    real point) gets its nearest real point.

    Args:
        points: ``(B, N, D)`` coordinates.
        centroids: ``(B, S, D)`` ball centres.
        radius: Ball radius, in the units of the coordinates.
        n_neighbors: ``K``.
        mask: ``(B, N)`` bool, true for real points (``None``: all real).

    Returns:
        ``(B, S, K)`` long indices into ``N``.
    """
    batch, n = points.shape[:2]
    if mask is None:
        mask = torch.ones(batch, n, dtype=torch.bool, device=points.device)
    mask = mask.to(torch.bool)[:, None, :]
    dist = pairwise_squared_distances(centroids, points)  # (B, S, N)
    inside = (dist <= radius * radius) & mask
    order = torch.arange(n, device=points.device).expand_as(dist)
    candidates = torch.where(inside, order, torch.full_like(order, n))
    k = min(n_neighbors, n)
    first_k = torch.topk(candidates, k, dim=-1, largest=False, sorted=True).values
    nearest = dist.masked_fill(~mask, float("inf")).argmin(dim=-1, keepdim=True)
    first = torch.where(first_k[..., :1] < n, first_k[..., :1], nearest)
    first_k = torch.where(first_k < n, first_k, first.expand_as(first_k))
    if k < n_neighbors:
        first_k = torch.cat([first_k, first.expand(-1, -1, n_neighbors - k)], dim=-1)
    return first_k
