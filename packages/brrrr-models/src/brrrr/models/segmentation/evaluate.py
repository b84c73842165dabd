"""Evaluate a folder of predicted lesion masks against a folder of ground-truth masks.

Pairing rule: each ``.nii`` or ``.nii.gz`` file directly in a folder (hidden files skipped)
is one case; its case id is the file name without the extension and without one trailing
``_pred`` or ``_mask`` (letter case ignored), the same rule in both folders. So
``case_01_pred.nii.gz``, ``case_01_mask.nii`` and ``case_01.nii.gz`` are all case
``case_01``. Every prediction needs a ground truth and every ground truth a prediction, as in
the official evaluation (which refuses missing and extra predictions); two files of one
folder with the same case id are an error too.

Each pair must be on one grid: the same shape and affines equal within 1e-4 mm. Nothing is
resampled; resample the predictions first (``brrrr.core`` ``Volume.resample``). The voxel
size comes from the ground-truth affine. Masks hold 0 and 1 only unless
``labels="positive"`` makes every value > 0 lesion; NaN voxels are always an error.

Example:
    >>> results, summary = evaluate_folder("preds/", "labels/")  # doctest: +SKIP
    >>> summary["dice"].mean  # doctest: +SKIP
    0.81
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.metrics import (
    CaseMetrics,
    MetricSummary,
    aggregate,
    evaluate_case,
)

if TYPE_CHECKING:
    from brrrr.core import Volume

__all__ = [
    "CasePair",
    "CaseResult",
    "LabelRule",
    "evaluate_folder",
    "evaluate_pair",
    "pair_cases",
    "write_csv",
    "write_json",
]

#: How mask values become lesion: ``"binary"`` accepts only 0 and 1; ``"positive"`` makes
#: every value > 0 lesion (label maps, probabilities already thresholded to labels…).
LabelRule = Literal["binary", "positive"]

_EXTENSIONS = (".nii.gz", ".nii")
_ROLE_SUFFIXES = ("_pred", "_mask")
_AFFINE_ATOL_MM = 1e-4
_RULES = (
    "ISLES'22 (github.com/ezequieldlrosa/isles22 utils/eval_utils.py): Dice and lesion F1 "
    "are 1 when both masks are empty; lesions are 26-connected components; volumes in ml "
    "are voxel counts times prod(spacing_mm)/1000; aggregates leave NaN out (count = values "
    "kept). HD95 (not an ISLES'22 metric) follows MONAI and is NaN with an empty mask."
)


@dataclass(frozen=True)
class CasePair:
    """A prediction file and the ground-truth file of the same case."""

    case_id: str
    prediction: Path
    ground_truth: Path


@dataclass(frozen=True)
class CaseResult:
    """The metrics of one case and the files they come from."""

    case_id: str
    prediction: Path
    ground_truth: Path
    metrics: CaseMetrics

    def to_dict(self) -> dict[str, Any]:
        """One flat row: ``case_id``, both paths, then every metric."""
        return {
            "case_id": self.case_id,
            "prediction": str(self.prediction),
            "ground_truth": str(self.ground_truth),
            **self.metrics.to_dict(),
        }


# -- pairing -------------------------------------------------------------------------------
def _case_id(name: str) -> str | None:
    lower = name.lower()
    for extension in _EXTENSIONS:
        if lower.endswith(extension):
            stem = name[: -len(extension)]
            break
    else:
        return None
    for suffix in _ROLE_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _cases_in(folder: Path, role: str) -> dict[str, Path]:
    if not folder.exists():
        raise SegmentationError(f"the {role} folder does not exist", path=folder)
    if not folder.is_dir():
        raise SegmentationError(f"the {role} folder is not a folder", path=folder)
    cases: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        case_id = _case_id(path.name)
        if case_id is None:
            continue
        if case_id in cases:
            raise SegmentationError(
                f"{cases[case_id].name} and {path.name} are both case {case_id!r}; "
                "keep one file per case",
                path=path,
            )
        cases[case_id] = path
    if not cases:
        raise SegmentationError(f"the {role} folder holds no .nii or .nii.gz masks", path=folder)
    return cases


def pair_cases(pred_dir: str | os.PathLike[str], gt_dir: str | os.PathLike[str]) -> list[CasePair]:
    """Pair the prediction and ground-truth files by case id (see the module docstring).

    Args:
        pred_dir: Folder of predicted masks.
        gt_dir: Folder of ground-truth masks.

    Returns:
        One :class:`CasePair` per case, sorted by case id.

    Raises:
        SegmentationError: A folder is missing or holds no masks, two files of a folder share
            a case id, or a file has no partner in the other folder (all of them named).
    """
    pred_folder, gt_folder = Path(pred_dir), Path(gt_dir)
    predictions = _cases_in(pred_folder, "prediction")
    truths = _cases_in(gt_folder, "ground-truth")
    extra = sorted(predictions.keys() - truths.keys())
    missing = sorted(truths.keys() - predictions.keys())
    if extra:
        names = ", ".join(predictions[c].name for c in extra)
        raise SegmentationError(
            f"no ground truth in {gt_folder} for the predictions {names}; "
            "name them like their ground truth (an optional _pred/_mask suffix is ignored)",
            path=predictions[extra[0]],
        )
    if missing:
        names = ", ".join(truths[c].name for c in missing)
        raise SegmentationError(
            f"no prediction in {pred_folder} for the ground truths {names}",
            path=truths[missing[0]],
        )
    return [CasePair(c, predictions[c], truths[c]) for c in sorted(truths)]


# -- one pair ------------------------------------------------------------------------------
def _mask(volume: Volume, path: Path, labels: LabelRule) -> np.ndarray:
    data = volume.data
    if data.ndim == 4:
        if data.shape[0] != 1:
            raise SegmentationError(
                f"a mask has one channel; this file has {data.shape[0]}", path=path
            )
        data = data[0]
    if data.dtype.kind in "fc":
        n_nan = int(np.count_nonzero(np.isnan(data)))
        if n_nan:
            raise SegmentationError(
                f"{n_nan} voxels are NaN; a mask holds 0 (background) and 1 (lesion)", path=path
            )
    if labels == "positive":
        return np.asarray(data > 0)
    if labels != "binary":
        raise SegmentationError(f"labels must be 'binary' or 'positive', got {labels!r}")
    other = (data != 0) & (data != 1)
    if other.any():
        values = np.unique(data[other])
        shown = ", ".join(f"{v:g}" for v in values[:5].tolist())
        more = f" and {values.size - 5} more" if values.size > 5 else ""
        raise SegmentationError(
            f"the mask is not binary: it holds {shown}{more} besides 0 and 1; "
            "pass labels='positive' (--labels positive) to count every value > 0 as lesion",
            path=path,
        )
    return np.asarray(data == 1)


def _check_grid(pred: Volume, gt: Volume, pair: CasePair) -> None:
    both = f"prediction {pair.prediction} and ground truth {pair.ground_truth}"
    if pred.shape != gt.shape:
        raise SegmentationError(
            f"{both} are on different grids (shapes {pred.shape} and {gt.shape}); "
            "resample the prediction onto the ground-truth grid",
            path=pair.prediction,
        )
    difference = float(np.max(np.abs(pred.affine - gt.affine)))
    if difference > _AFFINE_ATOL_MM:
        raise SegmentationError(
            f"{both} have affines that differ by up to {difference:.3g} mm "
            f"(tolerance {_AFFINE_ATOL_MM:g} mm); resample the prediction onto the "
            "ground-truth grid",
            path=pair.prediction,
        )


def evaluate_pair(pair: CasePair, *, labels: LabelRule = "binary") -> CaseResult:
    """Load one prediction and its ground truth, check them and compute every metric.

    Args:
        pair: The two files.
        labels: How voxel values become lesion (:data:`LabelRule`).

    Returns:
        The :class:`CaseResult`.

    Raises:
        SegmentationError: Different grids, NaN voxels, a non-binary mask under
            ``labels="binary"``, or more than one channel; each names the file.
        VolumeReadError: A file cannot be read.
    """
    from brrrr.core import load_volume

    pred = load_volume(pair.prediction)
    gt = load_volume(pair.ground_truth)
    _check_grid(pred, gt, pair)
    metrics = evaluate_case(
        _mask(pred, pair.prediction, labels),
        _mask(gt, pair.ground_truth, labels),
        spacing_mm=gt.spacing,
    )
    return CaseResult(pair.case_id, pair.prediction, pair.ground_truth, metrics)


# -- a folder ------------------------------------------------------------------------------
def evaluate_folder(
    pred_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    *,
    labels: LabelRule = "binary",
    csv_path: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
) -> tuple[list[CaseResult], dict[str, MetricSummary]]:
    """Evaluate every prediction in a folder against its ground truth.

    Args:
        pred_dir: Folder of predicted masks.
        gt_dir: Folder of ground-truth masks (pairing rule in the module docstring).
        labels: How voxel values become lesion (:data:`LabelRule`).
        csv_path: Write the per-case rows here (see :func:`write_csv`), if given.
        json_path: Write the cases and the aggregate here (see :func:`write_json`), if given.

    Returns:
        ``(results, summary)``: one :class:`CaseResult` per case, sorted by case id, and
        :func:`~brrrr.models.segmentation.metrics.aggregate` of their metrics.

    Raises:
        SegmentationError: See :func:`pair_cases` and :func:`evaluate_pair`.
    """
    results = [evaluate_pair(pair, labels=labels) for pair in pair_cases(pred_dir, gt_dir)]
    summary = aggregate(r.metrics for r in results)
    if csv_path is not None:
        write_csv(results, csv_path)
    if json_path is not None:
        write_json(results, summary, json_path)
    return results, summary


def write_csv(results: Sequence[CaseResult], path: str | os.PathLike[str]) -> Path:
    """Write one row per case: ``case_id``, ``prediction``, ``ground_truth``, the metrics.

    NaN is written as ``nan``.

    Returns:
        The path written.
    """
    destination = Path(path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fields = ["case_id", "prediction", "ground_truth"] + [
        f.name for f in dataclasses.fields(CaseMetrics)
    ]
    with destination.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for result in results:
            writer.writerow(result.to_dict())
    return destination


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(
    results: Sequence[CaseResult],
    summary: dict[str, MetricSummary],
    path: str | os.PathLike[str],
) -> Path:
    """Write ``{"rules", "cases": [...], "aggregate": {metric: {mean, std, median, count}}}``.

    The file is strict JSON: NaN (HD95 with an empty mask, the std of one value) is ``null``.

    Returns:
        The path written.
    """
    document = {
        "rules": _RULES,
        "cases": [
            {k: _finite_or_none(v) for k, v in result.to_dict().items()} for result in results
        ],
        "aggregate": {
            name: {k: _finite_or_none(v) for k, v in stats.to_dict().items()}
            for name, stats in summary.items()
        },
    }
    destination = Path(path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return destination
