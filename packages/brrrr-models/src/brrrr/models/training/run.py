"""One training run from a :class:`~brrrr.models.training.config.RunConfig`: data, module,
callbacks, trainer, fit (resuming from ``checkpoints/last.ckpt`` when present), and the outputs.

Output folder::

    run.json                  the resolved configuration
    map-cache/ | point-clouds/  the data cache (unless ``data.cache_dir`` points elsewhere)
    checkpoints/              step-XXXXXX.ckpt and last.ckpt (resume from here)
    logs/version_N/           metrics.csv, hparams.yaml   (tensorboard/ when installed)
    snapshots/snapshot-XX/    snapshot-ensemble members (save_pretrained folders)
    model/                    the final network (save_pretrained) + template.json + metadata.json

Example:
    >>> result = train("vae", load_run_config("configs/atlas_vae.yaml"))  # doctest: +SKIP
    >>> result.model_dir  # doctest: +SKIP
    PosixPath('runs/atlas-vae/model')
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch

from brrrr.models.errors import ModelConfigError
from brrrr.models.nets import BetaVAE
from brrrr.models.training.callbacks import KLController, SnapshotEnsemble
from brrrr.models.training.config import RunConfig
from brrrr.models.training.datamodules import MapDataModule, PointCloudDataModule
from brrrr.models.training.modules import (
    BetaVAEModule,
    HierarchicalVAEModule,
    PointVAEModule,
    VAEModule,
)
from brrrr.models.training.sources import (
    coarsen_template,
    kernel_from_spec,
    load_peaks,
    select_studies,
)
from brrrr.models.training.splits import SplitConfig
from brrrr.models.training.trainer import build_trainer
from brrrr.preprocess.kernels import CachedMaps, MapCache, PeakTable

__all__ = [
    "ModelKind",
    "TrainResult",
    "build_datamodule",
    "build_map_cache",
    "build_module",
    "map_cache_dir",
    "set_reference_maps",
    "train",
]

ModelKind = Literal["vae", "hvae", "pointvae"]
_MODULES: dict[str, Callable[..., VAEModule]] = {
    "vae": BetaVAEModule,
    "hvae": HierarchicalVAEModule,
    "pointvae": PointVAEModule,
}


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        output_dir: The run folder.
        model_dir: The final network's ``save_pretrained`` folder.
        module: The trained LightningModule.
        datamodule: Its DataModule.
        trainer: The trainer (``trainer.callback_metrics`` holds the last logged values).
        snapshots: Snapshot-ensemble folders, oldest first.
    """

    output_dir: Path
    model_dir: Path
    module: VAEModule
    datamodule: MapDataModule | PointCloudDataModule
    trainer: L.Trainer
    snapshots: list[Path]


def _template(config: RunConfig) -> Any:
    from brrrr.preprocess.kernels import Template

    return coarsen_template(Template.mni152(resolution_mm=2), factor=config.data.downsample)


def build_datamodule(
    kind: ModelKind, config: RunConfig, *, nuisance: tuple[str, ...] = ()
) -> MapDataModule | PointCloudDataModule:
    """The DataModule of a run (builds the map cache or point clouds when missing)."""
    data = config.data
    split = SplitConfig(data.val_fraction, data.test_fraction, data.split_seed)
    common: dict[str, Any] = {
        "split": split,
        "metadata": data.metadata,
        "nuisance": nuisance,
        "batch_size": data.batch_size,
        "num_workers": data.num_workers,
        "seed": config.trainer.seed,
    }
    source = Path(data.source)
    if kind == "pointvae" and (source / "studies.json").exists():
        return PointCloudDataModule.from_folder(source, **common)
    peaks, groups = _run_peaks(config)
    if kind == "pointvae":
        from brrrr.preprocess.pointclouds import save_point_clouds, to_point_clouds

        clouds = to_point_clouds(peaks, n_points=data.n_points, seed=config.trainer.seed)
        save_point_clouds(clouds, Path(data.cache_dir or Path(config.output_dir) / "point-clouds"))
        return PointCloudDataModule(clouds, groups=groups, **common)
    return MapDataModule.from_peaks(
        peaks,
        groups=groups,
        cache_dir=map_cache_dir(config),
        kernel=kernel_from_spec(data.kernel),
        template=_template(config),
        **common,
    )


