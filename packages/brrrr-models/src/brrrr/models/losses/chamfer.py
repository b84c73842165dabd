"""Chamfer distance between point sets, in pure torch, with masks for padded points.

For sets ``X`` and ``Y`` (valid points only)

    CD(X, Y) = mean_{x in X} min_{y in Y} |x - y|^2 + mean_{y in Y} min_{x in X} |x - y|^2

(squared Euclidean, each direction averaged over its own valid points). The pairwise distances
take ``B * N * M`` memory; sets of a few thousand points are fine.

Example:
    >>> import torch
    >>> x = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]])
    >>> chamfer_distance(x, x[:, :1])
    tensor([0.5000])
"""

from __future__ import annotations

import torch

__all__ = ["chamfer_distance", "pairwise_squared_distances"]


def pairwise_squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between all pairs.

    Args:
        x: ``(B, N, D)``.
        y: ``(B, M, D)``.

    Returns:
        ``(B, N, M)``; computed from differences (exact, zero on the diagonal of ``x`` vs ``x``).
    """
    return (x[:, :, None, :] - y[:, None, :, :]).square().sum(dim=-1)


def _directed(dist: torch.Tensor, mask_rows: torch.Tensor, mask_cols: torch.Tensor) -> torch.Tensor:
    big = torch.finfo(dist.dtype).max
    nearest = dist.masked_fill(~mask_cols[:, None, :], big).amin(dim=2)
    nearest = torch.where(mask_rows, nearest, torch.zeros_like(nearest))
    return nearest.sum(dim=1) / mask_rows.sum(dim=1).clamp(min=1)


def chamfer_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric Chamfer distance (squared Euclidean), per sample.

    Args:
        x: ``(B, N, D)`` points.
        y: ``(B, M, D)`` points.
        x_mask: ``(B, N)`` bool, true for real points (``None``: all real).
        y_mask: ``(B, M)`` bool, true for real points (``None``: all real).

    Returns:
        ``(B,)`` distances. Each set must have at least one real point.
    """
    if x_mask is None:
        x_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if y_mask is None:
        y_mask = torch.ones(y.shape[:2], dtype=torch.bool, device=y.device)
    x_mask, y_mask = x_mask.to(torch.bool), y_mask.to(torch.bool)
    dist = pairwise_squared_distances(x, y)
    return _directed(dist, x_mask, y_mask) + _directed(dist.transpose(1, 2), y_mask, x_mask)
