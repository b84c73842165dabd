"""Tests of brrrr.models.losses.reconstruction against torch's Gaussian NLL."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brrrr.models.losses.reconstruction import detached_variance_nll, gaussian_nll


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


def test_detached_variance_nll_splits_the_gradients():
    target, mean, logvar, reference = (
        torch.randn(2, 1, 3, 4, 5, dtype=torch.float64) for _ in range(4)
    )
    mean.requires_grad_(True)
    logvar.requires_grad_(True)
    loss = detached_variance_nll(target, mean, logvar=logvar, reference_logvar=reference).sum()
    loss.backward()
    # the mean is scored under the fixed reference variance: its gradient ignores ``logvar``
    assert torch.allclose(mean.grad, (mean - target).detach() * torch.exp(-reference))
    # the variance sees the same gradient as under the joint NLL
    joint_logvar = logvar.detach().clone().requires_grad_(True)
    gaussian_nll(target, mean.detach(), logvar=joint_logvar).sum().backward()
    assert torch.allclose(logvar.grad, joint_logvar.grad)
    # values: the two NLLs added
    expected = gaussian_nll(target, mean, logvar=reference) + gaussian_nll(
        target, mean, logvar=logvar
    )
    value = detached_variance_nll(target, mean, logvar=logvar, reference_logvar=reference)
    assert torch.allclose(value, expected)


def test_detached_variance_nll_without_reference_scores_the_mean_at_unit_variance():
    target = torch.zeros(1, 1, 2, 2, 2)
    mean, logvar = target + 1.0, torch.zeros_like(target)
    expected = gaussian_nll(target, mean) + gaussian_nll(target, mean, logvar=logvar)
    assert torch.allclose(detached_variance_nll(target, mean, logvar=logvar), expected)
