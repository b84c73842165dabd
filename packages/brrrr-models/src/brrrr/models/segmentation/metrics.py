"""Lesion segmentation metrics of the ISLES'22 challenge, on boolean or label masks.

Every function takes a prediction and a ground truth of the same shape; any non-zero voxel
is lesion (the official code casts the masks to ``bool``). NaN voxels are refused rather
than counted as lesion.

How each rule follows the official evaluation (``utils/eval_utils.py`` of
github.com/ezequieldlrosa/isles22, called per case by the Grand Challenge container's
``Isles22(ClassificationEvaluation).score_case``; aggregated by ``evalutils``):

* :func:`dice`: ``2 |P ∩ G| / (|P| + |G|)``; **1.0 when both masks are empty** (official
  ``empty_value=1.0``), so 0.0 when exactly one is empty.
* :func:`absolute_volume_difference_ml`: ``| |G| v - |P| v |`` with ``v`` the voxel volume in
  ml, ``prod(spacing_mm) / 1000`` (the official notebook divides the header zooms by 1000).
  0.0 when both are empty; never NaN.
* :func:`lesion_count_difference`: ``| #G - #P |``, lesions being 26-connected components
  (official ``cc3d.connected_components(..., connectivity=26)``).
* :func:`lesion_f1`: a GT lesion overlapping any predicted voxel is a true positive, one with
  no overlap a false negative; a predicted lesion with no overlap with the GT is a false
  positive (a predicted lesion that overlaps is never counted, so one prediction covering two
  GT lesions gives two true positives). ``F1 = TP / (TP + (FP + FN) / 2)``; **1.0 when both
  masks are empty** (``TP + FP + FN = 0``, official ``empty_value=1.0``); 0.0 when only the GT
  is empty and the prediction is not (all FP), or the reverse (all FN).
* :func:`aggregate`: ``pandas.Series.describe`` as evalutils calls it: NaNs are left out,
  ``count`` is the number of values that are not NaN, the standard deviation is the sample
  one (``ddof=1``, so NaN for a single value) and the median is the linearly interpolated
  50 % quantile.

:func:`hd95` is **not** an ISLES'22 metric (the official evaluation has none); it follows
MONAI's ``compute_hausdorff_distance(percentile=95)``: surface voxels are the mask voxels with
a face neighbour (6-connectivity) outside the mask or outside the array; distances are
between voxel centres in mm; the result is the larger of the two directed 95th percentiles
(numpy's linear interpolation); **NaN when either mask is empty**, as MONAI returns, so an
empty case drops out of the aggregate (its ``count`` shows how many cases were kept).

Connected components come from ``scipy.ndimage.label`` with a full 3×3×3 structure, which is
exactly cc3d's 26-connectivity in 3D (full connectivity in other dimensions).

Example:
    >>> import numpy as np
    >>> gt = np.zeros((8, 8, 8), dtype=bool)
    >>> gt[1:3, 1:3, 1:3] = True
    >>> gt[5:7, 5:7, 5:7] = True
    >>> pred = np.zeros_like(gt)
    >>> pred[1:3, 1:3, 1:3] = True
    >>> round(dice(pred, gt), 4), round(lesion_f1(pred, gt), 4), lesion_count_difference(pred, gt)
    (0.6667, 0.6667, 1)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from brrrr.models.segmentation.errors import SegmentationError

if TYPE_CHECKING:
    from brrrr.core import Volume

__all__ = [
    "METRIC_NAMES",
    "CaseMetrics",
    "LesionCounts",
    "MetricSummary",
    "absolute_volume_difference_ml",
    "aggregate",
    "dice",
    "evaluate_case",
    "hd95",
    "label_lesions",
    "lesion_count_difference",
    "lesion_counts",
    "lesion_f1",
]

#: The per-case metrics that :func:`aggregate` summarises, in table order.
METRIC_NAMES = (
    "dice",
    "absolute_volume_difference_ml",
    "lesion_count_difference",
    "lesion_f1",
    "hd95_mm",
)

# Value of Dice and lesion F1 when both masks are empty (official ``empty_value``).
_EMPTY_VALUE = 1.0
_HD_PERCENTILE = 95.0


# -- masks ---------------------------------------------------------------------------------
def _as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.dtype.kind in "fc" and np.isnan(array).any():
        raise SegmentationError(f"the {name} mask holds NaN voxels; a mask is 0 or non-zero")
    return array.astype(bool, copy=False)


def _mask_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = _as_mask(pred, "predicted")
    g = _as_mask(gt, "ground-truth")
    if p.shape != g.shape:
        raise SegmentationError(
            f"the prediction has shape {p.shape} and the ground truth {g.shape}; "
            "evaluate masks on the same grid"
        )
    return p, g


def label_lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the lesions of a mask: its 26-connected components.

    Uses ``scipy.ndimage.label`` with a full 3×3×3 structure, which equals
    ``cc3d.connected_components(mask, connectivity=26)`` as the official evaluation calls it.

    Args:
        mask: ``(I, J, K)`` boolean or label mask; non-zero voxels are lesion.

    Returns:
        ``(labels, n)``: an ``(I, J, K)`` int32 array (0 background, lesions ``1..n``) and the
        number of lesions.
    """
    array = _as_mask(mask, "lesion")
    labels, n = ndimage.label(array, structure=np.ones((3,) * array.ndim, dtype=bool))
    return labels, int(n)


