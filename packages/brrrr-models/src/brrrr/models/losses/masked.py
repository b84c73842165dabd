"""Mean squared error over observed entries only (metadata imputation, nuisance adversary).

Example:
    >>> import torch
    >>> masked_mse(torch.tensor([1.0, 5.0]), torch.tensor([0.0, float("nan")]),
    ...            torch.tensor([True, False]))
    tensor(1.)
"""

from __future__ import annotations

import torch

__all__ = ["masked_mse"]


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(pred - target)**2`` where ``mask`` is true; 0 when nothing is observed.

    Args:
        pred: ``(B, M)`` predictions.
        target: ``(B, M)`` targets; unobserved entries may be NaN.
        mask: ``(B, M)`` bool or 0/1.

    Returns:
        Scalar loss.
    """
    keep = mask.to(torch.bool)
    diff = torch.where(keep, pred - torch.where(keep, target, pred), torch.zeros_like(pred))
    return diff.square().sum() / keep.sum().clamp(min=1)
