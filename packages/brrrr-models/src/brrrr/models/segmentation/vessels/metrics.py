"""Vessel segmentation metrics: Dice, clDice and Betti-number errors on 3-D masks.

Any non-zero voxel is vessel; NaN voxels are refused; both masks must be 3-D and of one shape.

* :func:`dice`: ``2 |P ∩ G| / (|P| + |G|)``, 1.0 when both masks are empty (the lesion
  metrics' rule, :func:`brrrr.models.segmentation.metrics.dice`).
* :func:`cldice`: centreline Dice (Shit et al., CVPR 2021). With ``S(X)`` the 3-D skeleton of a
  mask (``skimage.morphology.skeletonize``, Lee's thinning, which keeps the topology; a
  component that thinning erases entirely, such as a ball, keeps its deepest voxel),
  topology precision ``Tprec = |S(P) ∩ G| / |S(P)|`` and sensitivity
  ``Tsens = |S(G) ∩ P| / |S(G)|``; ``clDice = 2 Tprec Tsens / (Tprec + Tsens)``. Symmetric in
  its arguments (swapping them swaps ``Tprec`` and ``Tsens``). 1.0 when both masks are empty,
  0.0 when exactly one is. Skeletons are taken on the voxel grid (anisotropic voxels are not
  reweighted).
* :func:`betti_numbers`: ``(b0, b1, b2)`` of the foreground: connected components, independent
  loops (tunnels) and enclosed cavities. The foreground is 26-connected and the background
  6-connected, the pair for which a voxel set is the union of its closed unit cubes, so:
  ``b0`` = 26-connected foreground components; ``b2`` = 6-connected background components
  that do not reach the outside of the array (the array is padded with background);
  ``b1 = b0 + b2 − χ`` with the Euler characteristic ``χ = V − E + F − C`` counted on the
  cubical complex of the closed foreground cubes (vertices, edges, faces, cubes).
  ``skimage.measure.euler_number(mask, connectivity=3)`` gives the same ``χ``.
* :func:`betti_errors`: ``|b0(P) − b0(G)|`` and ``|b1(P) − b1(G)|``.

Example:
    >>> import numpy as np
    >>> ring = np.zeros((7, 7, 3), dtype=bool)
    >>> ring[1:6, 1:6, 1] = True
    >>> ring[2:5, 2:5, 1] = False
    >>> betti_numbers(ring)
    (1, 1, 0)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from brrrr.core.errors import MissingDependencyError
from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.metrics import MetricSummary

__all__ = [
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
]

#: The per-volume metrics that :func:`aggregate_vessel_metrics` summarises, in table order.
VESSEL_METRIC_NAMES = ("dice", "cldice", "betti0_error", "betti1_error")


def _mask(mask: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 3:
        raise SegmentationError(
            f"the {name} mask has shape {array.shape}; vessel metrics need a 3-D (I, J, K) mask"
        )
    if array.dtype.kind in "fc" and np.isnan(array).any():
        raise SegmentationError(f"the {name} mask holds NaN voxels; a mask is 0 or non-zero")
    return array.astype(bool, copy=False)


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = _mask(pred, "predicted"), _mask(gt, "ground-truth")
    if p.shape != g.shape:
        raise SegmentationError(
            f"the prediction has shape {p.shape} and the ground truth {g.shape}; "
            "evaluate masks on the same grid"
        )
    return p, g


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient of two 3-D masks; 1.0 when both are empty.

    Raises:
        SegmentationError: Not 3-D, shapes differ, or NaN voxels.
    """
    p, g = _pair(pred, gt)
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(g))
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(p & g)) / total


def skeleton(mask: np.ndarray) -> np.ndarray:
    """The 3-D skeleton of a mask (``skimage.morphology.skeletonize``), as booleans.

    Raises:
        SegmentationError: Not 3-D, or NaN voxels.
        MissingDependencyError: scikit-image is not installed.
    """
    array = _mask(mask, "vessel")
    try:
        from skimage.morphology import skeletonize
    except ImportError:
        raise MissingDependencyError(
            'clDice needs scikit-image: pip install "brrrr-models[segmentation]"'
        ) from None
    if not array.any():
        return np.zeros(array.shape, dtype=bool)
    thin = np.asarray(skeletonize(array), dtype=bool)
    # Thinning can erase a compact blob entirely (a ball has no centreline); such a component
    # keeps its deepest voxel, so every component has a skeleton and clDice stays defined.
    labels, n = ndimage.label(array, structure=np.ones((3, 3, 3), dtype=bool))
    missing = np.setdiff1d(np.arange(1, n + 1), np.unique(labels[thin]))
    if missing.size:
        depth = ndimage.distance_transform_edt(array)
        for index in ndimage.maximum_position(depth, labels, missing):
            thin[tuple(index)] = True
    return thin


