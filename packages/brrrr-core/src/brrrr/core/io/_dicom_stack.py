"""Turn the 2D images of one DICOM volume into one regular 3D stack of slices.

This private module owns the geometry of :mod:`brrrr.core.io.dicom`: it checks that
the images of a series share size, orientation and pixel spacing (naming a localizer
when they do not), sorts one volume's images along the slice normal, refuses missing
or unevenly spaced slices, and builds the voxel→LPS affine. It never touches pixel
data. Which images form one volume is decided by :mod:`brrrr.core.io._dicom_group`.

The slice step rule (the affine's third column):

* two or more slices: the mean step between the first and last
  ``ImagePositionPatient``, after checking every gap against the median
  (``slice_tolerance``) and every position against the line through the ends (so a
  constant in-plane drift, a CT gantry tilt, gives a sheared affine);
* Siemens mosaics: their tiles are placed ``SpacingBetweenSlices`` apart, else
  ``SliceThickness`` (the header has no position per tile), then the rule above;
* one slice: ``SliceThickness``, else ``SpacingBetweenSlices``, else 1 mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from brrrr.core.errors import DicomSeriesError, VolumeReadError
from brrrr.core.io._dicom_frames import Frame, Header

__all__ = ["Stack", "check_uniform", "stack_frames"]

_IOP_ATOL = 1e-4
_SPACING_RTOL = 1e-4
DUPLICATE_MM = 1e-4
_LOCALIZER_WORDS = ("LOCALIZER", "LOCALISER", "SCOUT", "SURVEY", "TRIPILOT", "3-PLANE", "3PLANE")
_PLANES = {0: "sagittal", 1: "coronal", 2: "axial"}


@dataclass
class Stack:
    """One volume's slices in order along the slice normal, and its affine.

    Attributes:
        order: Indices into the frames given to :func:`stack_frames`, in slice order.
        affine_lps: ``(4, 4)`` voxel→LPS mm.
        step_mm: Distance between slices along the normal.
        step_source: The attribute the step came from.
    """

    order: np.ndarray
    affine_lps: np.ndarray
    step_mm: float
    step_source: str


def _plane(orientation: np.ndarray) -> str:
    normal = np.cross(orientation[:3], orientation[3:])
    return _PLANES[int(np.argmax(np.abs(normal)))]


def _is_localizer(headers: Sequence[Header], orientations: np.ndarray) -> bool:
    ds = headers[0].ds
    words = " ".join(
        [str(v) for v in (ds.get("ImageType") or [])]
        + [str(ds.get("SeriesDescription") or ""), str(ds.get("ProtocolName") or "")]
    ).upper()
    if any(word in words for word in _LOCALIZER_WORDS):
        return True
    normals = {_plane(o) for o in orientations}
    return len(normals) >= 3  # three orthogonal planes in one series


def _refuse_orientations(
    frames: Sequence[Frame], headers: Sequence[Header], iop: np.ndarray, bad: np.ndarray, where: str
) -> None:
    first = int(np.flatnonzero(bad)[0])
    distinct: list[np.ndarray] = []
    for o in iop:
        if not any(np.all(np.abs(o - d) <= _IOP_ATOL) for d in distinct):
            distinct.append(o)
    counts: dict[str, int] = {}
    for o in iop:
        plane = _plane(o)
        counts[plane] = counts.get(plane, 0) + 1
    planes = ", ".join(f"{n} {plane}" for plane, n in counts.items())
    if _is_localizer(headers, iop):
        raise DicomSeriesError(
            f"this series is a localizer (scout/survey): {len(frames)} images in "
            f"{len(distinct)} orientations ({planes}; e.g. {frames[0].label} and "
            f"{frames[first].label}); a localizer is a set of separate planes, not one "
            "volume. Read another series (series_uid=), or read one of its files alone",
            path=where,
        )
    raise DicomSeriesError(
        f"slices differ in orientation (ImageOrientationPatient): {iop[0].tolist()} in "
        f"{frames[0].label} but {iop[first].tolist()} in {frames[first].label} "
        f"({int(bad.sum())} of {len(frames)} images differ; {planes}); a series must be one "
        "stack of parallel slices (pass series_uid= of a volume series, or split this one)",
        path=where,
    )


def _check_same(
    frames: Sequence[Frame], values: np.ndarray, bad: np.ndarray, what: str, where: str
) -> None:
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    raise DicomSeriesError(
        f"slices differ in {what}: {values[0].tolist()} in {frames[0].label} but "
        f"{values[first].tolist()} in {frames[first].label} ({int(bad.sum())} of {len(frames)} "
        "images differ); a series must be one stack of parallel, identical slices "
        "(pass series_uid= of a volume series, or split this one)",
        path=where,
    )


def check_uniform(frames: Sequence[Frame], headers: Sequence[Header], where: str) -> np.ndarray:
    """Check that all images share size, orientation and spacing; return the slice normal.

    Raises:
        DicomSeriesError: Images that differ (a localizer is named as one).
        VolumeReadError: An orientation that is not two orthogonal unit vectors.
    """
    shapes = np.array([f.shape for f in frames])
    _check_same(frames, shapes, np.any(shapes != shapes[0], axis=1), "size (Rows, Columns)", where)
    iop = np.array([f.orientation for f in frames])
    bad = np.any(np.abs(iop - iop[0]) > _IOP_ATOL, axis=1)
    if bad.any():
        _refuse_orientations(frames, headers, iop, bad, where)
    ps = np.array([f.spacing for f in frames])
    bad = np.any(np.abs(ps - ps[0]) > _SPACING_RTOL * np.abs(ps[0]), axis=1)
    _check_same(frames, ps, bad, "PixelSpacing", where)
    row, col = iop[0, :3], iop[0, 3:]
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    if abs(float(row @ col)) > 1e-3 or np.any(ps[0] <= 0):
        raise VolumeReadError(
            f"{frames[0].label}: ImageOrientationPatient {iop[0].tolist()} is not two orthogonal "
            f"unit vectors, or PixelSpacing {ps[0].tolist()} is not positive",
            path=where,
        )
    return np.cross(row, col)


def _single_slice_step(ds: Dataset) -> tuple[float, str]:
    for keyword in ("SliceThickness", "SpacingBetweenSlices"):
        value = ds.get(keyword)
        if value in (None, ""):
            seq = ds.get("SharedFunctionalGroupsSequence")
            measures = seq[0].get("PixelMeasuresSequence") if seq else None
            value = measures[0].get(keyword) if measures else None
        try:
            step = float(value) if value not in (None, "") else 0.0
        except (TypeError, ValueError):
            step = 0.0
        if step > 0 and np.isfinite(step):
            return step, keyword
    return 1.0, "default 1 mm"


def stack_frames(
    frames: Sequence[Frame], headers: Sequence[Header], where: str, tol: float
) -> Stack:
    """Sort one volume's images along the slice normal and build its affine.

    The images must already be uniform (:func:`check_uniform`) and at distinct
    positions (duplicates are handled by :mod:`brrrr.core.io._dicom_group`).

    Raises:
        DicomSeriesError: A missing slice, uneven spacing, or an in-plane shift.
    """
    iop = frames[0].orientation
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    ps = frames[0].spacing
    normal = np.cross(row, col)
    positions = np.array([f.position for f in frames])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    gaps = np.diff(along)
    label = [frames[i].label for i in order]

    if len(frames) == 1:
        step, source = _single_slice_step(headers[frames[0].header].ds)
        step_vector = normal * step
    else:
        step = float(np.median(gaps))
        ratios = gaps / step
        missing = np.rint(ratios) >= 2
        if missing.any():
            k = int(np.flatnonzero(missing)[0])
            raise DicomSeriesError(
                f"missing slice(s): a gap of {gaps[k]:.4g} mm ({ratios[k]:.2f}× the median step "
                f"{step:.4g} mm) between {label[k]} (at {along[k]:.4f} mm along the slice normal) "
                f"and {label[k + 1]} (at {along[k + 1]:.4f} mm); about {int(np.rint(ratios[k])) - 1} "
                f"slice(s) missing out of {len(frames)} read. Check that every file was copied",
                path=where,
            )
        uneven = np.abs(ratios - 1) > tol
        if uneven.any():
            k = int(np.flatnonzero(uneven)[0])
            raise DicomSeriesError(
                f"non-uniform slice spacing: gaps range from {gaps.min():.4g} to {gaps.max():.4g} mm "
                f"(median {step:.4g} mm, slice_tolerance={tol}); first off gap: {gaps[k]:.4g} mm "
                f"between {label[k]} (at {along[k]:.4f} mm along the slice normal) and "
                f"{label[k + 1]} (at {along[k + 1]:.4f} mm). Pass a larger slice_tolerance= to "
                "accept it (the affine then uses the mean step)",
                path=where,
            )
        step_vector = (positions[-1] - positions[0]) / (len(frames) - 1)
        # The in-plane part of the positions must lie on one line too (a constant shift
        # per slice is a gantry tilt, kept as a sheared affine; a jump is an error).
        line = positions[0] + np.arange(len(frames))[:, None] * step_vector
        off = positions - line
        off -= np.outer(off @ normal, normal)
        shift = np.linalg.norm(off, axis=1)
        if shift.max() > max(tol * step, 1e-3):
            k = int(np.argmax(shift))
            raise DicomSeriesError(
                f"slices are shifted in-plane: {label[k]} lies {shift[k]:.4g} mm off the line "
                "through the first and last slice positions (ImagePositionPatient)",
                path=where,
            )
        step = float(step_vector @ normal)
        source = "ImagePositionPatient"
        mosaic = headers[frames[0].header].mosaic
        if mosaic is not None:
            source = f"{mosaic.step_source} (Siemens mosaic)"

    affine = np.eye(4)
    affine[:3, 0] = row * ps[1]
    affine[:3, 1] = col * ps[0]
    affine[:3, 2] = step_vector
    affine[:3, 3] = positions[0]
    return Stack(order, affine, float(step), source)
