"""An adversary that predicts a nuisance variable (e.g. publication year) from a latent code.

The latent passes through a gradient reversal layer first, so minimising the adversary's loss
trains the adversary and, at the same time, trains the encoder to remove the nuisance from the
latent (domain-adversarial training).

Example:
    >>> import torch
    >>> NuisanceAdversary(8)(torch.randn(4, 8)).shape
    torch.Size([4, 1])
"""

from __future__ import annotations

import torch
from torch import nn

from brrrr.models.blocks.gradient_reversal import GradientReversal

__all__ = ["NuisanceAdversary"]


class NuisanceAdversary(nn.Module):
    """Gradient reversal followed by an MLP regressor.

    Args:
        latent_dim: Size ``L`` of the latent.
        out_dim: Number of nuisance outputs (1 for a standardised year).
        hidden_dim: Hidden width.
        scale: Gradient reversal strength (``GradientReversal.scale``, adjustable).
    """

    def __init__(
        self, latent_dim: int, *, out_dim: int = 1, hidden_dim: int = 64, scale: float = 1.0
    ) -> None:
        super().__init__()
        self.reversal = GradientReversal(scale=scale)
        self.mlp = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """Predict the nuisance.

        Args:
            latent: ``(B, L)``.

        Returns:
            ``(B, out_dim)`` prediction.
        """
        return self.mlp(self.reversal(latent))
