"""A Lightning ``Trainer`` configured for these models: precision, determinism, logs, checkpoints.

* precision from the accelerator: ``"bf16-mixed"`` on a GPU with bf16 (``"16-mixed"`` on older
  GPUs, with loss scaling), ``"32-true"`` on CPU (:func:`resolve_precision`);
* ``deterministic=True`` makes torch raise on non-deterministic kernels (CPU runs are then
  bit-reproducible, which the resume test relies on); ``"warn"`` only warns (on GPUs some 3D
  upsampling backward kernels have no deterministic version);
* mid-epoch checkpoints every ``checkpoint_every_n_steps`` steps (``checkpoints/last.ckpt`` is
  always the newest), CSV logs under ``logs/``, TensorBoard logs too when it is installed (a
  logged note says so when it is not);
* ``use_distributed_sampler=False``: the DataModules' batch samplers are already rank-aware.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger

from brrrr.models.training.config import TrainerConfig

__all__ = ["build_trainer", "resolve_accelerator", "resolve_precision", "tensorboard_available"]

LOGGER = logging.getLogger("brrrr.models.training")


def resolve_accelerator(accelerator: str) -> str:
    """``"auto"`` → ``"gpu"`` when CUDA is available, else ``"cpu"``; other names unchanged."""
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return "gpu" if accelerator == "cuda" else accelerator


def resolve_precision(accelerator: str, precision: str | None = None) -> str:
    """The Lightning precision for an accelerator.

    Args:
        accelerator: ``"cpu"``, ``"gpu"``, ``"cuda"`` or ``"auto"``.
        precision: An explicit choice, returned unchanged.

    Returns:
        ``"bf16-mixed"`` on GPUs with bf16, ``"16-mixed"`` on other GPUs, else ``"32-true"``.

    Example:
        >>> resolve_precision("cpu")
        '32-true'
    """
    if precision is not None:
        return precision
    if resolve_accelerator(accelerator) == "gpu" and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def tensorboard_available() -> bool:
    """Whether ``tensorboard`` or ``tensorboardX`` is installed."""
    return any(importlib.util.find_spec(name) for name in ("tensorboard", "tensorboardX"))


def _loggers(output_dir: Path, *, tensorboard: bool) -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(output_dir, name="logs")]
    if tensorboard:
        if tensorboard_available():
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(output_dir, name="tensorboard"))
        else:
            LOGGER.warning(
                "TensorBoard is not installed (pip install tensorboard); logging to CSV only, "
                "under %s",
                output_dir / "logs",
            )
    return loggers


def build_trainer(
    config: TrainerConfig,
    *,
    output_dir: str | os.PathLike[str],
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> L.Trainer:
    """A ``Trainer`` with this package's defaults (see the module docstring).

    Args:
        config: Trainer settings.
        output_dir: Run folder: ``checkpoints/``, ``logs/`` (and ``tensorboard/``).
        callbacks: Extra callbacks (KL controller, snapshot ensemble, ...).
        **overrides: Passed to ``lightning.Trainer`` last (e.g. ``enable_model_summary``).

    Returns:
        The trainer.
    """
    root = Path(output_dir)
    accelerator = resolve_accelerator(config.accelerator)
    checkpoint = ModelCheckpoint(
        dirpath=root / "checkpoints",
        filename="step-{step:06d}",
        every_n_train_steps=config.checkpoint_every_n_steps,
        save_top_k=-1 if config.checkpoint_every_n_steps else 0,
        save_last=True,
    )
    options: dict[str, Any] = {
        "accelerator": accelerator,
        "devices": config.devices,
        "strategy": config.strategy,
        "precision": resolve_precision(accelerator, config.precision),
        "deterministic": config.deterministic,
        "max_steps": config.max_steps,
        "max_epochs": config.max_epochs if config.max_epochs is not None else -1,
        "val_check_interval": config.val_every_n_steps,
        "check_val_every_n_epoch": None if config.val_every_n_steps else 1,
        "log_every_n_steps": config.log_every_n_steps,
        "gradient_clip_val": config.gradient_clip_val,
        "callbacks": [*callbacks, checkpoint],
        "logger": _loggers(root, tensorboard=config.tensorboard),
        "use_distributed_sampler": False,
        "num_sanity_val_steps": 0,
        "enable_progress_bar": config.progress_bar,
        "default_root_dir": root,
    }
    options.update(overrides)
    return L.Trainer(**options)
