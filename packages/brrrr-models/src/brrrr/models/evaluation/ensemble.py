"""Loading saved models and ensembles, and ensemble inference with epistemic variance.

For ``K`` members with means ``μ_k`` (and, for aleatoric decoders, variances ``σ_k²``) the
ensemble predicts

* mean ``μ = (1/K) Σ μ_k``;
* epistemic variance ``(1/K) Σ (μ_k − μ)²`` — disagreement between members;
* aleatoric variance ``(1/K) Σ σ_k²`` — the noise each member expects;
* total variance = epistemic + aleatoric (the variance of the mixture).

Example:
    >>> models = load_ensemble("runs/atlas/snapshots")  # doctest: +SKIP
    >>> prediction = ensemble_predict(models, maps)  # doctest: +SKIP
    >>> prediction.epistemic_variance.shape  # doctest: +SKIP
    torch.Size([4, 1, 91, 109, 91])
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from brrrr.models.errors import ModelConfigError
from brrrr.models.nets import BetaVAE, HierarchicalVAE, PointVAE

__all__ = [
    "EnsemblePrediction",
    "decode_maps",
    "ensemble_predict",
    "latent_size",
    "load_ensemble",
    "load_model",
]

_CLASSES: dict[str, Any] = {c.__name__: c for c in (BetaVAE, HierarchicalVAE, PointVAE)}


def latent_size(model: nn.Module) -> int:
    """Size of the (top) latent a model decodes from."""
    config: Any = getattr(model, "config", None)
    if isinstance(model, HierarchicalVAE):
        return int(config.top_latent_dim)
    if isinstance(model, BetaVAE | PointVAE):
        return int(config.latent_dim)
    raise TypeError(f"{type(model).__name__} is not a brrrr VAE")


def load_model(folder: str | os.PathLike[str]) -> Any:
    """Load any network saved with ``save_pretrained`` (the class is read from ``config.json``).

    Raises:
        ModelConfigError: No ``config.json`` or an unknown ``model_type``.
    """
    path = Path(folder) / "config.json"
    try:
        model_type = json.loads(path.read_text())["model_type"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelConfigError(f"not a saved brrrr model ({exc})", path=path) from None
    if model_type not in _CLASSES:
        raise ModelConfigError(f"unknown model_type {model_type!r}", path=path)
    return _CLASSES[model_type].from_pretrained(str(folder))


def load_ensemble(
    folders: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> list[nn.Module]:
    """Load ensemble members: a list of folders, or a folder of ``snapshot-*`` folders.

    Returns:
        The members in eval mode, in sorted folder order.
    """
    if isinstance(folders, str | os.PathLike):
        root = Path(folders)
        members = sorted(p for p in root.iterdir() if (p / "config.json").exists())
        if not members:
            raise ModelConfigError("no saved models (config.json) in this folder", path=root)
    else:
        members = [Path(f) for f in folders]
    return [load_model(m) for m in members]


def decode_maps(
    model: nn.Module,
    z: torch.Tensor,
    *,
    metadata: torch.Tensor | None = None,
    metadata_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decode latents of a map model (:class:`BetaVAE` or the top level of a hierarchical VAE).

    Args:
        model: A ``BetaVAE`` or ``HierarchicalVAE``.
        z: ``(B, L)`` latents.
        metadata: ``(B, M)`` metadata, or ``None``.
        metadata_mask: ``(B, M)`` observed mask.

    Returns:
        ``(mean, logvar)``, ``(B, C, I, J, K)`` each (``logvar`` ``None`` unless aleatoric).
    """
    if not isinstance(model, BetaVAE | HierarchicalVAE):
        raise TypeError(f"{type(model).__name__} does not decode maps")
    return model.decode(z, metadata=metadata, metadata_mask=metadata_mask)


@dataclass
class EnsemblePrediction:
    """An ensemble's predictive mean and variances, each ``(B, C, I, J, K)``.

    Attributes:
        mean: Mean of the members' means.
        epistemic_variance: Variance of the members' means.
        aleatoric_variance: Mean of the members' predicted variances, or ``None``.
        members: ``(K, B, C, I, J, K)`` the members' means.
    """

    mean: torch.Tensor
    epistemic_variance: torch.Tensor
    aleatoric_variance: torch.Tensor | None
    members: torch.Tensor

    @property
    def total_variance(self) -> torch.Tensor:
        """Epistemic plus aleatoric variance (the mixture's variance)."""
        if self.aleatoric_variance is None:
            return self.epistemic_variance
        return self.epistemic_variance + self.aleatoric_variance


@torch.no_grad()
def ensemble_predict(
    models: Sequence[nn.Module],
    x: torch.Tensor,
    *,
    metadata: torch.Tensor | None = None,
    metadata_mask: torch.Tensor | None = None,
) -> EnsemblePrediction:
    """Reconstruct ``x`` with every member (eval mode: ``z = μ``) and combine.

    Args:
        models: Map models (``BetaVAE`` / ``HierarchicalVAE``).
        x: ``(B, C, I, J, K)`` maps.
        metadata: ``(B, M)`` metadata, or ``None``.
        metadata_mask: ``(B, M)`` observed mask.

    Returns:
        The :class:`EnsemblePrediction`.
    """
    if not models:
        raise ValueError("an ensemble needs at least one model")
    means, variances = [], []
    for model in models:
        was_training = model.training
        model.eval()
        out = model(x, metadata=metadata, metadata_mask=metadata_mask)
        model.train(was_training)
        means.append(out.reconstruction.float())
        if out.reconstruction_logvar is not None:
            variances.append(out.reconstruction_logvar.float().exp())
    members = torch.stack(means)
    mean = members.mean(dim=0)
    return EnsemblePrediction(
        mean=mean,
        epistemic_variance=(members - mean).square().mean(dim=0),
        aleatoric_variance=torch.stack(variances).mean(dim=0)
        if len(variances) == len(models)
        else None,
        members=members,
    )