def cldice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Centreline Dice of two 3-D masks (see the module docstring).

    Returns:
        A value in ``[0, 1]``; 1.0 when both masks are empty, 0.0 when exactly one is.

    Raises:
        SegmentationError: Not 3-D, shapes differ, or NaN voxels.
    """
    p, g = _pair(pred, gt)
    if not p.any() and not g.any():
        return 1.0
    if not p.any() or not g.any():
        return 0.0
    sp, sg = skeleton(p), skeleton(g)
    precision = int(np.count_nonzero(sp & g)) / max(1, int(np.count_nonzero(sp)))
    sensitivity = int(np.count_nonzero(sg & p)) / max(1, int(np.count_nonzero(sg)))
    if precision + sensitivity == 0:
        return 0.0
    return float(2.0 * precision * sensitivity / (precision + sensitivity))


def euler_characteristic(mask: np.ndarray) -> int:
    """Euler characteristic ``V − E + F − C`` of the union of the closed foreground cubes.

    This is the χ of the 26-connected foreground with a 6-connected background.

    Raises:
        SegmentationError: Not 3-D, or NaN voxels.
    """
    p = np.pad(_mask(mask, "vessel"), 1)
    cubes = int(np.count_nonzero(p))
    faces = sum(
        int(
            np.count_nonzero(
                p[(slice(None),) * a + (slice(0, -1),)] | p[(slice(None),) * a + (slice(1, None),)]
            )
        )
        for a in range(3)
    )
    edges = 0
    for a in range(3):
        b, c = (axis for axis in range(3) if axis != a)
        present = np.zeros((), dtype=bool)
        for db in (0, 1):
            for dc in (0, 1):
                index = [slice(None)] * 3
                index[b] = slice(db, p.shape[b] - 1 + db)
                index[c] = slice(dc, p.shape[c] - 1 + dc)
                present = present | p[tuple(index)]
        edges += int(np.count_nonzero(present))
    vertex = np.zeros((), dtype=bool)
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                vertex = (
                    vertex
                    | p[
                        di : p.shape[0] - 1 + di, dj : p.shape[1] - 1 + dj, dk : p.shape[2] - 1 + dk
                    ]
                )
    return int(np.count_nonzero(vertex)) - edges + faces - cubes


def betti_numbers(mask: np.ndarray) -> tuple[int, int, int]:
    """``(b0, b1, b2)`` of a 3-D mask: components, loops, cavities (module docstring).

    Raises:
        SegmentationError: Not 3-D, or NaN voxels.

    Example:
        >>> import numpy as np
        >>> betti_numbers(np.ones((3, 3, 3), dtype=bool))
        (1, 0, 0)
    """
    array = _mask(mask, "vessel")
    if not array.any():
        return (0, 0, 0)
    _, b0 = ndimage.label(array, structure=np.ones((3, 3, 3), dtype=bool))
    padded = np.pad(array, 1)
    _, background = ndimage.label(~padded, structure=ndimage.generate_binary_structure(3, 1))
    b2 = int(background) - 1
    b1 = int(b0) + b2 - euler_characteristic(array)
    return (int(b0), b1, b2)


def betti_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """``(|b0(P) − b0(G)|, |b1(P) − b1(G)|)``.

    Raises:
        SegmentationError: Not 3-D, shapes differ, or NaN voxels.
    """
    p, g = _pair(pred, gt)
    bp, bg = betti_numbers(p), betti_numbers(g)
    return abs(bp[0] - bg[0]), abs(bp[1] - bg[1])


@dataclass(frozen=True)
class VesselMetrics:
    """The metrics of one predicted vessel mask against its ground truth.

    Attributes:
        dice: Dice coefficient.
        cldice: Centreline Dice.
        betti0_error: ``|b0(P) − b0(G)|``.
        betti1_error: ``|b1(P) − b1(G)|``.
        pred_betti: ``(b0, b1, b2)`` of the prediction.
        gt_betti: ``(b0, b1, b2)`` of the ground truth.
        pred_fraction: Fraction of voxels predicted vessel.
        gt_fraction: Fraction of voxels that are vessel.
    """

    dice: float
    cldice: float
    betti0_error: int
    betti1_error: int
    pred_betti: tuple[int, int, int]
    gt_betti: tuple[int, int, int]
    pred_fraction: float
    gt_fraction: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["pred_betti"], out["gt_betti"] = list(self.pred_betti), list(self.gt_betti)
        return out


def vessel_metrics(pred: np.ndarray, gt: np.ndarray) -> VesselMetrics:
    """Every vessel metric of one prediction against its ground truth.

    Raises:
        SegmentationError: Not 3-D, shapes differ, or NaN voxels.
    """
    p, g = _pair(pred, gt)
    bp, bg = betti_numbers(p), betti_numbers(g)
    return VesselMetrics(
        dice=dice(p, g),
        cldice=cldice(p, g),
        betti0_error=abs(bp[0] - bg[0]),
        betti1_error=abs(bp[1] - bg[1]),
        pred_betti=bp,
        gt_betti=bg,
        pred_fraction=float(p.mean()),
        gt_fraction=float(g.mean()),
    )


def aggregate_vessel_metrics(cases: Iterable[VesselMetrics]) -> dict[str, MetricSummary]:
    """Mean, sample standard deviation (NaN for one case) and median of each metric.

    Returns:
        ``{name: MetricSummary}`` for each name in :data:`VESSEL_METRIC_NAMES`.
    """
    rows = list(cases)
    summary = {}
    for name in VESSEL_METRIC_NAMES:
        values = np.asarray([float(getattr(row, name)) for row in rows], dtype=np.float64)
        if values.size == 0:
            summary[name] = MetricSummary(math.nan, math.nan, math.nan, 0)
            continue
        std = float(values.std(ddof=1)) if values.size > 1 else math.nan
        summary[name] = MetricSummary(
            float(values.mean()), std, float(np.median(values)), int(values.size)
        )
    return summary
