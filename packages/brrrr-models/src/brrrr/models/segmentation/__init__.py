"""brrrr.models.segmentation: lesion segmentation and its ISLES'22 evaluation.

Modules:
    metrics: Dice, absolute volume difference (ml), lesion count difference, lesion-wise F1
        (the ISLES'22 rules) and HD95 on masks; ``evaluate_case`` and ``aggregate``.
    evaluate: a folder of predictions against a folder of ground truths (CSV and JSON).
    errors: ``SegmentationError``.
    cli: ``brrrr segment evaluate PRED_DIR GT_DIR``.

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
}

__all__ = [
    "METRIC_NAMES",
    "CaseMetrics",
    "CasePair",
    "CaseResult",
    "LabelRule",
    "LesionCounts",
    "MetricSummary",
    "SegmentationError",
    "absolute_volume_difference_ml",
    "aggregate",
    "dice",
    "evaluate_case",
    "evaluate_folder",
    "evaluate_pair",
    "hd95",
    "label_lesions",
    "lesion_count_difference",
    "lesion_counts",
    "lesion_f1",
    "pair_cases",
    "write_csv",
    "write_json",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'brrrr.models.segmentation' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
