"""Tests of brrrr.models.losses.sinkhorn against POT.

Conventions aligned (see the module docstring): cost ``|x - y|^2 / 2``, ``eps = blur**2``,
entropic term ``eps * KL(pi | a x b)``, debiased ``S = OT(a, b) - OT(a, a) / 2 - OT(b, b) / 2``.
The reference is rebuilt from POT's converged couplings (``ot.sinkhorn`` with ``reg = eps``),
and at a tiny blur compared with the exact ``W_2^2 / 2`` from ``ot.emd2``.
"""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from brrrr.models.losses.sinkhorn import sinkhorn_divergence


def _entropic_ot(x: np.ndarray, y: np.ndarray, eps: float) -> float:
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    cost = ((x[:, None] - y[None]) ** 2).sum(-1) / 2
    plan = ot.sinkhorn(a, b, cost, reg=eps, numItermax=100_000, stopThr=1e-12)
    kl = float(np.sum(plan * np.log(plan / np.outer(a, b))))
    return float(np.sum(plan * cost)) + eps * kl


def _points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 3)), rng.normal(size=(9, 3)) + 0.5


def _ours(x: np.ndarray, y: np.ndarray, **kwargs: float) -> float:
    return float(
        sinkhorn_divergence(torch.from_numpy(x)[None], torch.from_numpy(y)[None], **kwargs)[0]
    )


@pytest.mark.parametrize(("blur", "rtol"), [(1.0, 1e-4), (0.5, 3e-3)])
def test_matches_pot_debiased_entropic_divergence(blur: float, rtol: float):
    x, y = _points()
    eps = blur**2
    expected = (
        _entropic_ot(x, y, eps) - 0.5 * _entropic_ot(x, x, eps) - 0.5 * _entropic_ot(y, y, eps)
    )
    assert _ours(x, y, blur=blur) == pytest.approx(expected, rel=rtol)


def test_tiny_blur_approaches_exact_w2_from_emd():
    x, y = _points()
    cost = ((x[:, None] - y[None]) ** 2).sum(-1) / 2
    exact = float(ot.emd2(np.full(7, 1 / 7), np.full(9, 1 / 9), cost))
    assert _ours(x, y, blur=0.01) == pytest.approx(exact, rel=0.02)


def test_zero_for_identical_sets_and_masking_equals_dropping():
    x = torch.randn(2, 8, 3, dtype=torch.float64)
    assert torch.allclose(sinkhorn_divergence(x, x), torch.zeros(2, dtype=torch.float64), atol=1e-6)
    y = torch.randn(2, 12, 3, dtype=torch.float64)
    far = y.clone()
    far[:, 9:] = 1e3
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[:, 9:] = False
    dropped = sinkhorn_divergence(x, y[:, :9])
    assert torch.allclose(sinkhorn_divergence(x, far, y_mask=mask), dropped, rtol=1e-10)
