"""Configuration dataclasses of a training run, and reading one from a YAML or JSON file.

A run file has one section per dataclass; every key is optional::

    model:     {latent_dim: 16, channels: [8, 16, 32], dilations: [1, 2]}   # the model's config
    module:    {beta: 1.0, hold_out_rate: 0.2}       # loss weights of the LightningModule
    data:      {source: "nimare:nback_vs_flanker", downsample: 4, batch_size: 16}
    optim:     {lr: 0.001, weight_decay: 0.0001}
    kl:        {mode: linear, beta: 1.0, warmup_steps: 200}
    snapshots: {n_snapshots: 4, cycle_steps: 50}
    trainer:   {max_steps: 200, seed: 0, accelerator: auto}
    output_dir: runs/atlas-vae

Example:
    >>> config = run_config_from_dict({"trainer": {"max_steps": 5}, "kl": {"mode": "constant"}})
    >>> config.trainer.max_steps, config.optim.betas
    (5, (0.9, 0.995))
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from brrrr.models.config import config_from_dict
from brrrr.models.errors import ModelConfigError

__all__ = [
    "DataConfig",
    "KLConfig",
    "OptimConfig",
    "RunConfig",
    "SnapshotConfig",
    "TrainerConfig",
    "load_run_config",
    "run_config_from_dict",
]


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and its learning-rate schedule.

    Attributes:
        lr: Peak learning rate.
        weight_decay: Decoupled weight decay (not applied to biases and norm scales).
        betas: Adam betas; ``β₂ = 0.995`` forgets squared gradients faster than 0.999, which
            suits the changing loss scale of a KL-annealed VAE.
        eps: Adam epsilon.
        warmup_steps: Linear warm-up from 0.
        schedule: ``"constant"`` after warm-up, or ``"cosine"`` decay to
            ``min_lr_ratio * lr`` at ``total_steps`` (default: the trainer's ``max_steps``).
        min_lr_ratio: Final learning rate of the cosine schedule, relative to ``lr``.
        total_steps: Horizon of the cosine schedule.
    """

    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.995)
    eps: float = 1e-8
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.1
    total_steps: int | None = None

    def __post_init__(self) -> None:
        if self.schedule not in ("constant", "cosine"):
            raise ModelConfigError(f"schedule must be constant or cosine, got {self.schedule!r}")


@dataclass(frozen=True)
class KLConfig:
    """The KL weight β over training (see :class:`~brrrr.models.training.KLController`).

    Attributes:
        mode: ``"constant"``; ``"linear"`` warm-up from ``beta_start`` to ``beta`` over
            ``warmup_steps``; ``"cyclical"`` (Fu et al. 2019) repeats that ramp every
            ``warmup_steps`` steps, holding ``beta`` for the second half of each cycle;
            ``"target"``: a PI controller moves β so that the KL approaches ``target_kl``.
        beta: Final (or constant, or initial for ``"target"``) β.
        beta_start: β at step 0 of a ramp.
        warmup_steps: Ramp length (cycle length for ``"cyclical"``).
        target_kl: KL per sample (nats) the controller aims at.
        kp: Proportional gain, on the relative KL error, in log β.
        ki: Integral gain.
        beta_min: Lower bound of the controlled β.
        beta_max: Upper bound of the controlled β.
    """

    mode: Literal["constant", "linear", "cyclical", "target"] = "linear"
    beta: float = 1.0
    beta_start: float = 0.0
    warmup_steps: int = 1000
    target_kl: float | None = None
    kp: float = 0.5
    ki: float = 0.05
    beta_min: float = 1e-4
    beta_max: float = 100.0

    def __post_init__(self) -> None:
        if self.mode not in ("constant", "linear", "cyclical", "target"):
            raise ModelConfigError(f"unknown KL mode {self.mode!r}")
        if self.mode == "target" and (self.target_kl is None or self.target_kl <= 0):
            raise ModelConfigError("mode='target' needs a positive target_kl (nats per sample)")
        if self.mode in ("linear", "cyclical") and self.warmup_steps < 1:
            raise ModelConfigError("warmup_steps must be at least 1")


@dataclass(frozen=True)
class SnapshotConfig:
    """Snapshot ensemble: K models from one run with a cyclical (cosine) learning rate.

    Attributes:
        n_snapshots: Snapshots kept (0: off). A run of ``K * cycle_steps`` steps gives K.
        cycle_steps: Steps per learning-rate cycle; a snapshot is saved at each cycle's end.
        lr_min: Learning rate at the end of a cycle (the start is ``OptimConfig.lr``).
        first_cycle_steps: Length of the first cycle (``None``: ``cycle_steps``). A long first
            cycle trains the model; the short ones after it only spread the snapshots, so
            a run of ``first + (K − 1) * cycle_steps`` steps gives K.
        restart_lr: Learning rate at the start of every cycle after the first (``None``: the
            first cycle's, ``OptimConfig.lr``); lower restarts explore around the trained model
            instead of leaving it (cf. fast geometric ensembling, Garipov et al. 2018).
    """

    n_snapshots: int = 0
    cycle_steps: int = 100
    lr_min: float = 0.0
    first_cycle_steps: int | None = None
    restart_lr: float | None = None


