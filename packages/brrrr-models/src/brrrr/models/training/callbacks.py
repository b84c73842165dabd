"""Training callbacks: the KL-weight controller and the snapshot ensemble.

:class:`KLController` sets ``pl_module.beta`` before every step:

* ``constant``; ``linear`` warm-up ``β(t) = β₀ + (β − β₀) · min(1, t / T)``;
* ``cyclical`` (Fu et al. 2019): the warm-up over the first half of every cycle of ``T``
  steps, then ``β`` for the second half;
* ``target``: a PI controller on the relative KL error ``e = (KL − KL*) / KL*`` in log space,
  ``log β = log β₀ + k_p · e + k_i · Σ e`` (clipped to ``[β_min, β_max]``, integral clamped
  against wind-up). KL above the target raises β, below lowers it (cf. ControlVAE, Shao et al.
  2020). The KL is the batch mean averaged over DDP ranks, so all ranks keep the same β.

:class:`SnapshotEnsemble` (Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free")
owns the learning rate: a cosine from ``lr_max`` to ``lr_min`` restarted every
``cycle_steps`` steps, ``lr(t) = lr_min + (lr_max − lr_min) · (1 + cos(π · (t mod C) / C)) / 2``
(after an optional longer first cycle of ``first_cycle_steps``; later cycles may restart at a
lower ``restart_lr``), and at the end of each cycle
saves the network with ``save_pretrained`` to ``folder/snapshot-XX`` (rank 0), keeping the
last ``n_snapshots``. Load them with :func:`brrrr.models.evaluation.load_ensemble`.

Both callbacks keep their state in checkpoints, so a resumed run continues the same schedule.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch

from brrrr.models.training.config import KLConfig, SnapshotConfig

__all__ = ["KLController", "SnapshotEnsemble", "kl_schedule"]


def kl_schedule(config: KLConfig, step: int) -> float:
    """β at ``step`` for the open-loop modes (``constant``, ``linear``, ``cyclical``).

    Example:
        >>> kl_schedule(KLConfig(mode="linear", beta=1.0, warmup_steps=10), 5)
        0.5
    """
    if config.mode in ("constant", "target"):
        return config.beta
    if config.mode == "linear":
        fraction = min(1.0, step / config.warmup_steps)
    else:
        half = max(1.0, config.warmup_steps / 2)
        fraction = min(1.0, (step % config.warmup_steps) / half)
    return config.beta_start + (config.beta - config.beta_start) * fraction


class KLController(L.Callback):
    """Sets the module's ``beta`` each step (see the module docstring).

    Args:
        config: Schedule or controller settings.
    """

    def __init__(self, config: KLConfig) -> None:
        self.config = config
        self.beta = config.beta if config.mode == "target" else kl_schedule(config, 0)
        self.integral = 0.0

    def update(self, kl: float) -> float:
        """One controller step from a measured KL (``target`` mode); returns the new β."""
        config = self.config
        assert config.target_kl is not None
        error = (kl - config.target_kl) / config.target_kl
        error = max(-1.0, min(1.0, error))  # one outlier batch cannot swing β far
        limit = 5.0 / max(config.ki, 1e-12)
        self.integral = max(-limit, min(limit, self.integral + error))
        log_beta = math.log(config.beta) + config.kp * error + config.ki * self.integral
        self.beta = min(config.beta_max, max(config.beta_min, math.exp(log_beta)))
        return self.beta

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Set ``pl_module.beta`` for this step."""
        if self.config.mode != "target":
            self.beta = kl_schedule(self.config, trainer.global_step)
        cast(Any, pl_module).beta = self.beta

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Feed the step's KL (mean over ranks) to the controller."""
        if self.config.mode != "target" or not isinstance(outputs, dict) or "kl" not in outputs:
            return
        kl = outputs["kl"].detach().float().reshape(())
        kl = trainer.strategy.reduce(kl, reduce_op="mean")
        self.update(float(kl))

    def state_dict(self) -> dict[str, Any]:
        """Controller state for checkpoints."""
        return {"beta": self.beta, "integral": self.integral}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the controller state."""
        self.beta = float(state_dict["beta"])
        self.integral = float(state_dict["integral"])


class SnapshotEnsemble(L.Callback):
    """Cyclical cosine learning rate and a saved snapshot at the end of every cycle.

    Args:
        folder: Where ``snapshot-XX`` folders are written.
        config: Number of snapshots, cycle length, final learning rate.
        lr_max: Learning rate at the start of each cycle.
    """

    def __init__(
        self, folder: str | os.PathLike[str], *, config: SnapshotConfig, lr_max: float
    ) -> None:
        if config.n_snapshots < 1 or config.cycle_steps < 1:
            raise ValueError("a snapshot ensemble needs n_snapshots >= 1 and cycle_steps >= 1")
        if config.first_cycle_steps is not None and config.first_cycle_steps < 1:
            raise ValueError("first_cycle_steps must be at least 1 (or None)")
        self.folder = Path(folder)
        self.config = config
        self.lr_max = lr_max
        self.saved: list[str] = []

    def _position(self, step: int) -> tuple[int, float]:
        """``(cycle, fraction of it done)`` of optimizer step ``step`` (0-based)."""
        first = self.config.first_cycle_steps or self.config.cycle_steps
        if step < first:
            return 0, step / first
        cycle, offset = divmod(step - first, self.config.cycle_steps)
        return cycle + 1, offset / self.config.cycle_steps

    def learning_rate(self, step: int) -> float:
        """The cyclical learning rate of optimizer step ``step`` (0-based)."""
        cycle, position = self._position(step)
        start = (
            self.lr_max if cycle == 0 or self.config.restart_lr is None else self.config.restart_lr
        )
        span = start - self.config.lr_min
        return self.config.lr_min + span * 0.5 * (1.0 + math.cos(math.pi * position))

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Set the learning rate of every parameter group for this step."""
        lr = self.learning_rate(trainer.global_step)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Save a snapshot when a cycle has just ended."""
        step = trainer.global_step
        cycle, position = self._position(step)
        if step == 0 or position:
            return
        name = f"snapshot-{cycle:02d}"
        if trainer.is_global_zero:
            model: Any = cast(Any, pl_module).model
            with torch.no_grad():
                model.save_pretrained(self.folder / name)
            while len(self.saved) >= self.config.n_snapshots:
                shutil.rmtree(self.folder / self.saved.pop(0), ignore_errors=True)
        elif len(self.saved) >= self.config.n_snapshots:
            self.saved.pop(0)
        self.saved.append(name)
        trainer.strategy.barrier("snapshot")

    def state_dict(self) -> dict[str, Any]:
        """The snapshots written so far."""
        return {"saved": list(self.saved)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the list of snapshots."""
        self.saved = list(state_dict["saved"])
