"""Diagonal Gaussian posteriors: a head that predicts ``(mu, logvar)`` and the reparameterisation.

Example:
    >>> import torch
    >>> head = GaussianHead(16, latent_dim=4)
    >>> mu, logvar = head(torch.randn(2, 16))
    >>> reparameterize(mu, logvar).shape
    torch.Size([2, 4])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GaussianHead", "reparameterize", "soft_clamp"]


def soft_clamp(x: torch.Tensor, *, limit: float) -> torch.Tensor:
    """Smoothly squash ``x`` into ``(-limit, limit)`` (``limit * tanh(x / limit)``).

    Unlike ``clamp`` it keeps a gradient everywhere; log-variances stay in a range where
    ``exp`` neither overflows nor underflows.

    Args:
        x: Any tensor.
        limit: Half-width of the output range.

    Returns:
        Tensor of the shape of ``x``.
    """
    return limit * torch.tanh(x / limit)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``, differentiably.

    Args:
        mu: Mean, any shape.
        logvar: Log-variance, the shape of ``mu``.
        generator: Optional random generator, for reproducible draws.

    Returns:
        A sample of the shape of ``mu``.
    """
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


class GaussianHead(nn.Module):
    """Linear map from features to the mean and log-variance of a diagonal Gaussian.

    Args:
        in_features: Size of the input features.
        latent_dim: Size of the latent.
        logvar_limit: The log-variance is soft-clamped to ``(-logvar_limit, logvar_limit)``.
    """

    def __init__(self, in_features: int, *, latent_dim: int, logvar_limit: float = 10.0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * latent_dim)
        self.logvar_limit = logvar_limit

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(mu, logvar)``.

        Args:
            features: ``(B, in_features)``.

        Returns:
            ``mu`` and ``logvar``, each ``(B, latent_dim)``.
        """
        mu, raw = self.linear(features).chunk(2, dim=-1)
        return mu, soft_clamp(raw, limit=self.logvar_limit)
