"""All evaluation metrics of a map model (or a snapshot ensemble) on held-out maps, as JSON.

:func:`evaluate_maps` computes, on the given maps:

* ``reconstruction``: mean per-map MSE, MAE and Pearson r of the model's reconstruction
  (``z = μ``), over the brain mask;
* ``ece_aleatoric``: Gaussian-interval ECE of the aleatoric decoder's ``(mean, exp(logvar))``;
* ``ensemble``: the same for the ensemble mean, ``ece_ensemble`` with the total variance
  (epistemic + aleatoric) and ``ece_epistemic`` with the epistemic variance alone;
* ``precision_recall``: improved precision/recall (k = 3) in the model's latent space: real
  features are the posterior means of the maps, generated features the posterior means of maps
  decoded from ``z ~ N(0, I)`` (with the same metadata, for conditional models).

Example:
    >>> metrics, curves = evaluate_maps(model, maps, voxel_mask=mask)  # doctest: +SKIP
    >>> metrics["reconstruction"]["mse"]  # doctest: +SKIP
    0.0123
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from brrrr.models.evaluation.calibration import CalibrationCurve, gaussian_calibration_curve
from brrrr.models.evaluation.ensemble import decode_maps, ensemble_predict
from brrrr.models.evaluation.precision_recall import improved_precision_recall
from brrrr.models.evaluation.reconstruction import reconstruction_error

__all__ = ["evaluate_maps"]


def _summary(errors: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(torch.nanmean(v)) for k, v in errors.items()}


def _encode_mu(model: nn.Module, x: torch.Tensor, **meta: Any) -> torch.Tensor:
    posterior = model.encode(x, **meta)  # type: ignore[operator]
    return posterior[0]


@torch.no_grad()
def evaluate_maps(
    model: nn.Module,
    x: torch.Tensor,
    *,
    metadata: torch.Tensor | None = None,
    metadata_mask: torch.Tensor | None = None,
    voxel_mask: torch.Tensor | None = None,
    ensemble: Sequence[nn.Module] = (),
    k: int = 3,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, CalibrationCurve]]:
    """Metrics of ``model`` (and of ``ensemble``) on maps ``x``.

    Args:
        model: A ``BetaVAE`` or ``HierarchicalVAE``.
        x: ``(N, 1, I, J, K)`` held-out maps.
        metadata: ``(N, M)`` their metadata, or ``None``.
        metadata_mask: ``(N, M)`` observed mask.
        voxel_mask: Broadcastable brain mask.
        ensemble: Snapshot-ensemble members (two or more to score the ensemble).
        k: Neighbour rank of precision/recall.
        seed: Seed of the prior samples.

    Returns:
        ``(metrics, curves)``: JSON-ready metrics, and the calibration curves by label.
    """
    model.eval()
    meta = {"metadata": metadata, "metadata_mask": metadata_mask}
    out = model(x, **meta)
    metrics: dict[str, Any] = {
        "n_maps": int(x.shape[0]),
        "reconstruction": _summary(reconstruction_error(out.reconstruction, x, mask=voxel_mask)),
    }
    curves: dict[str, CalibrationCurve] = {}
    if out.reconstruction_logvar is not None:
        curves["aleatoric"] = gaussian_calibration_curve(
            x, out.reconstruction, out.reconstruction_logvar.exp(), mask=voxel_mask
        )
        metrics["ece_aleatoric"] = curves["aleatoric"].ece
    if len(ensemble) >= 2:
        prediction = ensemble_predict(ensemble, x, **meta)
        curves["ensemble"] = gaussian_calibration_curve(
            x, prediction.mean, prediction.total_variance, mask=voxel_mask
        )
        curves["epistemic only"] = gaussian_calibration_curve(
            x, prediction.mean, prediction.epistemic_variance.clamp(min=1e-12), mask=voxel_mask
        )
        weight = (
            torch.ones_like(x) if voxel_mask is None else torch.broadcast_to(voxel_mask, x.shape)
        )
        metrics["ensemble"] = {
            "members": len(ensemble),
            "reconstruction": _summary(reconstruction_error(prediction.mean, x, mask=voxel_mask)),
            "ece_ensemble": curves["ensemble"].ece,
            "ece_epistemic": curves["epistemic only"].ece,
            "mean_epistemic_variance": float(
                (prediction.epistemic_variance * weight).sum() / weight.sum()
            ),
        }
    if x.shape[0] > k:
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn(out.mu.shape, generator=generator)
        generated, _ = decode_maps(model, z, **meta)
        pr = improved_precision_recall(
            _encode_mu(model, x, **meta), _encode_mu(model, generated, **meta), k=k
        )
        metrics["precision_recall"] = {"k": k, "precision": pr.precision, "recall": pr.recall}
    return metrics, curves
