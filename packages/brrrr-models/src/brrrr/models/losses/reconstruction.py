"""Voxel-wise reconstruction losses, summed per sample, with an optional (brain) mask.

With a per-voxel log-variance (aleatoric decoder) the loss is the Gaussian negative
log-likelihood ``0.5 * (logvar + (x - mean)**2 / exp(logvar) + log(2 pi))``; without, it is
``0.5 * (x - mean)**2`` (the NLL at unit variance, constant dropped).

Example:
    >>> import torch
    >>> x = torch.zeros(2, 1, 4, 4, 4)
    >>> gaussian_nll(x, x + 1.0)
    tensor([32., 32.])
"""

from __future__ import annotations

import math

import torch

__all__ = ["gaussian_nll"]


def gaussian_nll(
    target: torch.Tensor,
    mean: torch.Tensor,
    *,
    logvar: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Negative log-likelihood of ``target`` under ``N(mean, exp(logvar))``, per sample.

    Args:
        target: ``(B, C, I, J, K)`` (or any ``(B, ...)``) observed values.
        mean: Predicted mean, shape of ``target``.
        logvar: Predicted log-variance, shape of ``target``; ``None`` means unit variance and
            drops the constant.
        mask: Broadcastable to ``target``; voxels where it is 0 do not count.

    Returns:
        ``(B,)`` loss summed over voxels.
    """
    squared = (target - mean).square()
    if logvar is None:
        per_voxel = 0.5 * squared
    else:
        per_voxel = 0.5 * (logvar + squared * torch.exp(-logvar) + math.log(2 * math.pi))
    if mask is not None:
        per_voxel = per_voxel * mask.to(per_voxel.dtype)
    return per_voxel.flatten(start_dim=1).sum(dim=1)
