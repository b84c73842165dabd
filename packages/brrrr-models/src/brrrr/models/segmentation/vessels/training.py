"""Train a MONAI vessel segmenter with Lightning on a MiniVess-layout folder.

:func:`train_vessels` prepares the volumes on a grid of ``spacing_um``
(:mod:`~brrrr.models.segmentation.vessels.data`), trains a MONAI ``UNet`` (or ``SegResNet``)
on random patches with Dice + cross-entropy (``monai.losses.DiceCELoss``, softmax over
background/vessel), and after every epoch runs sliding-window inference
(:func:`~brrrr.models.segmentation.inference.sliding_window_probabilities`) over each whole
validation volume and logs Dice, clDice and the Betti-0/1 errors
(:mod:`~brrrr.models.segmentation.vessels.metrics`). The run folder::

    RUN/model.safetensors      the trained weights
    RUN/model.json             its NetworkConfig (architecture, patch, spacing, normalisation)
    RUN/metrics.json           settings, split, per-epoch loss and validation metrics, final
                               per-volume validation metrics
    RUN/checkpoints/last.ckpt  Lightning checkpoint (weights, optimiser, epoch)
    RUN/logs/                  CSV logs
    RUN/prepared/              the prepared volumes (NIfTI and .npy)

Example:
    >>> result = train_vessels("minivess", "runs/vessels", spacing_um=(1, 1, 5))  # doctest: +SKIP
    >>> result.metrics["final"]["aggregate"]["cldice"]["mean"]  # doctest: +SKIP
    0.81
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from brrrr.core.errors import MissingDependencyError
from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.members import NetworkConfig, build_network
from brrrr.models.segmentation.vessels.data import (
    VESSEL_NORMALIZATION,
    VesselDataModule,
)
from brrrr.models.segmentation.vessels.metrics import (
    VESSEL_METRIC_NAMES,
    VesselMetrics,
    aggregate_vessel_metrics,
    vessel_metrics,
)

try:
    import lightning as L
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        'vessel training needs Lightning: pip install "brrrr-models[lightning,segmentation]"'
    ) from None

__all__ = [
    "VesselSegmentationModule",
    "VesselTrainResult",
    "predict_mask",
    "train_vessels",
    "vessel_network_config",
]

Network = Literal["UNet", "SegResNet"]
WEIGHTS_NAME = "model.safetensors"


def vessel_network_config(
    *,
    network: Network = "UNet",
    patch: Sequence[int] = (64, 64, 16),
    spacing_um: Sequence[float] = (1.0, 1.0, 5.0),
    channels: Sequence[int] = (16, 32, 64),
    threshold: float = 0.5,
) -> NetworkConfig:
    """The :class:`NetworkConfig` of a vessel model (one ``image`` channel, 2 outputs).

    ``UNet`` halves every axis at each of ``len(channels) - 1`` levels (one residual unit per
    level); ``SegResNet`` starts from ``channels[0]`` filters with as many down-sampling
    levels. Patch sizes must divide by ``2 ** (len(channels) - 1)``.

    Raises:
        SegmentationError: An unknown network, or a patch the levels do not divide.
    """
    levels = len(channels) - 1
    if levels < 1:
        raise SegmentationError(f"channels needs at least 2 levels, got {list(channels)}")
    patch_size = tuple(int(p) for p in patch)
    if len(patch_size) != 3 or any(p < 1 or p % 2**levels for p in patch_size):
        raise SegmentationError(
            f"patch {list(patch)} must be 3 sizes divisible by {2**levels} "
            f"({levels} down-sampling levels)"
        )
    kwargs: dict[str, Any]
    if network == "UNet":
        kwargs = {
            "channels": [int(c) for c in channels],
            "strides": [2] * levels,
            "num_res_units": 1,
        }
    elif network == "SegResNet":
        kwargs = {
            "init_filters": int(channels[0]),
            "blocks_down": [1] + [2] * levels,
            "blocks_up": [1] * levels,
        }
    else:
        raise SegmentationError(f"network must be UNet or SegResNet, got {network!r}")
    spacing = tuple(float(s) for s in spacing_um)
    return NetworkConfig(
        network=network,
        channels=("image",),
        out_channels=2,
        kwargs=kwargs,
        normalization={"image": VESSEL_NORMALIZATION},
        patch_size=patch_size,
        spacing_mm=tuple(s / 1e3 for s in spacing),  # type: ignore[arg-type]
        activation="softmax",
        lesion_index=1,
        threshold=float(threshold),
        overlap=0.25,
        name="vessel-model",
        description="Vessel segmenter (two-photon microscopy) trained by brrrr train vessels.",
        metadata={"task": "vessels", "spacing_um": list(spacing)},
    )


def predict_mask(
    network: Any,
    config: NetworkConfig,
    image: np.ndarray,
    *,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Vessel probability and mask of one normalised ``(I, J, K)`` image on the model grid.

    Returns:
        ``(probability float32, mask bool)``, both ``(I, J, K)``.
    """
    from brrrr.models.segmentation.inference import sliding_window_probabilities

    probabilities = sliding_window_probabilities(
        network,
        np.asarray(image, dtype=np.float32)[None],
        patch_size=config.patch_size,
        overlap=config.overlap,
        activation=config.activation,
        device=device,
    )
    vessel = probabilities[config.lesion_index]
    return vessel, vessel > config.threshold


