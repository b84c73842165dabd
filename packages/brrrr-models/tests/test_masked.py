"""Tests of brrrr.models.losses.masked."""

from __future__ import annotations

import torch

from brrrr.models.losses.masked import masked_mse


def test_only_observed_entries_count_and_nan_targets_are_safe():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    target = torch.tensor([[0.0, float("nan")], [1.0, float("nan")]])
    mask = torch.tensor([[True, False], [True, False]])
    loss = masked_mse(pred, target, mask)
    assert float(loss.detach()) == (1.0 + 4.0) / 2
    loss.backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[:, 1].abs().sum() == 0


def test_nothing_observed_gives_zero():
    assert (
        float(masked_mse(torch.ones(2, 2), torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.bool)))
        == 0.0
    )
