"""LightningModules that wire the three networks to their objectives.

Each module holds a network (``.model``, a plain ``nn.Module`` you can ``save_pretrained``),
its loss weights and an :class:`~brrrr.models.training.config.OptimConfig`. Shared behaviour
(:class:`VAEModule`):

* AdamW with ``β₂ = 0.995``, no weight decay on biases and norm scales, linear warm-up and an
  optional cosine decay, stepped every optimizer step;
* ``beta`` (the KL weight) is a plain attribute that :class:`~brrrr.models.training.
  KLController` sets each step;
* logs ``train/<term>`` each step and ``val/<term>`` per epoch (synchronised across ranks);
* checkpoints carry the global RNG states (torch, CUDA, numpy, random) and restore them at
  ``on_train_start``, so the reparameterisation noise after a resume is the noise the
  uninterrupted run would have drawn.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch import nn

from brrrr.models.blocks.metadata import hold_out_metadata
from brrrr.models.config import config_from_dict, config_to_dict
from brrrr.models.nets import (
    BetaVAE,
    BetaVAEConfig,
    HierarchicalVAE,
    HierarchicalVAEConfig,
    PointVAE,
    PointVAEConfig,
    beta_vae_loss,
    hierarchical_vae_loss,
    point_vae_loss,
)
from brrrr.models.training.config import OptimConfig

__all__ = [
    "BetaVAEModule",
    "HierarchicalVAEModule",
    "PointVAEModule",
    "VAEModule",
    "rng_states",
    "set_rng_states",
]


def rng_states() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), numpy and ``random``.

    Only tensors, ints, floats and tuples, so ``torch.load(weights_only=True)`` accepts them.
    """
    # the legacy global RNG is what libraries seeded by seed_everything draw from
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (
            str(name),
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _lr_lambda(optim: OptimConfig, total_steps: int | None) -> Any:
    def factor(step: int) -> float:
        if optim.warmup_steps and step < optim.warmup_steps:
            return (step + 1) / optim.warmup_steps
        if optim.schedule == "constant" or not total_steps:
            return 1.0
        progress = min(1.0, (step - optim.warmup_steps) / max(1, total_steps - optim.warmup_steps))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return optim.min_lr_ratio + (1.0 - optim.min_lr_ratio) * cosine

    return factor


class VAEModule(L.LightningModule):
    """Optimizer, logging and checkpoint behaviour shared by the VAE modules.

    Subclasses set ``self.model`` and implement :meth:`compute_loss`.

    Args:
        optim: Optimizer settings (a dataclass or its dict).
        beta: Initial KL weight.
        voxel_mask: Broadcastable ``(1, 1, I, J, K)`` mask of voxels that count in the loss.
    """

    model: nn.Module
    voxel_mask: torch.Tensor | None

    def __init__(
        self,
        *,
        optim: OptimConfig | Mapping[str, Any] | None = None,
        beta: float = 1.0,
        voxel_mask: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.optim = (
            optim if isinstance(optim, OptimConfig) else config_from_dict(OptimConfig, optim or {})
        )
        self.beta = float(beta)
        self.register_buffer("voxel_mask", voxel_mask, persistent=False)
        self._rng_to_restore: dict[str, Any] | None = None

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss terms of a batch (``"loss"`` first); training-mode behaviour when training."""
        raise NotImplementedError

    @staticmethod
    def _batch_size(batch: Mapping[str, torch.Tensor]) -> int:
        return int(batch["index"].shape[0])

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        """One optimisation step's loss; logs ``train/*`` and ``train/beta``."""
        terms = self.compute_loss(batch)
        size = self._batch_size(batch)
        logged = {f"train/{k}": v.detach() for k, v in terms.items()}
        self.log_dict(logged, on_step=True, on_epoch=False, batch_size=size)
        self.log("train/beta", self.beta, on_step=True, on_epoch=False, batch_size=size)
        return {"loss": terms["loss"], **{k: v.detach() for k, v in terms.items() if k != "loss"}}

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        """Logs ``val/*`` averaged over the epoch and across ranks."""
        terms = self.compute_loss(batch)
        self.log_dict(
            {f"val/{k}": v for k, v in terms.items()},
            on_step=False,
            on_epoch=True,
            sync_dist=True,
            batch_size=self._batch_size(batch),
        )

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        """Logs ``test/*``."""
        terms = self.compute_loss(batch)
        self.log_dict(
            {f"test/{k}": v for k, v in terms.items()},
            on_epoch=True,
            sync_dist=True,
            batch_size=self._batch_size(batch),
        )

    def configure_optimizers(self) -> Any:
        """AdamW (``betas`` from the config, 0.9/0.995 by default) and a per-step schedule."""
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for parameter in self.model.parameters():
            if parameter.requires_grad:
                (decay if parameter.ndim >= 2 else no_decay).append(parameter)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.optim.lr,
            betas=self.optim.betas,
            eps=self.optim.eps,
        )
        total = self.optim.total_steps
        if total is None and self._trainer is not None and self.trainer.max_steps > 0:
            total = self.trainer.max_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(self.optim, total))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the global RNG states and β with the weights."""
        checkpoint["brrrr_rng_states"] = rng_states()
        checkpoint["brrrr_beta"] = self.beta

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the RNG states to restore when training restarts."""
        self._rng_to_restore = checkpoint.get("brrrr_rng_states")
        self.beta = float(checkpoint.get("brrrr_beta", self.beta))

    def on_train_start(self) -> None:
        """Restore the checkpoint's RNG states right before the first resumed step."""
        if self._rng_to_restore is not None:
            set_rng_states(self._rng_to_restore)
            self._rng_to_restore = None

    def _hyperparameters(self, model_config: Any, **extra: Any) -> None:
        self.save_hyperparameters(
            {"model": config_to_dict(model_config), "optim": asdict(self.optim), **extra}
        )