def _run_peaks(config: RunConfig) -> tuple[PeakTable, np.ndarray]:
    """The run's studies: its source, cut to ``max_studies`` when set."""
    data = config.data
    peaks, groups = load_peaks(data.source)
    rows = select_studies(groups, max_studies=data.max_studies, seed=data.split_seed + 1)
    return peaks.select(rows), groups[rows]


def map_cache_dir(config: RunConfig) -> Path:
    """Where a run keeps its kernel maps: ``data.cache_dir``, else ``<output_dir>/map-cache``."""
    return Path(config.data.cache_dir or Path(config.output_dir) / "map-cache")


def build_map_cache(
    config: RunConfig,
    *,
    shard_index: int | None = None,
    num_shards: int | None = None,
    scheduler: str | None = None,
    cluster_spec: str | os.PathLike[str] | None = None,
    merge: bool = False,
    progress: bool = False,
) -> CachedMaps | None:
    """Compute the kernel maps a map-model run trains on, before (or apart from) training.

    The same studies, kernel and grid as :func:`train` uses, into :func:`map_cache_dir`, so a
    later ``train`` finds every map and computes none. The work can be split: one share of a
    SLURM array (``shard_index``/``num_shards``; the share that sees every share finished
    merges the manifest), Dask tasks (``scheduler``/``cluster_spec``), or only the merge of
    finished shares (``merge``).

    Args:
        config: The run (its ``data`` section; ``output_dir`` when ``data.cache_dir`` is unset).
        shard_index, num_shards: This share of a sharded build.
        scheduler: A Dask scheduler address or ``"local:N"``.
        cluster_spec: A ``dask-jobqueue`` cluster spec (YAML file).
        merge: Only merge the share manifests of a finished sharded build.
        progress: Show a progress bar.

    Returns:
        Every study's maps, or ``None`` for a share while other shares are still to come.

    Raises:
        ModelConfigError: A point-cloud source (its runs have no maps).
        DistributedError: Bad shard arguments, both a scheduler and a cluster spec, or a task
            that killed its workers.
    """
    if Path(config.data.source, "studies.json").exists():
        raise ModelConfigError(
            "a point-cloud folder has no kernel maps to cache", path=config.data.source
        )
    from brrrr.core.distributed import run_mode

    cache = MapCache(map_cache_dir(config))
    if merge:
        cache.merge_shares(num_shards=num_shards)
    peaks, _ = _run_peaks(config)
    kernel, template = kernel_from_spec(config.data.kernel), _template(config)
    if merge:
        return cache.lookup(peaks, kernel=kernel, template=template)
    mode = run_mode(
        shard_index=shard_index,
        num_shards=num_shards,
        scheduler=scheduler,
        cluster_spec=cluster_spec,
    )
    if mode == "share":
        assert shard_index is not None
        assert num_shards is not None
        return cache.build_share(
            peaks,
            shard_index=shard_index,
            num_shards=num_shards,
            kernel=kernel,
            template=template,
            progress=progress,
        )
    return cache.build(
        peaks,
        kernel=kernel,
        template=template,
        progress=progress,
        scheduler=scheduler,
        cluster_spec=cluster_spec,
    )


def build_module(
    kind: ModelKind, config: RunConfig, datamodule: MapDataModule | PointCloudDataModule
) -> VAEModule:
    """The LightningModule of a run; ``grid_shape``/``n_points``/``metadata_dim`` from the data.

    Raises:
        ModelConfigError: The run's ``module`` section names a setting the module does not take.
    """
    _check_module_settings(kind, config.module)
    model = dict(config.model)
    model.setdefault("metadata_dim", datamodule.metadata_dim)
    kwargs: dict[str, Any] = {"optim": config.optim, **config.module}
    if isinstance(datamodule, MapDataModule):
        model.setdefault("grid_shape", list(datamodule.template.shape))
        mask = datamodule.template.mask
        if mask is not None:
            kwargs["voxel_mask"] = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[
                None, None
            ]
    module = _MODULES[kind](model, **kwargs)
    if (
        isinstance(module, BetaVAEModule)
        and module.model.config.reference_maps
        and isinstance(datamodule, MapDataModule)
    ):
        set_reference_maps(module.model, datamodule)
    return module