# -- the ISLES'22 metrics ------------------------------------------------------------------
def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient ``2 |P ∩ G| / (|P| + |G|)``, symmetric in its arguments.

    Args:
        pred: Predicted mask, any shape.
        gt: Ground-truth mask, same shape.

    Returns:
        A value in ``[0, 1]``; 1.0 when both masks are empty (ISLES'22 rule).

    Raises:
        SegmentationError: Shapes differ, or a mask holds NaN.
    """
    p, g = _mask_pair(pred, gt)
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(g))
    if total == 0:
        return _EMPTY_VALUE
    return 2.0 * int(np.count_nonzero(p & g)) / total


def absolute_volume_difference_ml(
    pred: np.ndarray, gt: np.ndarray, *, voxel_volume_ml: float
) -> float:
    """Absolute difference of the lesion volumes, in ml.

    Args:
        pred: Predicted mask.
        gt: Ground-truth mask, same shape.
        voxel_volume_ml: Volume of one voxel in ml: the product of the spacing in mm, / 1000.

    Returns:
        ``| |G| v - |P| v |`` in ml (0.0 when both are empty).

    Raises:
        SegmentationError: Shapes differ, a mask holds NaN, or the voxel volume is not > 0.
    """
    if not voxel_volume_ml > 0 or not math.isfinite(voxel_volume_ml):
        raise SegmentationError(f"voxel_volume_ml must be a positive number, got {voxel_volume_ml}")
    p, g = _mask_pair(pred, gt)
    return _volume_difference(int(np.count_nonzero(p)), int(np.count_nonzero(g)), voxel_volume_ml)


def _volume_difference(n_pred: int, n_gt: int, voxel_volume_ml: float) -> float:
    return abs(n_gt * voxel_volume_ml - n_pred * voxel_volume_ml)


def lesion_count_difference(pred: np.ndarray, gt: np.ndarray) -> int:
    """Absolute difference of the numbers of lesions (26-connected components).

    Args:
        pred: Predicted mask.
        gt: Ground-truth mask, same shape.

    Returns:
        ``| #G - #P |``.

    Raises:
        SegmentationError: Shapes differ, or a mask holds NaN.
    """
    p, g = _mask_pair(pred, gt)
    return abs(label_lesions(g)[1] - label_lesions(p)[1])


@dataclass(frozen=True)
class LesionCounts:
    """Lesion-wise detection counts of a prediction against a ground truth.

    Attributes:
        true_positives: GT lesions overlapping at least one predicted voxel.
        false_positives: Predicted lesions with no voxel in the GT.
        false_negatives: GT lesions with no predicted voxel.
    """

    true_positives: int
    false_positives: int
    false_negatives: int


def _counts(p: np.ndarray, g: np.ndarray) -> tuple[LesionCounts, int, int]:
    """The counts, and the numbers of predicted and GT lesions (one labelling each)."""
    gt_labels, n_gt = label_lesions(g)
    pred_labels, n_pred = label_lesions(p)
    overlap = p & g
    # Labels seen in the overlap: the GT lesions hit, and the predicted lesions that hit.
    hit_gt = np.unique(gt_labels[overlap]).size
    hitting_pred = np.unique(pred_labels[overlap]).size
    counts = LesionCounts(
        true_positives=hit_gt,
        false_positives=n_pred - hitting_pred,
        false_negatives=n_gt - hit_gt,
    )
    return counts, n_pred, n_gt


def lesion_counts(pred: np.ndarray, gt: np.ndarray) -> LesionCounts:
    """Lesion-wise true positives, false positives and false negatives (26-connectivity).

    Swapping the arguments swaps the false positives and false negatives.

    Args:
        pred: Predicted mask.
        gt: Ground-truth mask, same shape.

    Returns:
        The :class:`LesionCounts`.

    Raises:
        SegmentationError: Shapes differ, or a mask holds NaN.
    """
    p, g = _mask_pair(pred, gt)
    return _counts(p, g)[0]


def _f1(counts: LesionCounts) -> float:
    tp, fp, fn = counts.true_positives, counts.false_positives, counts.false_negatives
    if tp + fp + fn == 0:
        return _EMPTY_VALUE
    return tp / (tp + (fp + fn) / 2)


def lesion_f1(pred: np.ndarray, gt: np.ndarray) -> float:
    """Lesion-wise F1 score ``TP / (TP + (FP + FN) / 2)`` as ISLES'22 defines it.

    See :func:`lesion_counts` for what counts as a true/false positive.

    Args:
        pred: Predicted mask.
        gt: Ground-truth mask, same shape.

    Returns:
        A value in ``[0, 1]``; 1.0 when neither mask has a lesion (ISLES'22 rule).

    Raises:
        SegmentationError: Shapes differ, or a mask holds NaN.
    """
    return _f1(lesion_counts(pred, gt))


# -- surface distance ----------------------------------------------------------------------
def _spacing(spacing_mm: Sequence[float] | np.ndarray, ndim: int) -> np.ndarray:
    spacing = np.asarray(spacing_mm, dtype=np.float64).reshape(-1)
    if spacing.size != ndim or not np.all(np.isfinite(spacing)) or not np.all(spacing > 0):
        raise SegmentationError(
            f"spacing_mm must hold {ndim} positive voxel sizes in mm, got {list(spacing)}"
        )
    return spacing


def _surface(mask: np.ndarray) -> np.ndarray:
    face = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=face, border_value=0)


def hd95(pred: np.ndarray, gt: np.ndarray, *, spacing_mm: Sequence[float] | np.ndarray) -> float:
    """95th percentile symmetric Hausdorff distance between the mask surfaces, in mm.

    Convention (MONAI's ``compute_hausdorff_distance(percentile=95)``): the surface of a mask
    is its voxels with a face neighbour outside the mask or the array; for each surface voxel
    of one mask, the distance (between voxel centres, in mm) to the nearest surface voxel of
    the other; the result is ``max(P95(pred → gt), P95(gt → pred))`` with numpy's linear
    percentile. Not an ISLES'22 metric.

    Args:
        pred: ``(I, J, K)`` predicted mask.
        gt: Ground-truth mask, same shape.
        spacing_mm: Voxel size along each axis, in mm.

    Returns:
        The distance in mm; NaN when either mask is empty (as MONAI returns).

    Raises:
        SegmentationError: Shapes differ, a mask holds NaN, or the spacing is invalid.
    """
    p, g = _mask_pair(pred, gt)
    spacing = _spacing(spacing_mm, p.ndim)
    if not p.any() or not g.any():
        return math.nan
    # The distances only involve surface voxels, which lie in the bounding box of the union;
    # one voxel of margin keeps the erosion at the box's edge what it is on the whole array.
    coords = np.nonzero(p | g)
    box = tuple(
        slice(max(int(c.min()) - 1, 0), min(int(c.max()) + 2, size))
        for c, size in zip(coords, p.shape, strict=True)
    )
    surface_p, surface_g = _surface(p[box]), _surface(g[box])
    to_gt = ndimage.distance_transform_edt(~surface_g, sampling=spacing)[surface_p]
    to_pred = ndimage.distance_transform_edt(~surface_p, sampling=spacing)[surface_g]
    return float(max(np.percentile(to_gt, _HD_PERCENTILE), np.percentile(to_pred, _HD_PERCENTILE)))


# -- one case ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseMetrics:
    """Every metric of one case (see the module docstring for the rules).

    Attributes:
        dice: Dice coefficient.
        absolute_volume_difference_ml: ``| V_gt - V_pred |`` in ml.
        lesion_count_difference: ``| #gt - #pred |`` lesions.
        lesion_f1: Lesion-wise F1 score.
        hd95_mm: 95th percentile Hausdorff distance in mm (NaN with an empty mask).
        gt_volume_ml: Ground-truth lesion volume in ml.
        pred_volume_ml: Predicted lesion volume in ml.
        gt_lesions: Number of ground-truth lesions.
        pred_lesions: Number of predicted lesions.
    """

    dice: float
    absolute_volume_difference_ml: float
    lesion_count_difference: int
    lesion_f1: float
    hd95_mm: float
    gt_volume_ml: float
    pred_volume_ml: float
    gt_lesions: int
    pred_lesions: int

    def to_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict, in declaration order."""
        return dataclasses.asdict(self)


def _volume_array(value: Volume | np.ndarray, name: str) -> tuple[np.ndarray, Volume | None]:
    from brrrr.core import Volume

    if not isinstance(value, Volume):
        return np.asarray(value), None
    data = value.data
    if data.ndim == 4:
        if data.shape[0] != 1:
            raise SegmentationError(
                f"the {name} volume has {data.shape[0]} channels; a mask has one",
                path=value.source,
            )
        data = data[0]
    return data, value


def evaluate_case(
    pred: Volume | np.ndarray,
    gt: Volume | np.ndarray,
    *,
    spacing_mm: Sequence[float] | None = None,
) -> CaseMetrics:
    """All the metrics of one prediction against its ground truth.

    Args:
        pred: Predicted mask: a single-channel :class:`~brrrr.core.Volume` or an ``(I, J, K)``
            array.
        gt: Ground-truth mask, same grid.
        spacing_mm: Voxel size in mm. ``None`` takes it from ``gt`` when it is a Volume, else
            from ``pred``; with two arrays it must be given.

    Returns:
        The :class:`CaseMetrics`.

    Raises:
        SegmentationError: No spacing, shapes or (for two Volumes) affines that differ by more
            than 1e-4 mm, NaN voxels, or a multi-channel volume.

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((4, 4, 4), dtype=bool)
        >>> gt[1:3, 1:3, 1:3] = True
        >>> evaluate_case(gt, gt, spacing_mm=(1.0, 1.0, 2.0)).absolute_volume_difference_ml
        0.0
    """
    pred_array, pred_volume = _volume_array(pred, "predicted")
    gt_array, gt_volume = _volume_array(gt, "ground-truth")
    if (
        pred_volume is not None
        and gt_volume is not None
        and pred_array.shape == gt_array.shape
        and not np.allclose(pred_volume.affine, gt_volume.affine, rtol=0.0, atol=1e-4)
    ):
        raise SegmentationError(
            f"the prediction ({pred_volume.source or 'in memory'}) and the ground truth "
            f"({gt_volume.source or 'in memory'}) have different affines; "
            "resample the prediction onto the ground-truth grid first",
            path=pred_volume.source,
        )
    if spacing_mm is None:
        reference = gt_volume if gt_volume is not None else pred_volume
        if reference is None:
            raise SegmentationError("two arrays carry no voxel size: pass spacing_mm, or Volumes")
        spacing_mm = reference.spacing
    p, g = _mask_pair(pred_array, gt_array)
    spacing = _spacing(spacing_mm, p.ndim)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counts, n_pred, n_gt = _counts(p, g)
    n_voxels_pred, n_voxels_gt = int(np.count_nonzero(p)), int(np.count_nonzero(g))
    return CaseMetrics(
        dice=dice(p, g),
        absolute_volume_difference_ml=_volume_difference(n_voxels_pred, n_voxels_gt, voxel_ml),
        lesion_count_difference=abs(n_gt - n_pred),
        lesion_f1=_f1(counts),
        hd95_mm=hd95(p, g, spacing_mm=spacing),
        gt_volume_ml=n_voxels_gt * voxel_ml,
        pred_volume_ml=n_voxels_pred * voxel_ml,
        gt_lesions=n_gt,
        pred_lesions=n_pred,
    )


# -- many cases ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricSummary:
    """Summary of one metric over the cases, NaNs left out (as evalutils' ``describe``).

    Attributes:
        mean: Mean of the values that are not NaN.
        std: Sample standard deviation (``ddof=1``); NaN with fewer than two values.
        median: Median (linear interpolation).
        count: Number of values that are not NaN.
    """

    mean: float
    std: float
    median: float
    count: int

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return dataclasses.asdict(self)


def _summarise(values: np.ndarray) -> MetricSummary:
    kept = values[~np.isnan(values)]
    if kept.size == 0:
        return MetricSummary(mean=math.nan, std=math.nan, median=math.nan, count=0)
    std = float(np.std(kept, ddof=1)) if kept.size > 1 else math.nan
    return MetricSummary(
        mean=float(np.mean(kept)), std=std, median=float(np.median(kept)), count=int(kept.size)
    )


def aggregate(cases: Iterable[CaseMetrics]) -> dict[str, MetricSummary]:
    """Mean, standard deviation and median of each metric over the cases.

    NaN values (HD95 with an empty mask) are left out of each metric's summary, as the
    official evalutils aggregation (``pandas.Series.describe``) does; ``count`` says how many
    cases remain.

    Args:
        cases: The per-case metrics.

    Returns:
        ``{metric name: MetricSummary}`` for each name in :data:`METRIC_NAMES`.
    """
    rows = list(cases)
    return {
        name: _summarise(np.array([getattr(row, name) for row in rows], dtype=np.float64))
        for name in METRIC_NAMES
    }