def _metadata_inputs(
    batch: Mapping[str, torch.Tensor], *, rate: float, training: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """``(metadata, input_mask, held_out_mask)``: hide ``rate`` of observed entries in training."""
    metadata = batch.get("metadata")
    if metadata is None:
        return None, None, None
    mask = batch.get("metadata_mask", torch.isfinite(metadata))
    if not training or rate <= 0:
        return metadata, mask, None
    visible, held_out = hold_out_metadata(mask, rate=rate)
    return metadata, visible, held_out


class BetaVAEModule(VAEModule):
    """Trains a :class:`~brrrr.models.BetaVAE` with :func:`~brrrr.models.beta_vae_loss`.

    Args:
        model: The network's config (dataclass or dict).
        optim: Optimizer settings.
        beta: Initial KL weight.
        hold_out_rate: Share of observed metadata hidden from the input in training and scored
            by the imputation head.
        imputation_weight: Weight of the imputation loss.
        adversary_weight: Weight of the nuisance adversary's loss.
        variance_fit: ``"joint"`` Gaussian NLL or ``"detached"`` (the mean under the model's
            reference variance, the aleatoric variance on the stopped mean's residuals); see
            :func:`~brrrr.models.beta_vae_loss`.
        voxel_mask: ``(1, 1, I, J, K)`` voxels that count (e.g. the brain mask).
    """

    model: BetaVAE

    def __init__(
        self,
        model: BetaVAEConfig | Mapping[str, Any] | None = None,
        *,
        optim: OptimConfig | Mapping[str, Any] | None = None,
        beta: float = 1.0,
        hold_out_rate: float = 0.2,
        imputation_weight: float = 1.0,
        adversary_weight: float = 1.0,
        variance_fit: Literal["joint", "detached"] = "joint",
        voxel_mask: torch.Tensor | None = None,
    ) -> None:
        super().__init__(optim=optim, beta=beta, voxel_mask=voxel_mask)
        config = (
            model
            if isinstance(model, BetaVAEConfig)
            else config_from_dict(BetaVAEConfig, model or {})
        )
        self.model = BetaVAE(config)
        self.hold_out_rate = hold_out_rate
        self.imputation_weight = imputation_weight
        self.adversary_weight = adversary_weight
        self.variance_fit: Literal["joint", "detached"] = variance_fit
        self._hyperparameters(
            config,
            beta=beta,
            hold_out_rate=hold_out_rate,
            imputation_weight=imputation_weight,
            adversary_weight=adversary_weight,
            variance_fit=variance_fit,
        )

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """β-VAE terms of a batch with ``"x"`` and optional metadata and nuisance."""
        metadata, visible, held_out = _metadata_inputs(
            batch, rate=self.hold_out_rate, training=self.training
        )
        out = self.model(batch["x"], metadata=metadata, metadata_mask=visible)
        return beta_vae_loss(
            out,
            batch["x"],
            beta=self.beta,
            voxel_mask=self.voxel_mask,
            metadata=metadata,
            held_out_mask=held_out,
            imputation_weight=self.imputation_weight,
            nuisance=batch.get("nuisance"),
            adversary_weight=self.adversary_weight,
            variance_fit=self.variance_fit,
            reference_logvar=self.model.reference_logvar,
        )


class HierarchicalVAEModule(VAEModule):
    """Trains a :class:`~brrrr.models.HierarchicalVAE` with its two-level objective.

    Args:
        model: The network's config (dataclass or dict).
        optim: Optimizer settings.
        beta: Initial KL weight (both levels).
        top_weight: Weight of the top-only reconstruction.
        voxel_mask: ``(1, 1, I, J, K)`` voxels that count.
    """

    def __init__(
        self,
        model: HierarchicalVAEConfig | Mapping[str, Any] | None = None,
        *,
        optim: OptimConfig | Mapping[str, Any] | None = None,
        beta: float = 1.0,
        top_weight: float = 1.0,
        voxel_mask: torch.Tensor | None = None,
    ) -> None:
        super().__init__(optim=optim, beta=beta, voxel_mask=voxel_mask)
        config = (
            model
            if isinstance(model, HierarchicalVAEConfig)
            else config_from_dict(HierarchicalVAEConfig, model or {})
        )
        self.model = HierarchicalVAE(config)
        self.top_weight = top_weight
        self._hyperparameters(config, beta=beta, top_weight=top_weight)

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Hierarchical terms (``kl`` is the sum of both levels, for the KL controller)."""
        metadata, visible, _ = _metadata_inputs(batch, rate=0.0, training=False)
        out = self.model(batch["x"], metadata=metadata, metadata_mask=visible)
        terms = hierarchical_vae_loss(
            out, batch["x"], beta=self.beta, top_weight=self.top_weight, voxel_mask=self.voxel_mask
        )
        return {**terms, "kl": terms["kl_top"] + terms["kl_bottom"]}


class PointVAEModule(VAEModule):
    """Trains a :class:`~brrrr.models.PointVAE` with Chamfer + Sinkhorn + β·KL.

    Args:
        model: The network's config (dataclass or dict).
        optim: Optimizer settings.
        beta: Initial KL weight.
        chamfer_weight: Weight of the masked Chamfer distance.
        sinkhorn_weight: Weight of the Sinkhorn divergence.
        blur: Sinkhorn blur, in units of the model's ``coordinate_scale_mm``.
    """

    model: PointVAE

    def __init__(
        self,
        model: PointVAEConfig | Mapping[str, Any] | None = None,
        *,
        optim: OptimConfig | Mapping[str, Any] | None = None,
        beta: float = 1.0,
        chamfer_weight: float = 1.0,
        sinkhorn_weight: float = 1.0,
        blur: float = 0.05,
    ) -> None:
        super().__init__(optim=optim, beta=beta)
        config = (
            model
            if isinstance(model, PointVAEConfig)
            else config_from_dict(PointVAEConfig, model or {})
        )
        self.model = PointVAE(config)
        self.chamfer_weight = chamfer_weight
        self.sinkhorn_weight = sinkhorn_weight
        self.blur = blur
        self._hyperparameters(
            config,
            beta=beta,
            chamfer_weight=chamfer_weight,
            sinkhorn_weight=sinkhorn_weight,
            blur=blur,
        )

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Point-set terms of a batch with ``"points"`` and ``"mask"``."""
        metadata, visible, _ = _metadata_inputs(batch, rate=0.0, training=False)
        mask = batch["mask"]
        out = self.model(batch["points"], mask=mask, metadata=metadata, metadata_mask=visible)
        return point_vae_loss(
            out,
            batch["points"],
            target_mask=mask,
            coordinate_scale_mm=self.model.config.coordinate_scale_mm,
            chamfer_weight=self.chamfer_weight,
            sinkhorn_weight=self.sinkhorn_weight,
            blur=self.blur,
            beta=self.beta,
        )
