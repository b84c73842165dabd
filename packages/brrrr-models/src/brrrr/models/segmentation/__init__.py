"""brrrr.models.segmentation: lesion segmentation and its ISLES'22 evaluation.

Modules:
    metrics: Dice, absolute volume difference (ml), lesion count difference, lesion-wise F1
        (the ISLES'22 rules) and HD95 on masks; ``evaluate_case`` and ``aggregate``.
    evaluate: a folder of predictions against a folder of ground truths (CSV and JSON).
    errors: ``SegmentationError``.
    segmenter: the one interface, ``Segmenter.segment(inputs) -> Segmentation`` (probability
        and mask on the reference input's grid).
    preprocessing: load and check channels, align them by world position, rigid
        registration (SimpleITK), per-channel normalisation, the model grid.
    inference: sliding-window inference (MONAI) with flip test-time augmentation.
    members: MONAI networks (SegResNet, DynUNet, UNet) from a ``NetworkConfig``.
    checkpoints: state dicts, safetensors, TorchScript, ONNX; ``load_segmenter`` and the
        shipped ``load_synthetic_lesion_model`` (trained on synthetic data only).
    nnunet: nnU-Net v2 result folders (extra ``brrrr-models[nnunet]``).
    external: any command that writes a NIfTI mask (DeepISLES, ``nnUNetv2_predict``…).
    ensemble: mean probability, majority vote and STAPLE.
    synthetic: synthetic DWI/ADC/FLAIR stroke cases drawn from a seed.
    sample: the built-in stroke sample (synthetic cases as NIfTI files + ground truth).
    cli: ``brrrr segment evaluate PRED_DIR GT_DIR`` and ``brrrr segment stroke``.

Example:
    >>> import numpy as np
    >>> from brrrr.models.segmentation import dice
    >>> mask = np.ones((2, 2, 2), dtype=bool)
    >>> dice(mask, mask)
    1.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brrrr.models.segmentation.checkpoints import (
        load_network_segmenter,
        load_segmenter,
        load_synthetic_lesion_model,
        save_network,
    )
    from brrrr.models.segmentation.ensemble import (
        EnsembleSegmenter,
        majority_vote,
        mean_probability,
        staple,
    )
    from brrrr.models.segmentation.errors import SegmentationError
    from brrrr.models.segmentation.evaluate import (
        CasePair,
        CaseResult,
        LabelRule,
        evaluate_folder,
        evaluate_pair,
        pair_cases,
        write_csv,
        write_json,
    )
    from brrrr.models.segmentation.external import ExternalCommandSegmenter
    from brrrr.models.segmentation.inference import sliding_window_probabilities
    from brrrr.models.segmentation.members import (
        NetworkConfig,
        NetworkSegmenter,
        build_network,
        load_network_config,
    )
    from brrrr.models.segmentation.metrics import (
        METRIC_NAMES,
        CaseMetrics,
        LesionCounts,
        MetricSummary,
        absolute_volume_difference_ml,
        aggregate,
        dice,
        evaluate_case,
        hd95,
        label_lesions,
        lesion_count_difference,
        lesion_counts,
        lesion_f1,
    )
    from brrrr.models.segmentation.nnunet import NnUNetSegmenter
    from brrrr.models.segmentation.preprocessing import (
        InputLike,
        Normalization,
        RigidRegistration,
        align_to_reference,
        load_inputs,
        model_grid,
        normalize,
        register_rigid,
    )
    from brrrr.models.segmentation.sample import (
        SampleCase,
        StrokeSample,
        find_cases,
        write_stroke_sample,
    )
    from brrrr.models.segmentation.segmenter import Segmentation, Segmenter
    from brrrr.models.segmentation.synthetic import StrokeCase, synthetic_stroke_case

# Imported on first use (PEP 562): `brrrr --help` loads the `segment` command from this
# package and should not pay for scipy until a mask is evaluated.
_LAZY = {
    "SegmentationError": "brrrr.models.segmentation.errors",
    "CasePair": "brrrr.models.segmentation.evaluate",
    "CaseResult": "brrrr.models.segmentation.evaluate",
    "LabelRule": "brrrr.models.segmentation.evaluate",
    "evaluate_folder": "brrrr.models.segmentation.evaluate",
    "evaluate_pair": "brrrr.models.segmentation.evaluate",
    "pair_cases": "brrrr.models.segmentation.evaluate",
    "write_csv": "brrrr.models.segmentation.evaluate",
    "write_json": "brrrr.models.segmentation.evaluate",
    "METRIC_NAMES": "brrrr.models.segmentation.metrics",
    "CaseMetrics": "brrrr.models.segmentation.metrics",
    "LesionCounts": "brrrr.models.segmentation.metrics",
    "MetricSummary": "brrrr.models.segmentation.metrics",
    "absolute_volume_difference_ml": "brrrr.models.segmentation.metrics",
    "aggregate": "brrrr.models.segmentation.metrics",
    "dice": "brrrr.models.segmentation.metrics",
    "evaluate_case": "brrrr.models.segmentation.metrics",
    "hd95": "brrrr.models.segmentation.metrics",
    "label_lesions": "brrrr.models.segmentation.metrics",
    "lesion_count_difference": "brrrr.models.segmentation.metrics",
    "lesion_counts": "brrrr.models.segmentation.metrics",
    "lesion_f1": "brrrr.models.segmentation.metrics",
    "Segmentation": "brrrr.models.segmentation.segmenter",
    "Segmenter": "brrrr.models.segmentation.segmenter",
    "InputLike": "brrrr.models.segmentation.preprocessing",
    "Normalization": "brrrr.models.segmentation.preprocessing",
    "RigidRegistration": "brrrr.models.segmentation.preprocessing",
    "align_to_reference": "brrrr.models.segmentation.preprocessing",
    "load_inputs": "brrrr.models.segmentation.preprocessing",
    "model_grid": "brrrr.models.segmentation.preprocessing",
    "normalize": "brrrr.models.segmentation.preprocessing",
    "register_rigid": "brrrr.models.segmentation.preprocessing",
    "sliding_window_probabilities": "brrrr.models.segmentation.inference",
    "NetworkConfig": "brrrr.models.segmentation.members",
    "NetworkSegmenter": "brrrr.models.segmentation.members",
    "build_network": "brrrr.models.segmentation.members",
    "load_network_config": "brrrr.models.segmentation.members",
    "load_network_segmenter": "brrrr.models.segmentation.checkpoints",
    "load_segmenter": "brrrr.models.segmentation.checkpoints",
    "load_synthetic_lesion_model": "brrrr.models.segmentation.checkpoints",
    "save_network": "brrrr.models.segmentation.checkpoints",
    "NnUNetSegmenter": "brrrr.models.segmentation.nnunet",
    "ExternalCommandSegmenter": "brrrr.models.segmentation.external",
    "EnsembleSegmenter": "brrrr.models.segmentation.ensemble",
    "majority_vote": "brrrr.models.segmentation.ensemble",
    "mean_probability": "brrrr.models.segmentation.ensemble",
    "staple": "brrrr.models.segmentation.ensemble",
    "StrokeCase": "brrrr.models.segmentation.synthetic",
    "synthetic_stroke_case": "brrrr.models.segmentation.synthetic",
    "SampleCase": "brrrr.models.segmentation.sample",
    "StrokeSample": "brrrr.models.segmentation.sample",
    "find_cases": "brrrr.models.segmentation.sample",
    "write_stroke_sample": "brrrr.models.segmentation.sample",
}

__all__ = [
    "METRIC_NAMES",
    "CaseMetrics",
    "CasePair",
    "CaseResult",
    "EnsembleSegmenter",
    "ExternalCommandSegmenter",
    "InputLike",
    "LabelRule",
    "LesionCounts",
    "MetricSummary",
    "NetworkConfig",
    "NetworkSegmenter",
    "NnUNetSegmenter",
    "Normalization",
    "RigidRegistration",
    "SampleCase",
    "Segmentation",
    "SegmentationError",
    "Segmenter",
    "StrokeCase",
    "StrokeSample",
    "absolute_volume_difference_ml",
    "aggregate",
    "align_to_reference",
    "build_network",
    "dice",
    "evaluate_case",
    "evaluate_folder",
    "evaluate_pair",
    "find_cases",
    "hd95",
    "label_lesions",
    "lesion_count_difference",
    "lesion_counts",
    "lesion_f1",
    "load_inputs",
    "load_network_config",
    "load_network_segmenter",
    "load_segmenter",
    "load_synthetic_lesion_model",
    "majority_vote",
    "mean_probability",
    "model_grid",
    "normalize",
    "pair_cases",
    "register_rigid",
    "save_network",
    "sliding_window_probabilities",
    "staple",
    "synthetic_stroke_case",
    "write_csv",
    "write_json",
    "write_stroke_sample",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'brrrr.models.segmentation' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
