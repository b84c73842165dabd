"""Expected calibration error (ECE) of probabilistic predictions.

* :func:`gaussian_calibration_error` — regression calibration of Gaussian predictive
  distributions (an aleatoric decoder's mean and variance, or an ensemble's mean and total
  variance), Kuleshov et al. (2018): for confidence levels ``p`` the observed share of targets
  inside the central interval ``|y − μ| ≤ z_p σ`` with ``z_p = Φ⁻¹((1 + p) / 2)``;
  ``ECE = mean_p |observed(p) − p|``. 0 is perfect calibration; over-confident predictions
  (σ too small) observe less than ``p``.
* :func:`expected_calibration_error` — the classic binned ECE of probabilities against binary
  labels (Naeini et al. 2015; Guo et al. 2017): ``Σ_b (n_b / N) · |acc_b − conf_b|`` over
  equal-width bins (the last bin includes 1).

Example:
    >>> import torch
    >>> probs, labels = torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 1, 1, 1])
    >>> round(float(expected_calibration_error(probs, labels, n_bins=2)), 4)
    0.25
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "DEFAULT_LEVELS",
    "CalibrationCurve",
    "expected_calibration_error",
    "gaussian_calibration_curve",
    "gaussian_calibration_error",
]

DEFAULT_LEVELS = tuple(round(0.05 + 0.1 * i, 2) for i in range(10))


@dataclass(frozen=True)
class CalibrationCurve:
    """Expected against observed coverage.

    Attributes:
        expected: ``(L,)`` confidence levels.
        observed: ``(L,)`` share of targets inside the central interval of each level.
    """

    expected: torch.Tensor
    observed: torch.Tensor

    @property
    def ece(self) -> float:
        """``mean |observed − expected|``."""
        return float((self.observed - self.expected).abs().mean())


def _select(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    flat = values.detach().double()
    if mask is None:
        return flat.reshape(-1)
    keep = torch.broadcast_to(mask.to(torch.bool), values.shape)
    return flat[keep]


def gaussian_calibration_curve(
    target: torch.Tensor,
    mean: torch.Tensor,
    variance: torch.Tensor,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    mask: torch.Tensor | None = None,
) -> CalibrationCurve:
    """Coverage of the central intervals of ``N(mean, variance)``.

    Args:
        target: ``(B, ...)`` observed values.
        mean: Predicted means, shape of ``target``.
        variance: Predicted variances (> 0), shape of ``target``.
        levels: Confidence levels in ``(0, 1)``.
        mask: Broadcastable voxel mask; ``None`` uses every element.

    Returns:
        The :class:`CalibrationCurve`.
    """
    y, mu, var = (_select(t, mask) for t in (target, mean, variance))
    score = (y - mu).abs() / var.clamp(min=1e-12).sqrt()
    expected = torch.tensor(list(levels), dtype=torch.float64)
    if ((expected <= 0) | (expected >= 1)).any():
        raise ValueError(f"levels must lie in (0, 1), got {list(levels)}")
    z = math.sqrt(2.0) * torch.special.erfinv(expected)
    observed = (score[None, :] <= z[:, None]).double().mean(dim=1)
    return CalibrationCurve(expected=expected, observed=observed)


def gaussian_calibration_error(
    target: torch.Tensor,
    mean: torch.Tensor,
    variance: torch.Tensor,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    mask: torch.Tensor | None = None,
) -> float:
    """ECE of Gaussian predictions: ``mean_p |observed(p) − p|`` (see the module docstring).

    Args:
        target: ``(B, ...)`` observed values.
        mean: Predicted means.
        variance: Predicted variances (aleatoric, epistemic or their sum).
        levels: Confidence levels.
        mask: Voxel mask.

    Returns:
        The ECE in ``[0, 1]``.
    """
    return gaussian_calibration_curve(target, mean, variance, levels=levels, mask=mask).ece


def expected_calibration_error(
    probabilities: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_bins: int = 10,
    mask: torch.Tensor | None = None,
) -> float:
    """Binned ECE of predicted probabilities of a binary event.

    Args:
        probabilities: ``(...)`` predicted ``P(label = 1)`` in ``[0, 1]``.
        labels: ``(...)`` 0/1 outcomes.
        n_bins: Equal-width bins on ``[0, 1]``.
        mask: Broadcastable mask of the elements that count.

    Returns:
        ``Σ_b (n_b / N) · |mean(labels in b) − mean(probabilities in b)|``.
    """
    p = _select(probabilities, mask).clamp(0.0, 1.0)
    y = _select(labels.to(probabilities.dtype), mask)
    if p.numel() == 0:
        return float("nan")
    bins = torch.clamp((p * n_bins).long(), max=n_bins - 1)
    total = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, torch.ones_like(p))
    conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, p)
    acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, y)
    filled = total > 0
    gap = (acc[filled] - conf[filled]).abs()  # = n_b * |acc_b - conf_b|
    return float(gap.sum() / p.numel())
