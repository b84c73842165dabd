"""brrrr.models.segmentation.vessels: vessel segmentation of two-photon microscopy volumes.

Modules:
    synthetic: two-photon-like vessel volumes drawn from a seed, written in the MiniVess layout.
    metrics: Dice, clDice (3-D skeletons) and Betti-0/1 errors (26/6 connectivity).
    data: the MiniVess layout through the microscopy preparation (µm voxel sizes, memory
        budget), random patches, a Lightning DataModule (extra ``brrrr-models[lightning]``).
    training: a MONAI UNet/SegResNet trained with Lightning; the run folder.
    evaluate: sliding-window evaluation of a run on a folder and on its drifted copies.
    cli: ``brrrr train vessels``, ``brrrr segment vessels-evaluate``, ``brrrr segment vessels-sample``.

Names are imported on first use, so ``import brrrr.models.segmentation.vessels`` loads neither
torch nor Lightning.

Example:
    >>> import numpy as np
    >>> from brrrr.models.segmentation.vessels import betti_numbers
    >>> betti_numbers(np.ones((2, 2, 2), dtype=bool))
    (1, 0, 0)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brrrr.models.segmentation.vessels.data import (
        PreparedVessel,
        VesselDataModule,
        VesselPatchDataset,
        check_vessel_pairs,
        prepare_vessel_volumes,
        split_volumes,
    )
    from brrrr.models.segmentation.vessels.evaluate import (
        DRIFT_KINDS,
        DriftRow,
        VesselEvaluation,
        drift_table_markdown,
        evaluate_vessel_drift,
        evaluate_vessels,
        load_vessel_model,
    )
    from brrrr.models.segmentation.vessels.metrics import (
        VESSEL_METRIC_NAMES,
        VesselMetrics,
        aggregate_vessel_metrics,
        betti_errors,
        betti_numbers,
        cldice,
        dice,
        euler_characteristic,
        skeleton,
        vessel_metrics,
    )
    from brrrr.models.segmentation.vessels.synthetic import (
        MINIVESS_SPACINGS_UM,
        SyntheticVesselVolume,
        synthetic_vessel_volume,
        write_synthetic_vessels,
    )
    from brrrr.models.segmentation.vessels.training import (
        VesselSegmentationModule,
        VesselTrainResult,
        predict_mask,
        train_vessels,
        vessel_network_config,
    )

_HOMES = {
    "data": (
        "PreparedVessel",
        "VesselDataModule",
        "VesselPatchDataset",
        "check_vessel_pairs",
        "prepare_vessel_volumes",
        "split_volumes",
    ),
    "evaluate": (
        "DRIFT_KINDS",
        "DriftRow",
        "VesselEvaluation",
        "drift_table_markdown",
        "evaluate_vessel_drift",
        "evaluate_vessels",
        "load_vessel_model",
    ),
    "metrics": (
        "VESSEL_METRIC_NAMES",
        "VesselMetrics",
        "aggregate_vessel_metrics",
        "betti_errors",
        "betti_numbers",
        "cldice",
        "dice",
        "euler_characteristic",
        "skeleton",
        "vessel_metrics",
    ),
    "synthetic": (
        "MINIVESS_SPACINGS_UM",
        "SyntheticVesselVolume",
        "synthetic_vessel_volume",
        "write_synthetic_vessels",
    ),
    "training": (
        "VesselSegmentationModule",
        "VesselTrainResult",
        "predict_mask",
        "train_vessels",
        "vessel_network_config",
    ),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "DRIFT_KINDS",
    "MINIVESS_SPACINGS_UM",
    "VESSEL_METRIC_NAMES",
    "DriftRow",
    "PreparedVessel",
    "SyntheticVesselVolume",
    "VesselDataModule",
    "VesselEvaluation",
    "VesselMetrics",
    "VesselPatchDataset",
    "VesselSegmentationModule",
    "VesselTrainResult",
    "aggregate_vessel_metrics",
    "betti_errors",
    "betti_numbers",
    "check_vessel_pairs",
    "cldice",
    "dice",
    "drift_table_markdown",
    "euler_characteristic",
    "evaluate_vessel_drift",
    "evaluate_vessels",
    "load_vessel_model",
    "predict_mask",
    "prepare_vessel_volumes",
    "skeleton",
    "split_volumes",
    "synthetic_vessel_volume",
    "train_vessels",
    "vessel_metrics",
    "vessel_network_config",
    "write_synthetic_vessels",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
