"""ECE against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from brrrr.models.evaluation import (
    expected_calibration_error,
    gaussian_calibration_curve,
    gaussian_calibration_error,
)


def test_binned_ece_by_hand() -> None:
    probs = torch.tensor([0.1, 0.2, 0.8, 0.9])
    labels = torch.tensor([0, 1, 1, 1])
    # bin [0, .5): conf .15, acc .5, weight 1/2; bin [.5, 1]: conf .85, acc 1, weight 1/2
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(
        0.5 * 0.35 + 0.5 * 0.15
    )
    # 10 bins: every prediction alone in its bin: mean |label - p|
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(
        (0.1 + 0.8 + 0.2 + 0.1) / 4
    )
    assert expected_calibration_error(torch.tensor([1.0, 0.0]), torch.tensor([1, 0])) == 0.0
    mask = torch.tensor([True, True, False, False])
    assert expected_calibration_error(probs, labels, n_bins=2, mask=mask) == pytest.approx(0.35)


def test_gaussian_ece_by_hand() -> None:
    sigma = 2.0
    z_scores = torch.tensor([0.0, 0.5, 1.5, 3.0])
    mean = torch.zeros(4)
    target = z_scores * sigma
    variance = torch.full((4,), sigma**2)
    # central intervals: 50 % → |z| ≤ 0.6745 (2 of 4 inside), 90 % → |z| ≤ 1.6449 (3 of 4)
    curve = gaussian_calibration_curve(target, mean, variance, levels=[0.5, 0.9])
    assert curve.observed.tolist() == [0.5, 0.75]
    assert gaussian_calibration_error(target, mean, variance, levels=[0.5, 0.9]) == (
        pytest.approx((0.0 + 0.15) / 2)
    )


def test_gaussian_ece_is_near_zero_when_calibrated_and_large_when_overconfident() -> None:
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(200_000, generator=generator)
    std = torch.rand(200_000, generator=generator) + 0.5
    target = mean + std * torch.randn(200_000, generator=generator)
    assert gaussian_calibration_error(target, mean, std**2) < 0.005
    overconfident = gaussian_calibration_error(target, mean, (0.3 * std) ** 2)
    assert overconfident > 0.25
    # the masked voxels are the only ones scored
    mask = torch.zeros(200_000, dtype=torch.bool)
    mask[:1000] = True
    masked = gaussian_calibration_error(target, mean, std**2, mask=mask)
    assert masked == gaussian_calibration_error(target[:1000], mean[:1000], std[:1000] ** 2)
    assert not math.isnan(masked)
