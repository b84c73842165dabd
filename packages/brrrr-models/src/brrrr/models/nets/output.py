"""What a VAE's ``forward`` returns: one dataclass a training loop can read by name."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["VAEOutput"]


@dataclass
class VAEOutput:
    """Outputs of :class:`BetaVAE` and :class:`PointVAE`.

    Attributes:
        reconstruction: Decoded mean: ``(B, C, I, J, K)`` maps or ``(B, N, 3)`` points (mm).
        mu: ``(B, L)`` posterior mean.
        logvar: ``(B, L)`` posterior log-variance.
        z: ``(B, L)`` latent fed to the decoder (a sample in training mode, ``mu`` in eval mode).
        kl: ``(B,)`` ``KL(q(z | x) || N(0, I))`` in nats, summed over the latent.
        reconstruction_logvar: ``(B, C, I, J, K)`` per-voxel log-variance of an aleatoric
            decoder, else ``None``.
        metadata_prediction: ``(B, M)`` imputed metadata, when the model has metadata.
        nuisance_prediction: ``(B, P)`` the adversary's nuisance prediction, when it has one.
    """

    reconstruction: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    kl: torch.Tensor
    reconstruction_logvar: torch.Tensor | None = None
    metadata_prediction: torch.Tensor | None = None
    nuisance_prediction: torch.Tensor | None = None