@dataclass(frozen=True)
class TrainerConfig:
    """Lightning ``Trainer`` settings (see :func:`~brrrr.models.training.build_trainer`).

    Attributes:
        max_steps: Optimizer steps (-1: bounded by ``max_epochs``).
        max_epochs: Epochs, or ``None``.
        seed: Seed of weights, sampling and data order.
        accelerator: ``"auto"``, ``"cpu"``, ``"gpu"``/``"cuda"``.
        devices: Devices (processes) per node, or ``"auto"``.
        strategy: ``"auto"``, ``"ddp"`` (gloo on CPU, NCCL on GPU), ...
        precision: ``None`` picks from the accelerator: ``"bf16-mixed"`` on GPUs that have
            bf16, ``"16-mixed"`` on older GPUs, ``"32-true"`` on CPU.
        deterministic: ``True`` (error on non-deterministic ops), ``"warn"`` or ``False``.
        checkpoint_every_n_steps: Mid-epoch checkpoints (``last.ckpt`` is kept up to date).
        val_every_n_steps: Validation interval in steps (``None``: once per epoch).
        log_every_n_steps: Logging interval.
        gradient_clip_val: Gradient-norm clip, or ``None``.
        tensorboard: Also log to TensorBoard when it is installed.
        progress_bar: Show Lightning's progress bar.
    """

    max_steps: int = 1000
    max_epochs: int | None = None
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str | None = None
    deterministic: bool | Literal["warn"] = False
    checkpoint_every_n_steps: int = 100
    val_every_n_steps: int | None = None
    log_every_n_steps: int = 10
    gradient_clip_val: float | None = 1.0
    tensorboard: bool = True
    progress_bar: bool = True


@dataclass(frozen=True)
class DataConfig:
    """Where the studies come from and how they become batches.

    Attributes:
        source: ``"nimare:nback_vs_flanker"`` (NiMARE's shipped studyset), a NiMARE studyset
            folder or dataset ``.json``, a peak table ``.csv``/``.tsv`` (columns ``id``, ``x``,
            ``y``, ``z``; optional ``study_id``, ``year``, ``sample_size``), or a point-cloud
            folder written by ``brrrr.preprocess.pointclouds.save_point_clouds``.
        kernel: Kernel of the maps: ``{"name": "gaussian" | "mkda" | "kda" | "ale", ...}``
            plus its arguments (e.g. ``fwhm_mm``, ``radius_mm``).
        downsample: Integer factor coarsening the 2 mm MNI152 grid (4: 8 mm, 23×28×23).
        cache_dir: Map cache folder (default: ``<output_dir>/map-cache``).
        n_points: Points per cloud (PointNet++ VAE).
        metadata: Study facts fed to the model, from ``"year"``, ``"sample_size"``,
            ``"n_peaks"``; standardised with training-split statistics, NaN where unknown.
        max_studies: Keep this many studies (ranked by a seeded hash), for quick runs.
        batch_size: Most analyses per batch (a study's analyses stay in one batch).
        num_workers: DataLoader worker processes.
        val_fraction: Share of studies for validation.
        test_fraction: Share of studies for the test split.
        split_seed: Seed of the study split.
    """

    source: str = "nimare:nback_vs_flanker"
    kernel: Mapping[str, Any] = field(default_factory=lambda: {"name": "gaussian", "fwhm_mm": 12.0})
    downsample: int = 1
    cache_dir: str | None = None
    n_points: int = 64
    metadata: tuple[str, ...] = ("year", "sample_size", "n_peaks")
    max_studies: int | None = None
    batch_size: int = 16
    num_workers: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs (the sections of a run file).

    Attributes:
        model: Fields of the model's config dataclass (``grid_shape`` and ``metadata_dim``
            are filled in from the data when absent).
        module: Keyword arguments of the LightningModule (loss weights).
        data: Data settings.
        optim: Optimizer settings.
        kl: KL-weight schedule, or ``None`` for the module's constant ``beta``.
        snapshots: Snapshot-ensemble settings.
        trainer: Trainer settings.
        output_dir: Folder for checkpoints, logs, the final model and metrics.
    """

    model: Mapping[str, Any] = field(default_factory=dict)
    module: Mapping[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    kl: KLConfig | None = field(default_factory=KLConfig)
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    output_dir: str = "runs/brrrr"


_SECTIONS: dict[str, type[Any]] = {
    "data": DataConfig,
    "optim": OptimConfig,
    "kl": KLConfig,
    "snapshots": SnapshotConfig,
    "trainer": TrainerConfig,
}


def run_config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """Build a :class:`RunConfig` from nested mappings (lists become tuples).

    Raises:
        ModelConfigError: Unknown sections or keys, or values a dataclass rejects.
    """
    unknown = sorted(set(data) - {"model", "module", "output_dir", *_SECTIONS})
    if unknown:
        raise ModelConfigError(f"unknown run-file section(s) {unknown}")
    values: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        if name in data:
            section = data[name]
            values[name] = None if section is None else config_from_dict(cls, section or {})
    for name in ("model", "module"):
        values[name] = dict(data.get(name) or {})
    if "output_dir" in data:
        values["output_dir"] = str(data["output_dir"])
    return RunConfig(**values)


def load_run_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read a run file (``.yaml``/``.yml`` or ``.json``).

    Raises:
        ModelConfigError: Unreadable file, unknown extension, or invalid contents.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ModelConfigError(f"cannot read the run file: {exc}", path=path) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    elif path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        raise ModelConfigError("a run file is .yaml, .yml or .json", path=path)
    if not isinstance(data, Mapping):
        raise ModelConfigError("a run file holds a mapping of sections", path=path)
    try:
        return run_config_from_dict(data)
    except ModelConfigError as exc:
        raise ModelConfigError(exc.message, path=path) from None