def _check_module_settings(kind: ModelKind, settings: Mapping[str, Any]) -> None:
    parameters = inspect.signature(_MODULES[kind]).parameters
    known = sorted(set(parameters) - {"model", "optim", "voxel_mask"})
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ModelConfigError(
            f"the {kind!r} module has no setting(s) {unknown} (run-file section 'module'); "
            f"it takes {known}"
        )


def set_reference_maps(
    model: BetaVAE, datamodule: MapDataModule, *, min_variance_ratio: float = 0.01
) -> None:
    """Make ``model`` decode departures from the training split's voxel-wise mean and variance.

    The variance is floored at ``min_variance_ratio`` times its average over the brain mask:
    voxels that no training map touches would otherwise start with a variance of zero.

    Args:
        model: A ``BetaVAE`` built with ``reference_maps=True``.
        datamodule: Its data; only the training split is read.
        min_variance_ratio: Floor of the reference variance, relative to the mean variance.
    """
    mean, variance = datamodule.voxel_statistics("train")
    mask = datamodule.template.mask
    inside = variance[:, mask] if mask is not None else variance
    floor = min_variance_ratio * float(inside.mean()) or 1e-6
    logvar = np.log(np.maximum(variance, floor))
    model.set_reference(torch.from_numpy(mean)[None], logvar=torch.from_numpy(logvar)[None])


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))


def train(
    kind: ModelKind,
    config: RunConfig,
    *,
    resume: bool = True,
    callbacks: tuple[L.Callback, ...] = (),
    datamodule: MapDataModule | PointCloudDataModule | None = None,
    **trainer_overrides: Any,
) -> TrainResult:
    """Train one model as ``config`` says.

    Args:
        kind: ``"vae"``, ``"hvae"`` or ``"pointvae"``.
        config: The run configuration.
        resume: Continue from ``<output_dir>/checkpoints/last.ckpt`` when it exists.
        callbacks: Extra callbacks.
        datamodule: Use this DataModule instead of building one from ``config.data``.
        **trainer_overrides: Passed to ``lightning.Trainer``.

    Returns:
        The :class:`TrainResult`.
    """
    if kind not in _MODULES:
        raise ValueError(f"kind must be one of {sorted(_MODULES)}, got {kind!r}")
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    _write_json(output / "run.json", {"kind": kind, **dataclasses.asdict(config)})
    nuisance = ("year",) if int(config.model.get("nuisance_dim", 0)) > 0 else ()
    if datamodule is None:
        datamodule = build_datamodule(kind, config, nuisance=nuisance)
    module = build_module(kind, config, datamodule)
    extra: list[L.Callback] = list(callbacks)
    if config.kl is not None:
        extra.append(KLController(config.kl))
    snapshot = None
    if config.snapshots.n_snapshots > 0:
        snapshot = SnapshotEnsemble(
            output / "snapshots", config=config.snapshots, lr_max=config.optim.lr
        )
        extra.append(snapshot)
    trainer = build_trainer(config.trainer, output_dir=output, callbacks=extra, **trainer_overrides)
    last = output / "checkpoints" / "last.ckpt"
    trainer.fit(
        module, datamodule=datamodule, ckpt_path=str(last) if resume and last.exists() else None
    )
    model_dir = output / "model"
    if trainer.is_global_zero:
        module.model.save_pretrained(model_dir)  # type: ignore[operator]
        if isinstance(datamodule, MapDataModule):
            tpl = datamodule.template
            _write_json(
                model_dir / "template.json",
                # The file name only: a template's path is where this machine keeps it.
                {
                    "affine": tpl.affine.tolist(),
                    "shape": list(tpl.shape),
                    "name": os.path.basename(tpl.name),
                },
            )
        if datamodule.metadata is not None:
            _write_json(model_dir / "metadata.json", datamodule.metadata.to_dict())
    snapshots = [] if snapshot is None else [output / "snapshots" / s for s in snapshot.saved]
    return TrainResult(output, model_dir, module, datamodule, trainer, snapshots)
