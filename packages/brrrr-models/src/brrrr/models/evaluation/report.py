"""All evaluation metrics of a map model (or a snapshot ensemble) on held-out maps, as JSON.

:func:`evaluate_maps` computes, on the given maps:

* ``reconstruction``: mean per-map MSE, MAE and Pearson r of the model's reconstruction
  (``z = μ``), over the brain mask; with ``baseline`` (e.g. the training split's mean map) also
  ``baseline`` (the same errors of predicting every map by it) and ``versus_baseline`` (the
  differences, and the share of maps on which the model does better), so a reader can tell a
  model that learned something from one that outputs the average map;
* ``ece_aleatoric``: Gaussian-interval ECE of the aleatoric decoder's ``(mean, exp(logvar))``;
* ``ensemble``: the same for the ensemble mean, ``ece_ensemble`` with the total variance
  (epistemic + aleatoric) and ``ece_epistemic`` with the epistemic variance alone;
* ``precision_recall``: improved precision/recall (Kynkäänniemi et al. 2019, ``k`` = 3) in the
  model's *latent space*, decoder-free: the real points are one draw ``z ~ q(z | x)`` per map
  (the aggregate posterior), the generated points as many draws ``z ~ N(0, I)`` (the prior the
  sampler uses). Precision is the share of prior draws that land where real maps are encoded;
  recall the share of encoded maps the prior covers. ``same_distribution`` is what two
  independent prior draws of the same size score, the ceiling at this sample size and
  dimension (well below 1 for a few dozen points in 16 dimensions);
* ``precision_recall_features`` (with ``features``): the same in a fixed, model-free feature
  space (e.g. :class:`~brrrr.models.evaluation.features.PCAFeatures` of the training maps):
  the real maps against maps decoded from ``z ~ N(0, I)`` (decoder means, same metadata).

Example:
    >>> metrics, curves = evaluate_maps(model, maps, voxel_mask=mask)  # doctest: +SKIP
    >>> metrics["reconstruction"]["mse"]  # doctest: +SKIP
    0.0123
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from brrrr.models.evaluation.calibration import CalibrationCurve, gaussian_calibration_curve
from brrrr.models.evaluation.ensemble import decode_maps, ensemble_predict
from brrrr.models.evaluation.precision_recall import PrecisionRecall, improved_precision_recall
from brrrr.models.evaluation.reconstruction import reconstruction_error

__all__ = ["evaluate_maps"]


def _summary(errors: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(torch.nanmean(v)) for k, v in errors.items()}


def _versus(model: dict[str, torch.Tensor], baseline: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean differences (model − baseline) and per-map win rates."""
    return {
        "correlation_gain": float(torch.nanmean(model["correlation"] - baseline["correlation"])),
        "mse_ratio": float(model["mse"].mean() / baseline["mse"].mean()),
        "mae_ratio": float(model["mae"].mean() / baseline["mae"].mean()),
        "share_of_maps_higher_correlation": float(
            (model["correlation"] > baseline["correlation"]).double().mean()
        ),
        "share_of_maps_lower_mse": float((model["mse"] < baseline["mse"]).double().mean()),
    }


def _pr(result: PrecisionRecall) -> dict[str, float]:
    return {"precision": result.precision, "recall": result.recall}


@torch.no_grad()
def evaluate_maps(
    model: nn.Module,
    x: torch.Tensor,
    *,
    metadata: torch.Tensor | None = None,
    metadata_mask: torch.Tensor | None = None,
    voxel_mask: torch.Tensor | None = None,
    ensemble: Sequence[nn.Module] = (),
    baseline: torch.Tensor | None = None,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
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
        baseline: A map broadcastable to ``x`` that predicts every map (e.g. the training
            split's mean map), scored alongside the model.
        features: Fixed feature map ``(B, 1, I, J, K) → (B, D)`` for precision/recall of decoded
            samples (e.g. :class:`~brrrr.models.evaluation.features.PCAFeatures` fitted on the
            training maps); ``None`` skips it.
        k: Neighbour rank of precision/recall.
        seed: Seed of the posterior and prior draws.

    Returns:
        ``(metrics, curves)``: JSON-ready metrics, and the calibration curves by label.
    """
    model.eval()
    meta = {"metadata": metadata, "metadata_mask": metadata_mask}
    out = model(x, **meta)
    errors = reconstruction_error(out.reconstruction, x, mask=voxel_mask)
    metrics: dict[str, Any] = {"n_maps": int(x.shape[0]), "reconstruction": _summary(errors)}
    reference: dict[str, torch.Tensor] | None = None
    if baseline is not None:
        reference = reconstruction_error(baseline.expand_as(x), x, mask=voxel_mask)
        metrics["baseline"] = _summary(reference)
        metrics["versus_baseline"] = _versus(errors, reference)
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
        ensemble_errors = reconstruction_error(prediction.mean, x, mask=voxel_mask)
        metrics["ensemble"] = {
            "members": len(ensemble),
            "reconstruction": _summary(ensemble_errors),
            "ece_ensemble": curves["ensemble"].ece,
            "ece_epistemic": curves["epistemic only"].ece,
            "mean_epistemic_variance": float(
                (prediction.epistemic_variance * weight).sum() / weight.sum()
            ),
        }
        if reference is not None:
            metrics["ensemble"]["versus_baseline"] = _versus(ensemble_errors, reference)
    if x.shape[0] > k:
        generator = torch.Generator().manual_seed(seed)
        shape, dtype = out.mu.shape, out.mu.dtype

        def draw() -> torch.Tensor:
            return torch.randn(shape, generator=generator, dtype=dtype).to(out.mu.device)

        posterior = out.mu + torch.exp(0.5 * out.logvar) * draw()
        prior = draw()
        metrics["precision_recall"] = {
            "space": "latent: z ~ q(z | x), one per map, against z ~ N(0, I)",
            "k": k,
            "n": int(shape[0]),
            **_pr(improved_precision_recall(posterior, prior, k=k)),
            "same_distribution": _pr(improved_precision_recall(draw(), draw(), k=k)),
        }
        if features is not None:
            generated, _ = decode_maps(model, draw(), **meta)
            real_features = features(x)
            metrics["precision_recall_features"] = {
                "space": "fixed features: real maps against maps decoded from z ~ N(0, I)",
                "k": k,
                "n": int(shape[0]),
                "dim": int(real_features.shape[1]),
                **_pr(improved_precision_recall(real_features, features(generated), k=k)),
            }
    return metrics, curves
