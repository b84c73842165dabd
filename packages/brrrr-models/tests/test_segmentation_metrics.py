"""ISLES'22 metrics: hand-computed cases, the official empty-mask rules, HD95 against a
brute-force reference and MONAI, properties, and the aggregate against pandas' describe."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays
from scipy import ndimage
from scipy.spatial.distance import cdist

from brrrr.core import Volume
from brrrr.models.segmentation import (
    METRIC_NAMES,
    CaseMetrics,
    LesionCounts,
    SegmentationError,
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


def _empty(shape: tuple[int, int, int] = (12, 12, 12)) -> np.ndarray:
    return np.zeros(shape, dtype=bool)


def _diagonal_cubes() -> np.ndarray:
    """Two 2×2×2 cubes sharing only a corner: one 26-connected lesion, two 6-connected."""
    mask = _empty((6, 6, 6))
    mask[0:2, 0:2, 0:2] = True
    mask[2:4, 2:4, 2:4] = True
    return mask


# -- connected components ------------------------------------------------------------------
def test_cubes_touching_at_a_corner_are_one_lesion() -> None:
    mask = _diagonal_cubes()
    labels, n = label_lesions(mask)
    assert n == 1
    assert labels[mask].min() == labels[mask].max() == 1
    assert ndimage.label(mask)[1] == 2  # scipy's default 6-connectivity splits them


def test_cubes_touching_along_an_edge_are_one_lesion() -> None:
    mask = _empty((6, 6, 6))
    mask[0:2, 0:2, 0:2] = True
    mask[2:4, 2:4, 0:2] = True  # shares the edge between (1, 1, z) and (2, 2, z)
    assert label_lesions(mask)[1] == 1


def test_diagonal_cubes_against_one_cube() -> None:
    gt = _diagonal_cubes()
    pred = _empty((6, 6, 6))
    pred[0:2, 0:2, 0:2] = True
    # One 26-connected GT lesion, hit: F1 = 1 (6-connectivity would give 2 lesions, F1 2/3).
    assert lesion_counts(pred, gt) == LesionCounts(1, 0, 0)
    assert lesion_f1(pred, gt) == 1.0
    assert lesion_count_difference(pred, gt) == 0
    assert dice(pred, gt) == pytest.approx(2 * 8 / (16 + 8))


# -- hand-computed metrics -----------------------------------------------------------------
def test_dice_of_shifted_cubes() -> None:
    gt = _empty()
    gt[2:5, 2:5, 2:5] = True
    pred = np.roll(gt, 1, axis=0)
    assert dice(pred, gt) == pytest.approx(2 * 18 / 54)
    assert dice(gt, pred) == dice(pred, gt)


def test_label_masks_count_every_non_zero_voxel_as_lesion() -> None:
    gt = np.zeros((4, 4, 4), dtype=np.int16)
    gt[0, 0, 0] = 1
    gt[3, 3, 3] = 7
    assert dice(gt, gt > 0) == 1.0
    assert label_lesions(gt)[1] == 2


def test_volume_difference_with_anisotropic_spacing() -> None:
    gt = _empty()
    gt[0:2, 0:5, 0] = True  # 10 voxels
    pred = _empty()
    pred[0:2, 0:2, 0] = True  # 4 voxels
    voxel_ml = 0.5 * 2.0 * 3.0 / 1000  # 3 mm³
    assert absolute_volume_difference_ml(pred, gt, voxel_volume_ml=voxel_ml) == pytest.approx(
        6 * 0.003
    )

    affine = np.diag([0.5, 2.0, 3.0, 1.0])
    metrics = evaluate_case(Volume(pred, affine), Volume(gt, affine))
    assert metrics.absolute_volume_difference_ml == pytest.approx(0.018)
    assert metrics.gt_volume_ml == pytest.approx(0.030)
    assert metrics.pred_volume_ml == pytest.approx(0.012)


def test_volume_difference_needs_a_positive_voxel_volume() -> None:
    with pytest.raises(SegmentationError, match="voxel_volume_ml"):
        absolute_volume_difference_ml(_empty(), _empty(), voxel_volume_ml=0.0)


def test_hd95_of_two_voxels_uses_the_spacing() -> None:
    pred, gt = _empty(), _empty()
    pred[1, 1, 1] = True
    gt[4, 1, 1] = True
    assert hd95(pred, gt, spacing_mm=(2.0, 1.0, 1.0)) == pytest.approx(6.0)
    assert hd95(pred, pred, spacing_mm=(2.0, 1.0, 1.0)) == 0.0


def test_hd95_of_concentric_cubes() -> None:
    # The 5-cube's surface is 1 voxel from the 7-cube's. Of the 7-cube's 218 surface voxels,
    # 150 (faces) are 1 from the 5-cube's, 60 (edges) √2 and 8 (corners) √3: its P95 is √2.
    inner, outer = _empty(), _empty()
    inner[3:8, 3:8, 3:8] = True
    outer[2:9, 2:9, 2:9] = True
    assert hd95(inner, outer, spacing_mm=(1.0, 1.0, 1.0)) == pytest.approx(math.sqrt(2))


# -- the official rules, numbers derived by hand from utils/eval_utils.py ------------------
def _official_case_masks() -> tuple[np.ndarray, np.ndarray]:
    """Three GT lesions (27, 8, 1 voxels); a prediction that hits one, misses two, adds two."""
    gt, pred = _empty(), _empty()
    gt[1:4, 1:4, 1:4] = True
    gt[8:10, 8:10, 8:10] = True
    gt[5, 10, 1] = True
    pred[2:5, 1:4, 1:4] = True  # 18 voxels inside the 27-voxel GT lesion
    pred[10, 1, 10] = True
    pred[6, 6, 6] = True
    return pred, gt


def test_official_rules_on_a_mixed_case() -> None:
    pred, gt = _official_case_masks()
    metrics = evaluate_case(pred, gt, spacing_mm=(1.0, 1.0, 2.0))  # 2 mm³ = 0.002 ml
    assert metrics.dice == pytest.approx(36 / 65)
    assert metrics.absolute_volume_difference_ml == pytest.approx(7 * 0.002)
    assert metrics.lesion_count_difference == 0  # 3 and 3 lesions, yet a poor detection
    assert lesion_counts(pred, gt) == LesionCounts(1, 2, 2)
    assert metrics.lesion_f1 == pytest.approx(1 / 3)
    assert (metrics.gt_lesions, metrics.pred_lesions) == (3, 3)


def test_one_prediction_bridging_two_lesions_detects_both() -> None:
    gt, pred = _empty(), _empty()
    gt[1:3, 1:3, 1:3] = True
    gt[1:3, 1:3, 5:7] = True
    pred[1:3, 1:3, 1:7] = True
    assert lesion_counts(pred, gt) == LesionCounts(2, 0, 0)
    assert lesion_f1(pred, gt) == 1.0
    assert lesion_count_difference(pred, gt) == 1
    assert dice(pred, gt) == pytest.approx(0.8)


def test_a_lesion_split_in_two_predictions_is_one_true_positive() -> None:
    gt, pred = _empty(), _empty()
    gt[1:3, 1:3, 1:7] = True
    pred[1:3, 1:3, 1:3] = True
    pred[1:3, 1:3, 5:7] = True
    assert lesion_counts(pred, gt) == LesionCounts(1, 0, 0)
    assert lesion_f1(pred, gt) == 1.0
    assert lesion_count_difference(pred, gt) == 1


@pytest.mark.parametrize(
    ("gt_voxels", "pred_voxels", "expected"),
    [
        # both empty: Dice and F1 take the official empty_value 1.0; HD95 is NaN (MONAI)
        (0, 0, {"dice": 1.0, "lesion_f1": 1.0, "lesion_count_difference": 0, "avd": 0.0}),
        # empty GT, one predicted lesion: all false positives
        (0, 8, {"dice": 0.0, "lesion_f1": 0.0, "lesion_count_difference": 1, "avd": 8.0}),
        # one GT lesion, empty prediction: all false negatives
        (8, 0, {"dice": 0.0, "lesion_f1": 0.0, "lesion_count_difference": 1, "avd": 8.0}),
    ],
)
def test_empty_masks_follow_the_official_rules(
    gt_voxels: int, pred_voxels: int, expected: dict[str, float]
) -> None:
    gt, pred = _empty(), _empty()
    if gt_voxels:
        gt[0:2, 0:2, 0:2] = True
    if pred_voxels:
        pred[5:7, 5:7, 5:7] = True
    metrics = evaluate_case(pred, gt, spacing_mm=(1.0, 1.0, 1.0))
    assert metrics.dice == expected["dice"] == dice(pred, gt)
    assert metrics.lesion_f1 == expected["lesion_f1"] == lesion_f1(pred, gt)
    assert metrics.lesion_count_difference == expected["lesion_count_difference"]
    assert metrics.absolute_volume_difference_ml == pytest.approx(expected["avd"] / 1000)
    assert math.isnan(metrics.hd95_mm)
    assert math.isnan(hd95(pred, gt, spacing_mm=(1.0, 1.0, 1.0)))


# -- HD95 against references ---------------------------------------------------------------
def _brute_force_surface_mm(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Voxels (in mm) with a face neighbour outside the mask or the array, one by one."""
    padded = np.pad(mask, 1, constant_values=False)
    steps = [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
    points = [
        index
        for index in zip(*np.nonzero(mask), strict=True)
        if not all(
            padded[tuple(int(i) + 1 + d for i, d in zip(index, s, strict=True))] for s in steps
        )
    ]
    return np.array(points, dtype=np.float64) * spacing


def _brute_force_hd95(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
    sa = _brute_force_surface_mm(a, np.asarray(spacing))
    sb = _brute_force_surface_mm(b, np.asarray(spacing))
    distances = cdist(sa, sb)
    return float(
        max(np.percentile(distances.min(axis=1), 95), np.percentile(distances.min(axis=0), 95))
    )


def _random_masks(seed: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    rng = np.random.default_rng(seed)
    shape = (10, 12, 9)
    if seed % 2:  # speckle: many tiny lesions, surfaces at the array border
        a, b = rng.random(shape) < 0.25, rng.random(shape) < 0.15
    else:  # blobs: smoothed noise, thresholded
        a = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.52
        b = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.5
    a[0, 0, 0] = b[-1, -1, -1] = True  # never empty
    spacing = tuple(float(s) for s in rng.uniform(0.5, 3.0, size=3))
    return a, b, spacing  # type: ignore[return-value]


@pytest.mark.parametrize("seed", range(8))
def test_hd95_matches_brute_force(seed: int) -> None:
    a, b, spacing = _random_masks(seed)
    assert hd95(a, b, spacing_mm=spacing) == pytest.approx(
        _brute_force_hd95(a, b, spacing), abs=1e-9
    )
    assert hd95(a, b, spacing_mm=spacing) == hd95(b, a, spacing_mm=spacing)


@pytest.mark.slow  # importing MONAI takes seconds
@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI's own deprecations
@pytest.mark.parametrize("seed", range(4))
def test_hd95_matches_monai(seed: int) -> None:
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("monai.metrics")
    a, b, spacing = _random_masks(seed)
    reference = metrics.compute_hausdorff_distance(
        torch.as_tensor(a[None, None]),
        torch.as_tensor(b[None, None]),
        percentile=95,
        spacing=spacing,
    )
    assert hd95(a, b, spacing_mm=spacing) == pytest.approx(float(reference), abs=1e-4)


def test_hd95_needs_one_spacing_per_axis() -> None:
    mask = _diagonal_cubes()
    with pytest.raises(SegmentationError, match="spacing_mm"):
        hd95(mask, mask, spacing_mm=(1.0, 1.0))
    with pytest.raises(SegmentationError, match="spacing_mm"):
        hd95(mask, mask, spacing_mm=(1.0, -1.0, 1.0))


# -- properties ----------------------------------------------------------------------------
_MASKS = arrays(dtype=bool, shape=(5, 4, 6))


@settings(max_examples=60, deadline=None)
@given(a=_MASKS, b=_MASKS)
def test_properties(a: np.ndarray, b: np.ndarray) -> None:
    assert dice(a, a) == 1.0
    assert lesion_f1(a, a) == 1.0
    assert dice(a, b) == dice(b, a)
    forward, backward = lesion_counts(a, b), lesion_counts(b, a)
    # FP of one direction are the FN of the other: both count components with no overlap.
    assert forward.false_positives == backward.false_negatives
    assert forward.false_negatives == backward.false_positives
    assert 0.0 <= lesion_f1(a, b) <= 1.0
    assert lesion_count_difference(a, b) == abs(label_lesions(a)[1] - label_lesions(b)[1])


# -- evaluate_case inputs ------------------------------------------------------------------
def test_evaluate_case_takes_the_spacing_from_a_volume() -> None:
    pred, gt = _official_case_masks()
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    from_gt = evaluate_case(pred, Volume(gt, affine))
    from_pred = evaluate_case(Volume(pred[None], affine), gt)  # (1, I, J, K) is one channel
    given_spacing = evaluate_case(pred, gt, spacing_mm=(1.0, 1.0, 2.0))
    assert from_gt == from_pred
    for name in METRIC_NAMES:
        assert getattr(from_gt, name) == pytest.approx(getattr(given_spacing, name), nan_ok=True)


def test_evaluate_case_errors() -> None:
    mask = _diagonal_cubes()
    with pytest.raises(SegmentationError, match="spacing_mm"):
        evaluate_case(mask, mask)
    with pytest.raises(SegmentationError, match="shape"):
        evaluate_case(mask, mask[:-1], spacing_mm=(1, 1, 1))
    shifted = np.eye(4)
    shifted[0, 3] = 0.01
    with pytest.raises(SegmentationError, match="affines"):
        evaluate_case(Volume(mask, shifted), Volume(mask, np.eye(4)))
    with pytest.raises(SegmentationError, match="channels"):
        evaluate_case(Volume(np.stack([mask, mask]), np.eye(4)), mask)
    with_nan = mask.astype(np.float32)
    with_nan[0, 0, 0] = np.nan
    with pytest.raises(SegmentationError, match="NaN"):
        dice(with_nan, mask)


# -- aggregate -----------------------------------------------------------------------------
def _case(**values: float) -> CaseMetrics:
    base: dict[str, float] = {
        "dice": 1.0,
        "absolute_volume_difference_ml": 0.0,
        "lesion_count_difference": 0,
        "lesion_f1": 1.0,
        "hd95_mm": 0.0,
        "gt_volume_ml": 0.0,
        "pred_volume_ml": 0.0,
        "gt_lesions": 0,
        "pred_lesions": 0,
    }
    return CaseMetrics(**{**base, **values})  # type: ignore[arg-type]


def test_aggregate_leaves_nan_out() -> None:
    cases = [
        _case(dice=0.5, hd95_mm=2.0),
        _case(dice=1.0, hd95_mm=math.nan),
        _case(dice=0.0, hd95_mm=4.0),
    ]
    summary = aggregate(cases)
    assert list(summary) == list(METRIC_NAMES)
    assert summary["dice"].mean == pytest.approx(0.5)
    assert summary["dice"].std == pytest.approx(0.5)  # sample std, ddof=1
    assert summary["dice"].median == 0.5
    assert summary["dice"].count == 3
    assert summary["hd95_mm"].mean == 3.0
    assert summary["hd95_mm"].median == 3.0
    assert summary["hd95_mm"].count == 2


def test_aggregate_of_one_or_no_value() -> None:
    one = aggregate([_case(hd95_mm=math.nan)])
    assert math.isnan(one["dice"].std)  # pandas' ddof=1 std of a single value
    assert one["dice"].mean == 1.0
    assert one["hd95_mm"].count == 0
    assert math.isnan(one["hd95_mm"].mean)
    assert aggregate([])["dice"].count == 0


def test_aggregate_matches_pandas_describe() -> None:
    pandas = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    values = rng.random(9)
    values[[2, 5]] = np.nan
    summary = aggregate(_case(hd95_mm=float(v)) for v in values)["hd95_mm"]
    described = pandas.Series(values).describe()
    assert summary.count == described["count"]
    assert summary.mean == pytest.approx(described["mean"])
    assert summary.std == pytest.approx(described["std"])
    assert summary.median == pytest.approx(described["50%"])
