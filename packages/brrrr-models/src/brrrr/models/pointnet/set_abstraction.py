"""PointNet++ set abstraction (Qi et al. 2017): sample, group, apply a shared MLP, max-pool.

:class:`SetAbstraction` picks ``S`` centroids by farthest-point sampling, gathers the first
``K`` points within ``radius`` of each, feeds their offsets from the centroid (divided by the
radius) and their features through a shared MLP, and max-pools over the ``K`` neighbours.
:class:`GlobalSetAbstraction` does the same over the whole set (one group, real points only).

Example:
    >>> import torch
    >>> sa = SetAbstraction(4, n_centroids=8, radius=0.5, n_neighbors=4, mlp_channels=(16, 32))
    >>> xyz, feats = sa(torch.rand(2, 20, 3), torch.rand(2, 20, 4))
    >>> xyz.shape, feats.shape
    (torch.Size([2, 8, 3]), torch.Size([2, 8, 32]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from brrrr.models.pointnet.sampling import ball_query, farthest_point_sampling, index_points

__all__ = ["GlobalSetAbstraction", "SetAbstraction", "SharedMLP"]


class SharedMLP(nn.Sequential):
    """Per-point MLP over the last axis: ``Linear → LayerNorm → GELU`` for each width.

    Args:
        in_features: Input width.
        channels: Output width of each layer.
    """

    def __init__(self, in_features: int, channels: Sequence[int]) -> None:
        layers: list[nn.Module] = []
        for width in channels:
            layers += [nn.Linear(in_features, width), nn.LayerNorm(width), nn.GELU()]
            in_features = width
        super().__init__(*layers)


class SetAbstraction(nn.Module):
    """Local set abstraction layer.

    Args:
        in_features: Per-point feature width ``C`` (0 for coordinates only).
        n_centroids: Number ``S`` of centroids.
        radius: Ball radius, in coordinate units.
        n_neighbors: Points ``K`` per ball.
        mlp_channels: Widths of the shared MLP; the last is the output width ``C'``.
    """

    def __init__(
        self,
        in_features: int,
        *,
        n_centroids: int,
        radius: float,
        n_neighbors: int,
        mlp_channels: Sequence[int],
    ) -> None:
        super().__init__()
        self.n_centroids = n_centroids
        self.radius = radius
        self.n_neighbors = n_neighbors
        self.mlp = SharedMLP(3 + in_features, mlp_channels)

    def forward(
        self,
        xyz: torch.Tensor,
        features: torch.Tensor | None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Abstract a point set.

        Args:
            xyz: ``(B, N, 3)`` coordinates.
            features: ``(B, N, C)`` per-point features, or ``None``.
            mask: ``(B, N)`` bool, true for real points (``None``: all real).

        Returns:
            ``(centroids, features)``: ``(B, S, 3)`` and ``(B, S, C')``. All centroids are real.
        """
        centre_index = farthest_point_sampling(xyz, self.n_centroids, mask=mask)
        centroids = index_points(xyz, centre_index)
        neighbours = ball_query(
            xyz, centroids, radius=self.radius, n_neighbors=self.n_neighbors, mask=mask
        )
        offsets = (index_points(xyz, neighbours) - centroids[:, :, None, :]) / self.radius
        grouped = (
            offsets
            if features is None
            else torch.cat([offsets, index_points(features, neighbours)], dim=-1)
        )
        return centroids, self.mlp(grouped).amax(dim=2)


class GlobalSetAbstraction(nn.Module):
    """Set abstraction over the whole set: shared MLP on ``[xyz, features]``, masked max-pool.

    Args:
        in_features: Per-point feature width ``C``.
        mlp_channels: Widths of the shared MLP; the last is the output width.
    """

    def __init__(self, in_features: int, *, mlp_channels: Sequence[int]) -> None:
        super().__init__()
        self.mlp = SharedMLP(3 + in_features, mlp_channels)

    def forward(
        self, xyz: torch.Tensor, features: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pool a point set to one vector.

        Args:
            xyz: ``(B, N, 3)`` coordinates.
            features: ``(B, N, C)`` features.
            mask: ``(B, N)`` bool, true for real points (``None``: all real).

        Returns:
            ``(B, C')`` global feature.
        """
        h = self.mlp(torch.cat([xyz, features], dim=-1))
        if mask is not None:
            h = h.masked_fill(~mask.to(torch.bool)[..., None], torch.finfo(h.dtype).min)
        return h.amax(dim=1)
