"""Turn the headers of one DICOM series into one regular 3D stack of slices.

This private module owns the geometry side of :mod:`brrrr.core.io.dicom`: it reads
each 2D image's position, orientation, pixel spacing and rescale from the headers
(single-frame files and enhanced multi-frame functional groups alike), checks that
the images share size, orientation and spacing, sorts them along the slice normal,
refuses duplicated, missing or unevenly spaced slices, and builds the voxel→LPS
affine. It never touches pixel data: scanning files and decoding pixels stay in
:mod:`brrrr.core.io.dicom`, which imports from here (never the reverse); that is
also why :class:`Header`, the parsed header of one file that both modules use, is
defined here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from brrrr.core.errors import DicomSeriesError, UnsupportedFormatError, VolumeReadError

__all__ = ["Frame", "Header", "Stack", "frames_of", "stack_frames"]

_IOP_ATOL = 1e-4
_SPACING_RTOL = 1e-4
_DUPLICATE_MM = 1e-4
# Attributes that tell apart images sharing one position (shown when refusing them).
_DISTINGUISHERS = (
    "EchoNumbers",
    "EchoTime",
    "TemporalPositionIdentifier",
    "TriggerTime",
    "AcquisitionNumber",
    "AcquisitionTime",
    "ImageType",
    "StackID",
    "TemporalPositionIndex",
    "DimensionIndexValues",
)


@dataclass
class Header:
    """A DICOM image file's header (everything before the pixel data)."""

    name: str  # what error messages call it
    path: Path | None  # None for in-memory bytes
    raw: bytes | None  # the bytes of an in-memory file
    ds: Dataset
    pixel_kind: str  # "int", "float32" or "float64"
    forced: bool  # read without the 128-byte preamble and "DICM" prefix

    @property
    def n_frames(self) -> int:
        return int(self.ds.get("NumberOfFrames") or 1)

    @property
    def transfer_syntax(self) -> UID:
        meta = getattr(self.ds, "file_meta", None)
        uid = None if meta is None else meta.get("TransferSyntaxUID")
        if uid:
            return UID(uid)
        # A file without file meta: pydicom has told us how it was encoded.
        implicit, little = self.ds.original_encoding
        if implicit:
            return pydicom.uid.ImplicitVRLittleEndian
        return pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian


@dataclass
class Frame:
    """One 2D image: a single-frame file, or one frame of a multi-frame file."""

    header: int  # index into the series' headers
    index: int  # frame number within the file (0 for single-frame files)
    label: str  # file name, plus the frame number for multi-frame files
    position: np.ndarray  # (3,) ImagePositionPatient, LPS mm
    orientation: np.ndarray  # (6,) ImageOrientationPatient
    spacing: np.ndarray  # (2,) PixelSpacing: between rows, between columns
    shape: tuple[int, int]  # (rows, cols)
    slope: float
    intercept: float
    tags: dict[str, str]  # distinguishing attributes, for duplicate messages


def _floats(value: Any, n: int, what: str, label: str, where: str) -> np.ndarray:
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        out = np.empty(0)
    if value is None or out.shape != (n,) or not np.all(np.isfinite(out)):
        raise VolumeReadError(
            f"{label}: {what} is missing or invalid ({value!r}); the image cannot be placed "
            "in space",
            path=where,
        )
    return out


def _in_group(item: Dataset, shared: Dataset, sequence: str, keyword: str) -> Any:
    for group in (item, shared):
        seq = group.get(sequence)
        if seq:
            value = seq[0].get(keyword)
            if value not in (None, ""):
                return value
    return None


def _tags(ds: Dataset) -> dict[str, str]:
    return {k: str(ds.get(k)) for k in _DISTINGUISHERS if ds.get(k) not in (None, "")}


# Where enhanced multi-frame files keep each attribute (per frame, or shared by all).
_GROUP_OF = {
    "ImagePositionPatient": "PlanePositionSequence",
    "ImageOrientationPatient": "PlaneOrientationSequence",
    "PixelSpacing": "PixelMeasuresSequence",
    "RescaleSlope": "PixelValueTransformationSequence",
    "RescaleIntercept": "PixelValueTransformationSequence",
}


def _functional_group(item: Dataset, shared: Dataset, keyword: str) -> Any:
    return _in_group(item, shared, _GROUP_OF[keyword], keyword)


def _frame(
    header: int,
    index: int,
    label: str,
    shape: tuple[int, int],
    tags: dict[str, str],
    get: Callable[[str], Any],
    where: str,
) -> Frame:
    position, orientation, spacing = (
        _floats(get(keyword), n, keyword, label, where)
        for keyword, n in (
            ("ImagePositionPatient", 3),
            ("ImageOrientationPatient", 6),
            ("PixelSpacing", 2),
        )
    )
    slope, intercept = get("RescaleSlope"), get("RescaleIntercept")
    return Frame(
        header=header,
        index=index,
        label=label,
        position=position,
        orientation=orientation,
        spacing=spacing,
        shape=shape,
        slope=1.0 if slope in (None, "") else float(slope),
        intercept=0.0 if intercept in (None, "") else float(intercept),
        tags=tags,
    )


