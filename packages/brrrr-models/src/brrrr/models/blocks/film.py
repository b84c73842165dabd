"""Feature-wise linear modulation (FiLM, Perez et al. 2018) from a conditioning vector.

``FiLM(x, c) = x * (1 + gamma(c)) + beta(c)`` per channel. ``gamma`` and ``beta`` come from one
linear layer initialised to zero, so a freshly built FiLM layer is the identity and conditioning
is learned as a departure from the unconditioned network.

Example:
    >>> import torch
    >>> film = FiLM(8, cond_dim=3)
    >>> x = torch.randn(2, 8, 4, 4, 4)
    >>> bool(torch.equal(film(x, torch.randn(2, 3)), x))
    True
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FiLM"]


class FiLM(nn.Module):
    """Per-channel scale and shift of channel-first features from a conditioning vector.

    Args:
        num_features: Channels ``C`` of the modulated features.
        cond_dim: Size ``E`` of the conditioning vector.
    """

    def __init__(self, num_features: int, *, cond_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(cond_dim, 2 * num_features)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Modulate ``x``.

        Args:
            x: ``(B, C, *spatial)`` features.
            cond: ``(B, E)`` conditioning vector, or ``None`` for the identity.

        Returns:
            ``(B, C, *spatial)`` modulated features.
        """
        if cond is None:
            return x
        gamma, beta = self.linear(cond).chunk(2, dim=-1)
        shape = (*gamma.shape, *([1] * (x.ndim - 2)))
        return x * (1.0 + gamma.reshape(shape)) + beta.reshape(shape)
