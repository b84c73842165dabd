"""Voxel-wise reconstruction losses, summed per sample, with an optional (brain) mask.

With a per-voxel log-variance (aleatoric decoder) the loss is the Gaussian negative
log-likelihood ``0.5 * (logvar + (x - mean)**2 / exp(logvar) + log(2 pi))``; without, it is
``0.5 * (x - mean)**2`` (the NLL at unit variance, constant dropped).

:func:`detached_variance_nll` fits the same two outputs without letting the variance decide
how much the mean matters. Under the joint NLL the mean's error at a voxel is weighted by
``1 / exp(logvar)``, and the decoder can win more by shrinking the variance where maps are
almost always zero than by placing blobs: the mean then barely departs from the average map
(cf. Seitzer et al. 2022, "On the pitfalls of heteroscedastic uncertainty estimation").
Here the mean is scored under a *fixed* variance (a reference map, e.g. the training maps'
voxel-wise variance), and the predicted variance is scored on the residuals of the mean with
the mean's gradient stopped. The variance still converges to ``E[(x − mean)²]``.

Example:
    >>> import torch
    >>> x = torch.zeros(2, 1, 4, 4, 4)
    >>> gaussian_nll(x, x + 1.0)
    tensor([32., 32.])
"""

from __future__ import annotations

import math

import torch

__all__ = ["detached_variance_nll", "gaussian_nll"]


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


def detached_variance_nll(
    target: torch.Tensor,
    mean: torch.Tensor,
    *,
    logvar: torch.Tensor,
    reference_logvar: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean under a fixed variance plus variance on the stopped mean's residuals, per sample.

    ``gaussian_nll(target, mean, logvar=reference_logvar)
    + gaussian_nll(target, mean.detach(), logvar=logvar)`` (see the module docstring).

    Args:
        target: ``(B, C, I, J, K)`` observed values.
        mean: Predicted mean, shape of ``target``.
        logvar: Predicted log-variance, shape of ``target``.
        reference_logvar: Fixed log-variance the mean is scored under, broadcastable to
            ``target``; ``None`` scores the mean at unit variance (``0.5 * (x − mean)²``).
        mask: Broadcastable to ``target``; voxels where it is 0 do not count.

    Returns:
        ``(B,)`` loss summed over voxels.
    """
    fixed = None if reference_logvar is None else reference_logvar.detach().expand_as(target)
    mean_term = gaussian_nll(target, mean, logvar=fixed, mask=mask)
    return mean_term + gaussian_nll(target, mean.detach(), logvar=logvar, mask=mask)
