"""Kullback–Leibler divergences between diagonal Gaussians, summed per sample.

Example:
    >>> import torch
    >>> kl_standard_normal(torch.zeros(2, 4), torch.zeros(2, 4))
    tensor([0., 0.])
"""

from __future__ import annotations

import torch

__all__ = ["kl_normal", "kl_standard_normal"]


def _sum_per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(start_dim=1).sum(dim=1)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` in nats.

    Args:
        mu: ``(B, ...)`` posterior mean.
        logvar: ``(B, ...)`` posterior log-variance.

    Returns:
        ``(B,)`` divergence summed over all non-batch dimensions.
    """
    return _sum_per_sample(0.5 * (mu.square() + logvar.exp() - 1.0 - logvar))


def kl_normal(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """``KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p)))`` in nats.

    Args:
        mu_q: ``(B, ...)`` posterior mean.
        logvar_q: ``(B, ...)`` posterior log-variance.
        mu_p: ``(B, ...)`` prior mean.
        logvar_p: ``(B, ...)`` prior log-variance.

    Returns:
        ``(B,)`` divergence summed over all non-batch dimensions.
    """
    ratio = (logvar_q - logvar_p).exp()
    return _sum_per_sample(
        0.5 * (ratio + (mu_q - mu_p).square() / logvar_p.exp() - 1.0 - (logvar_q - logvar_p))
    )