def _json_ready(value: Any) -> Any:
    """NaN → ``None`` (JSON has no NaN), recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


class VesselSegmentationModule(L.LightningModule):
    """A MONAI network trained with Dice + cross-entropy, validated with the vessel metrics.

    Args:
        config: The network's :class:`NetworkConfig`.
        learning_rate: AdamW learning rate (cosine decay over the run).
        weight_decay: AdamW weight decay.
    """

    def __init__(
        self, config: NetworkConfig, *, learning_rate: float = 2e-3, weight_decay: float = 1e-4
    ) -> None:
        super().__init__()
        from monai.losses import DiceCELoss

        self.config = config
        self.network = build_network(config)
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.save_hyperparameters({"config": config.to_dict(), "learning_rate": learning_rate})
        self.history: list[dict[str, Any]] = []
        self._losses: list[float] = []
        self._val: list[tuple[str, VesselMetrics]] = []
        self.last_validation: list[tuple[str, VesselMetrics]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, I, J, K)`` → ``(B, 2, I, J, K)`` logits."""
        return self.network(x)

    def on_train_epoch_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and datamodule.train_set is not None:
            datamodule.train_set.set_epoch(self.current_epoch)
        self._losses = []

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch["image"]), batch["label"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        self._losses.append(float(loss.detach()))
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        _, mask = predict_mask(
            self.network, self.config, batch["image"][0].numpy(), device=self.device
        )
        self._val.append((str(batch["id"]), vessel_metrics(mask, batch["label"].numpy())))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        summary = aggregate_vessel_metrics(m for _, m in self._val)
        for name in VESSEL_METRIC_NAMES:
            self.log(f"val_{name}", summary[name].mean, batch_size=1)
        self.history.append(
            {
                "epoch": int(self.current_epoch),
                "train_loss": float(np.mean(self._losses)) if self._losses else None,
                "val": {name: summary[name].mean for name in VESSEL_METRIC_NAMES},
            }
        )
        self.last_validation, self._val = self._val, []

    def configure_optimizers(self) -> Any:
        optimiser = torch.optim.AdamW(
            self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


@dataclass(frozen=True)
class VesselTrainResult:
    """What :func:`train_vessels` wrote.

    Attributes:
        run_dir: The run folder.
        weights: ``RUN/model.safetensors`` (its config is ``RUN/model.json``).
        metrics: The content of ``RUN/metrics.json``.
        config: The network config.
    """

    run_dir: Path
    weights: Path
    metrics: dict[str, Any] = field(repr=False)
    config: NetworkConfig = field(repr=False)


def train_vessels(
    data_dir: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    spacing_um: Sequence[float] = (1.0, 1.0, 5.0),
    patch: Sequence[int] = (64, 64, 16),
    max_epochs: int = 20,
    memory_budget_bytes: int | None = 1 << 30,
    network: Network = "UNet",
    channels: Sequence[int] = (16, 32, 64),
    batch_size: int = 2,
    samples_per_volume: int = 8,
    learning_rate: float = 2e-3,
    val_fraction: float = 0.25,
    seed: int = 0,
    accelerator: str = "auto",
    progress: bool = True,
) -> VesselTrainResult:
    """Train a vessel segmenter on ``data_dir`` and write the run folder (module docstring).

    Args:
        data_dir: MiniVess-layout folder (``imagesTr/``, ``labelsTr/``, optional ``metadata/``).
        run_dir: Run folder (created).
        spacing_um: Voxel size in µm the model works at; every volume is resampled to it.
        patch: Training and sliding-window patch in voxels of that grid.
        max_epochs: Epochs.
        memory_budget_bytes: Largest array a resample may build in memory (see
            :func:`~brrrr.models.segmentation.vessels.data.prepare_vessel_volumes`).
        network: ``"UNet"`` or ``"SegResNet"``.
        channels: Features per level (see :func:`vessel_network_config`).
        batch_size: Patches per step.
        samples_per_volume: Patches per training volume and epoch.
        learning_rate: Peak AdamW learning rate.
        val_fraction: Share of volumes held out for validation.
        seed: Seed of the weights, the split and the patches.
        accelerator: ``"auto"``, ``"cpu"`` or ``"gpu"``.
        progress: Show Lightning's progress bar.

    Returns:
        The :class:`VesselTrainResult`.

    Raises:
        PairingError: Unmatched files or mismatched shapes in ``data_dir``.
        SegmentationError: Non-3-D volumes, fewer than 2 volumes, bad settings.
    """
    from brrrr.models.segmentation.checkpoints import save_network
    from brrrr.models.training.config import TrainerConfig
    from brrrr.models.training.trainer import build_trainer

    if max_epochs < 1:
        raise SegmentationError(f"max_epochs must be at least 1, got {max_epochs}")
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    L.seed_everything(seed, workers=True, verbose=False)
    config = vessel_network_config(
        network=network, patch=patch, spacing_um=spacing_um, channels=channels
    )
    datamodule = VesselDataModule(
        data_dir,
        run / "prepared",
        spacing_um=spacing_um,
        patch=patch,
        memory_budget_bytes=memory_budget_bytes,
        val_fraction=val_fraction,
        batch_size=batch_size,
        samples_per_volume=samples_per_volume,
        seed=seed,
    )
    datamodule.setup("fit")
    module = VesselSegmentationModule(config, learning_rate=learning_rate)
    trainer = build_trainer(
        TrainerConfig(
            max_steps=-1,
            max_epochs=max_epochs,
            seed=seed,
            accelerator=accelerator,
            checkpoint_every_n_steps=0,
            tensorboard=False,
            progress_bar=progress,
            log_every_n_steps=1,
        ),
        output_dir=run,
        enable_model_summary=False,
    )
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - started
    parameters = sum(p.numel() for p in module.network.parameters())
    final = module.last_validation
    summary = aggregate_vessel_metrics(m for _, m in final)
    trained = NetworkConfig.from_dict(
        {
            **config.to_dict(),
            "weights": WEIGHTS_NAME,
            "metadata": {
                **config.metadata,
                "trained_on": str(Path(data_dir)),
                "train_ids": [v.id for v in datamodule.train_volumes],
                "val_ids": [v.id for v in datamodule.val_volumes],
                "epochs": max_epochs,
                "val_cldice": summary["cldice"].mean,
            },
        }
    )
    weights = save_network(module.network, trained, run / WEIGHTS_NAME)
    metrics = {
        "settings": {
            "data_dir": str(Path(data_dir)),
            "spacing_um": [float(s) for s in spacing_um],
            "patch": [int(p) for p in patch],
            "max_epochs": max_epochs,
            "memory_budget_bytes": memory_budget_bytes,
            "network": network,
            "channels": [int(c) for c in channels],
            "batch_size": batch_size,
            "samples_per_volume": samples_per_volume,
            "learning_rate": learning_rate,
            "val_fraction": val_fraction,
            "seed": seed,
        },
        "data": {
            "train": [{"id": v.id, "shape": list(v.shape)} for v in datamodule.train_volumes],
            "val": [{"id": v.id, "shape": list(v.shape)} for v in datamodule.val_volumes],
        },
        "parameters": parameters,
        "train_seconds": round(seconds, 2),
        "epochs": module.history,
        "final": {
            "per_volume": [{"id": i, **m.to_dict()} for i, m in final],
            "aggregate": {name: s.to_dict() for name, s in summary.items()},
        },
    }
    text = json.dumps(_json_ready(metrics), indent=2, allow_nan=False) + "\n"
    (run / "metrics.json").write_text(text, encoding="utf-8")
    return VesselTrainResult(run, weights, metrics, trained)
