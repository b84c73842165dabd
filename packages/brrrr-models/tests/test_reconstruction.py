"""Tests of brrrr.models.losses.reconstruction against torch's Gaussian NLL."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brrrr.models.losses.reconstruction import gaussian_nll


def test_aleatoric_nll_matches_torch_gaussian_nll_loss():
    target, mean, logvar = (torch.randn(2, 1, 3, 4, 5, dtype=torch.float64) for _ in range(3))
    ours = gaussian_nll(target, mean, logvar=logvar)
    for b in range(2):
        ref = F.gaussian_nll_loss(
            mean[b], target[b], logvar[b].exp(), full=True, reduction="sum", eps=0.0
        )
        assert torch.allclose(ours[b], ref, rtol=1e-12)


def test_unit_variance_is_half_squared_error_and_mask_drops_voxels():
    target = torch.zeros(1, 1, 2, 2, 2)
    mean = torch.ones(1, 1, 2, 2, 2)
    assert float(gaussian_nll(target, mean)) == 4.0
    mask = torch.zeros(1, 1, 2, 2, 2)
    mask[..., 0] = 1
    assert float(gaussian_nll(target, mean, mask=mask)) == 2.0