def frames_of(header: Header, h: int, where: str) -> list[Frame]:
    ds = header.ds
    shape = (int(ds.Rows), int(ds.Columns))
    if int(ds.get("SamplesPerPixel") or 1) != 1:
        raise UnsupportedFormatError(
            f"colour image (SamplesPerPixel={ds.SamplesPerPixel}, "
            f"{ds.get('PhotometricInterpretation')}): only greyscale images form volumes",
            path=header.path or header.name,
        )
    if "MOSAIC" in [str(v).upper() for v in (ds.get("ImageType") or [])]:
        raise UnsupportedFormatError(
            "Siemens mosaic image (ImageType MOSAIC): its slices are tiled in one 2D image; "
            "convert it with dcm2niix or nibabel.nicom first",
            path=header.path or header.name,
        )
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        if header.n_frames > 1:
            raise UnsupportedFormatError(
                f"multi-frame file ({header.n_frames} frames) without per-frame functional "
                "groups: the frames have no positions",
                path=header.path or header.name,
            )
        return [_frame(h, 0, header.name, shape, _tags(ds), ds.get, where)]
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else Dataset()
    if len(per_frame) != header.n_frames:
        raise VolumeReadError(
            f"NumberOfFrames={header.n_frames} but {len(per_frame)} per-frame functional groups",
            path=header.path or header.name,
        )
    frames = []
    for f, item in enumerate(per_frame):
        content = item.get("FrameContentSequence")
        tags = _tags(content[0]) if content else {}
        echo = _in_group(item, shared, "MREchoSequence", "EffectiveEchoTime")
        if echo is not None:
            tags["EffectiveEchoTime"] = str(echo)
        get = partial(_functional_group, item, shared)
        frames.append(_frame(h, f, f"{header.name} frame {f + 1}", shape, tags, get, where))
    return frames


def _check_same(
    frames: list[Frame], values: np.ndarray, bad: np.ndarray, what: str, where: str
) -> None:
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    n_bad = int(bad.sum())
    raise DicomSeriesError(
        f"slices differ in {what}: {values[0].tolist()} in {frames[0].label} but "
        f"{values[first].tolist()} in {frames[first].label} ({n_bad} of {len(frames)} images "
        "differ); a series must be one stack of parallel, identical slices "
        "(pass series_uid= of a volume series, or split this one)",
        path=where,
    )


@dataclass
class Stack:
    order: np.ndarray  # frame indices in slice order
    affine_lps: np.ndarray  # (4, 4)
    step_mm: float
    step_source: str


def stack_frames(frames: list[Frame], headers: list[Header], where: str, tol: float) -> Stack:
    shapes = np.array([f.shape for f in frames])
    _check_same(frames, shapes, np.any(shapes != shapes[0], axis=1), "size (Rows, Columns)", where)
    iop = np.array([f.orientation for f in frames])
    bad = np.any(np.abs(iop - iop[0]) > _IOP_ATOL, axis=1)
    _check_same(frames, iop, bad, "orientation (ImageOrientationPatient)", where)
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
    normal = np.cross(row, col)
    positions = np.array([f.position for f in frames])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    gaps = np.diff(along)
    label = [frames[i].label for i in order]

    if len(frames) == 1:
        ds = headers[0].ds
        step, source = _single_slice_step(ds)
        step_vector = normal * step
    else:
        positive = gaps[gaps > _DUPLICATE_MM]
        typical = float(np.median(positive)) if positive.size else 0.0
        duplicate = gaps <= max(_DUPLICATE_MM, tol * typical)
        if duplicate.any():
            _refuse_duplicates(frames, order, along, duplicate, where)
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

    affine = np.eye(4)
    affine[:3, 0] = row * ps[0, 1]
    affine[:3, 1] = col * ps[0, 0]
    affine[:3, 2] = step_vector
    affine[:3, 3] = positions[0]
    return Stack(order, affine, float(step), source)


def _single_slice_step(ds: Dataset) -> tuple[float, str]:
    for keyword in ("SliceThickness", "SpacingBetweenSlices"):
        value = ds.get(keyword)
        if value in (None, ""):
            seq = ds.get("SharedFunctionalGroupsSequence")
            value = _in_group(seq[0], Dataset(), "PixelMeasuresSequence", keyword) if seq else None
        try:
            step = float(value) if value not in (None, "") else 0.0
        except (TypeError, ValueError):
            step = 0.0
        if step > 0 and np.isfinite(step):
            return step, keyword
    return 1.0, "default 1 mm"


def _refuse_duplicates(
    frames: list[Frame], order: np.ndarray, along: np.ndarray, duplicate: np.ndarray, where: str
) -> None:
    k = int(np.flatnonzero(duplicate)[0])
    at = along[k]
    same = [
        frames[order[i]] for i in range(len(order)) if abs(along[i] - at) <= abs(along[k + 1] - at)
    ]
    differing = sorted(
        {key for f in same for key in f.tags if f.tags.get(key) != same[0].tags.get(key)}
    )
    if differing:
        detail = ", ".join(
            f"{key} ({', '.join(sorted({f.tags.get(key, '-') for f in same}))})"
            for key in differing
        )
        why = f"they differ in {detail}, so the series holds several volumes"
    else:
        why = "no attribute tells them apart: a file was probably copied twice"
    names = ", ".join(f.label for f in same[:6]) + (" …" if len(same) > 6 else "")
    raise DicomSeriesError(
        f"{len(same)} images share a slice position ({at:.4f} mm along the slice "
        f"normal), e.g. {names}; {why}. brrrr reads one 3D volume per series: split the series "
        "(e.g. with dcm2niix) or remove the extra files",
        path=where,
    )
