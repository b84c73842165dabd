"""PointNet++ pieces in pure torch: sampling and grouping, set abstraction, Fourier features."""

from brrrr.models.pointnet.fourier import GaussianFourierFeatures
from brrrr.models.pointnet.sampling import ball_query, farthest_point_sampling, index_points
from brrrr.models.pointnet.set_abstraction import (
    GlobalSetAbstraction,
    SetAbstraction,
    SharedMLP,
)

__all__ = [
    "GaussianFourierFeatures",
    "GlobalSetAbstraction",
    "SetAbstraction",
    "SharedMLP",
    "ball_query",
    "farthest_point_sampling",
    "index_points",
]
