"""Gradient reversal (Ganin & Lempitsky 2015): identity forward, ``-scale * grad`` backward.

Placed between a representation and an adversary, it lets one loss train the adversary to
predict a nuisance variable while pushing the representation to hide it.

Example:
    >>> import torch
    >>> x = torch.ones(3, requires_grad=True)
    >>> gradient_reversal(x, scale=2.0).sum().backward()
    >>> x.grad
    tensor([-2., -2., -2.])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["GradientReversal", "gradient_reversal"]


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def gradient_reversal(x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """Return ``x`` unchanged; gradients flowing back through it are multiplied by ``-scale``.

    Args:
        x: Any tensor.
        scale: Strength of the reversal (``lambda``); 0 blocks the gradient.

    Returns:
        ``x`` (a view).
    """
    return _ReverseGradient.apply(x, scale)


class GradientReversal(nn.Module):
    """Module form of :func:`gradient_reversal`; ``scale`` may be changed during training.

    Args:
        scale: Strength of the reversal.
    """

    def __init__(self, *, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Identity with reversed gradient.

        Args:
            x: Any tensor.

        Returns:
            ``x``.
        """
        return gradient_reversal(x, scale=self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
