"""Gaussian random Fourier features of coordinates (Tancik et al. 2020).

``gamma(v) = [sin(2 pi v B), cos(2 pi v B)]`` with a fixed ``B ~ N(0, sigma^2)`` of shape
``(D, F)``. ``sigma`` sets the frequencies in cycles per coordinate unit: with coordinates
divided by 100 mm, ``sigma = 2`` gives wavelengths around 50 mm. ``B`` is drawn from a seeded
generator and stored as a buffer, so it is saved with the weights.

Example:
    >>> import torch
    >>> GaussianFourierFeatures(3, n_frequencies=16)(torch.zeros(2, 5, 3)).shape
    torch.Size([2, 5, 32])
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["GaussianFourierFeatures"]


class GaussianFourierFeatures(nn.Module):
    """Map coordinates to random Fourier features.

    Args:
        in_dim: Coordinate dimension ``D``.
        n_frequencies: Number ``F`` of random frequencies (output has ``2F`` features).
        sigma: Standard deviation of the frequencies, in cycles per coordinate unit.
        seed: Seed of the frequency draw.
    """

    frequencies: torch.Tensor

    def __init__(
        self, in_dim: int, *, n_frequencies: int = 32, sigma: float = 1.0, seed: int = 0
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer(
            "frequencies", torch.randn(in_dim, n_frequencies, generator=generator) * sigma
        )

    @property
    def out_features(self) -> int:
        """``2F``."""
        return 2 * self.frequencies.shape[1]

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Encode coordinates.

        Args:
            coords: ``(..., D)``.

        Returns:
            ``(..., 2F)`` features in ``[-1, 1]``.
        """
        projected = 2.0 * math.pi * (coords @ self.frequencies.to(coords.dtype))
        return torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)
