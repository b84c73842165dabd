"""Reconstruction error of maps: MSE, MAE and Pearson correlation per sample, over a mask.

Example:
    >>> import torch
    >>> target = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    >>> errors = reconstruction_error(target + 1.0, target)
    >>> [round(float(errors[k][0]), 4) for k in ("mse", "mae", "correlation")]
    [1.0, 1.0, 1.0]
"""

from __future__ import annotations

import torch

__all__ = ["reconstruction_error"]


def reconstruction_error(
    prediction: torch.Tensor, target: torch.Tensor, *, mask: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Per-sample errors over the voxels where ``mask`` is non-zero.

    Args:
        prediction: ``(B, ...)`` predicted maps (e.g. ``(B, 1, I, J, K)``).
        target: ``(B, ...)`` true maps, same shape.
        mask: Broadcastable to ``target``; ``None`` uses every voxel.

    Returns:
        ``{"mse", "mae", "correlation"}``, each ``(B,)`` float64; the correlation is Pearson's
        r between the masked voxels of prediction and target (NaN for a constant map).
    """
    if prediction.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    pred = prediction.detach().double().flatten(start_dim=1)
    true = target.detach().double().flatten(start_dim=1)
    if mask is None:
        weight = torch.ones_like(true)
    else:
        weight = torch.broadcast_to(mask.detach().double(), target.shape).flatten(start_dim=1)
    count = weight.sum(dim=1).clamp(min=1)
    diff = pred - true
    mse = (weight * diff.square()).sum(dim=1) / count
    mae = (weight * diff.abs()).sum(dim=1) / count
    pred_c = pred - (weight * pred).sum(dim=1, keepdim=True) / count[:, None]
    true_c = true - (weight * true).sum(dim=1, keepdim=True) / count[:, None]
    cov = (weight * pred_c * true_c).sum(dim=1)
    norm = ((weight * pred_c.square()).sum(dim=1) * (weight * true_c.square()).sum(dim=1)).sqrt()
    correlation = torch.where(norm > 0, cov / norm, torch.full_like(cov, float("nan")))
    return {"mse": mse, "mae": mae, "correlation": correlation}
