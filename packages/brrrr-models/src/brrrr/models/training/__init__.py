"""Training with Lightning (extra ``brrrr-models[lightning]``).

Modules:
    config: run-file dataclasses (``OptimConfig``, ``KLConfig``, ``SnapshotConfig``,
        ``TrainerConfig``, ``DataConfig``, ``RunConfig``) and ``load_run_config``.
    splits: study-level splits that never leak (``study_split``).
    sources: peak sources (NiMARE studysets, CSV tables), kernels, coarsened templates.
    data: datasets over map caches and point clouds, metadata, the resumable loader.
    datamodules: ``MapDataModule``, ``PointCloudDataModule``.
    modules: ``BetaVAEModule``, ``HierarchicalVAEModule``, ``PointVAEModule``.
    callbacks: ``KLController`` (β schedules, target-KL PI controller), ``SnapshotEnsemble``.
    trainer: ``build_trainer`` (precision from the accelerator, checkpoints, CSV/TensorBoard).
    run: ``train(kind, config)``: one run from a configuration; ``build_map_cache`` (the maps
        alone, shardable).
    assess: ``evaluate_run``: the atlas metrics of a finished run on its held-out split.
"""

from brrrr.core.errors import MissingDependencyError

try:
    import lightning  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        'training needs Lightning: pip install "brrrr-models[lightning]"'
    ) from None

from brrrr.models.training.assess import RunEvaluation, evaluate_run
from brrrr.models.training.callbacks import KLController, SnapshotEnsemble, kl_schedule
from brrrr.models.training.config import (
    DataConfig,
    KLConfig,
    OptimConfig,
    RunConfig,
    SnapshotConfig,
    TrainerConfig,
    load_run_config,
    run_config_from_dict,
)
from brrrr.models.training.data import (
    MapDataset,
    MetadataTable,
    PointCloudDataset,
    ResumableDataLoader,
    metadata_table,
)
from brrrr.models.training.datamodules import MapDataModule, PointCloudDataModule
from brrrr.models.training.modules import (
    BetaVAEModule,
    HierarchicalVAEModule,
    PointVAEModule,
    VAEModule,
)
from brrrr.models.training.run import (
    TrainResult,
    build_datamodule,
    build_map_cache,
    build_module,
    map_cache_dir,
    set_reference_maps,
    train,
)
from brrrr.models.training.sources import (
    coarsen_template,
    kernel_from_spec,
    load_peaks,
    select_studies,
)
from brrrr.models.training.splits import SplitConfig, study_split
from brrrr.models.training.trainer import build_trainer, resolve_accelerator, resolve_precision

__all__ = [
    "BetaVAEModule",
    "DataConfig",
    "HierarchicalVAEModule",
    "KLConfig",
    "KLController",
    "MapDataModule",
    "MapDataset",
    "MetadataTable",
    "OptimConfig",
    "PointCloudDataModule",
    "PointCloudDataset",
    "PointVAEModule",
    "ResumableDataLoader",
    "RunConfig",
    "RunEvaluation",
    "SnapshotConfig",
    "SnapshotEnsemble",
    "SplitConfig",
    "TrainResult",
    "TrainerConfig",
    "VAEModule",
    "build_datamodule",
    "build_map_cache",
    "build_module",
    "build_trainer",
    "coarsen_template",
    "evaluate_run",
    "kernel_from_spec",
    "kl_schedule",
    "load_peaks",
    "load_run_config",
    "map_cache_dir",
    "metadata_table",
    "resolve_accelerator",
    "resolve_precision",
    "run_config_from_dict",
    "select_studies",
    "set_reference_maps",
    "study_split",
    "train",
]
