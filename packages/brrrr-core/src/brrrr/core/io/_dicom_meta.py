"""The JSON-serialisable metadata of a volume read from DICOM.

Series-level facts come from the first file (modality, scanner, timing in seconds…).
A 4-D series adds, per volume (one entry per channel ``c``), the identifiers that
tell its volumes apart and the diffusion encoding:

* ``n_volumes``, ``volume_keys`` (e.g. ``["EchoNumbers"]``, ``["AcquisitionNumber"]``);
* ``echo_numbers``, ``echo_times_s``, ``inversion_times_s``, ``flip_angles_deg``,
  ``repetition_times_s``, ``temporal_positions``, ``trigger_times_s``,
  ``acquisition_numbers``, ``image_types`` where they are known;
* ``b_values`` (s/mm²) and ``b_vectors``: unit gradient directions in the *image
  frame*, the components along the volume's voxel axes ``i``, ``j``, ``k`` (FSL's
  ``bvecs`` are these with ``i`` negated when the affine's determinant is positive).

A single diffusion volume has ``b_value`` and ``b_vector`` instead. Diffusion fields
appear when a b-value is non-zero, differs between volumes, or the series says it is
diffusion (``DIFFUSION`` in ``ImageType``, the standard diffusion attributes): Philips
writes a b-value of 0 into the private header of every MR image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from brrrr.core.io._dicom_frames import Frame, Header
from brrrr.core.io._dicom_group import Plan

__all__ = ["jsonable", "series_metadata"]

# identifier -> (metadata key of the per-volume list, factor to SI units)
_PER_VOLUME = {
    "EchoNumbers": ("echo_numbers", None),
    "EchoTime": ("echo_times_s", 1e-3),
    "InversionTime": ("inversion_times_s", 1e-3),
    "FlipAngle": ("flip_angles_deg", 1.0),
    "RepetitionTime": ("repetition_times_s", 1e-3),
    "TemporalPosition": ("temporal_positions", None),
    "TriggerTime": ("trigger_times_s", 1e-3),
    "AcquisitionNumber": ("acquisition_numbers", None),
    "ImageType": ("image_types", None),
    "ComplexImageComponent": ("complex_components", None),
    "StackID": ("stack_ids", None),
}
_FIELDS: dict[str, tuple[str, ...]] = {
    "manufacturer": ("Manufacturer",),
    "manufacturer_model": ("ManufacturerModelName",),
    "sop_class_uid": ("SOPClassUID",),
    "study_uid": ("StudyInstanceUID",),
    "series_number": ("SeriesNumber",),
    "protocol_name": ("ProtocolName",),
    "body_part": ("BodyPartExamined",),
    "patient_position": ("PatientPosition",),
    "image_type": ("ImageType",),
    "photometric_interpretation": ("PhotometricInterpretation",),
    "bits_stored": ("BitsStored",),
    "rescale_type": ("RescaleType",),
    "slice_thickness_mm": ("SliceThickness",),
    "magnetic_field_strength_t": ("MagneticFieldStrength",),
    "flip_angle_deg": ("FlipAngle",),
    "kvp": ("KVP",),
}
_TIMINGS: dict[str, tuple[str, ...]] = {
    "repetition_time_s": ("RepetitionTime",),
    "echo_time_s": ("EchoTime", "EffectiveEchoTime"),
    "inversion_time_s": ("InversionTime", "InversionTimes"),
}
_TIMING_KEYS = {
    "repetition_time_s": "RepetitionTime",
    "echo_time_s": "EchoTime",
    "inversion_time_s": "InversionTime",
}


def jsonable(value: Any) -> Any:
    """A header value as plain JSON types (lists, floats, ints, strings)."""
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float | pydicom.valuerep.DSfloat | pydicom.valuerep.DSdecimal):
        return float(value)
    if isinstance(value, int):
        return int(value)
    return str(value)


def _lookup(ds: Dataset, *keywords: str) -> Any:
    """A value at the top level, else in the first item of a functional group."""
    for keyword in keywords:
        if ds.get(keyword) not in (None, ""):
            return ds.get(keyword)
    groups = [
        s[0]
        for s in (
            ds.get("SharedFunctionalGroupsSequence"),
            ds.get("PerFrameFunctionalGroupsSequence"),
        )
        if s
    ]
    for group in groups:
        for element in group:
            if element.VR == "SQ" and element.value:
                for keyword in keywords:
                    value = element.value[0].get(keyword)
                    if value not in (None, ""):
                        return value
    return None


def _one_or_all(values: list[float]) -> float | list[float]:
    return values[0] if len(set(values)) == 1 else values


def _image_frame(vector: Any, affine_lps: np.ndarray) -> list[float]:
    axes = affine_lps[:3, :3].copy()
    axes[:, 2] = np.cross(axes[:, 0], axes[:, 1])  # k follows the slice normal
    axes /= np.linalg.norm(axes, axis=0)
    return [round(float(v), 6) for v in axes.T @ np.asarray(vector, dtype=np.float64)]


def _is_diffusion(ds: Dataset) -> bool:
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    return "DIFFUSION" in image_type or "DiffusionBValue" in ds or "MRDiffusionSequence" in ds


def _diffusion(meta: dict[str, Any], plan: Plan, ds: Dataset) -> None:
    values = plan.values
    bs = [v.get("DiffusionBValue") for v in values]
    if all(b is None for b in bs):
        return
    if not any(bs) and "DiffusionBValue" not in plan.keys and not _is_diffusion(ds):
        return  # b = 0 in a vendor's private tag of a series that is not diffusion
    gs = [v.get("DiffusionGradient") for v in values]
    vectors = [None if g is None else _image_frame(g, plan.stack.affine_lps) for g in gs]
    if len(values) == 1:
        meta["b_value"], meta["b_vector"] = bs[0], vectors[0]
    else:
        meta["b_values"], meta["b_vectors"] = bs, vectors


def series_metadata(
    headers: Sequence[Header],
    frames: Sequence[Frame],
    plan: Plan,
    *,
    series_uid: str,
    philips_scaling: str,
) -> dict[str, Any]:
    """The metadata of one read (module docstring)."""
    first = headers[frames[plan.volumes[0][0]].header]  # of the first volume read
    ds = first.ds
    uid = first.transfer_syntax
    used = [frames[i] for volume in plan.volumes for i in volume]
    meta: dict[str, Any] = {
        "format": "dicom",
        "modality": str(ds.get("Modality") or ""),
        "series_uid": series_uid,
        "series_description": str(ds.get("SeriesDescription") or ""),
        "n_files": len({f.header for f in used}),
        "n_slices": len(plan.volumes[0]),
        "enhanced": "PerFrameFunctionalGroupsSequence" in ds,
        "mosaic": first.mosaic is not None,
        "rescale_slope": _one_or_all([f.slope for f in used]),
        "rescale_intercept": _one_or_all([f.intercept for f in used]),
        "slice_step_mm": plan.stack.step_mm,
        "slice_step_source": plan.stack.step_source,
        "transfer_syntax": str(uid),
        "transfer_syntax_name": uid.name,
    }
    if first.samples == 3:
        meta["channels"] = "RGB"
    scales = [f.philips_scale for f in used if f.philips_scale is not None]
    if scales:
        meta["philips_scaling"] = philips_scaling
        meta["philips_scale_slope"] = _one_or_all(scales)
    for key, keywords in _FIELDS.items():
        value = _lookup(ds, *keywords)
        if value not in (None, ""):
            meta[key] = jsonable(value)
    keys = frames[plan.volumes[0][0]].keys
    for key, keywords in _TIMINGS.items():
        # The first image read says it best (per-frame groups, one echo of several).
        value = keys.get(_TIMING_KEYS[key])
        if value is None:
            value = _lookup(ds, *keywords)
        if isinstance(value, pydicom.multival.MultiValue | list):
            value = value[0] if value else None
        try:
            if value not in (None, ""):
                meta[key] = float(value) / 1000.0  # DICOM stores milliseconds
        except (TypeError, ValueError):
            pass
    mosaic = first.mosaic
    if mosaic is not None and mosaic.slice_times_s is not None:
        tiles = [frames[i].tile for i in plan.volumes[0]]
        meta["slice_times_s"] = [mosaic.slice_times_s[t] for t in tiles if t is not None]
    if len(plan.volumes) > 1:
        meta["n_volumes"] = len(plan.volumes)
        meta["volume_keys"] = list(plan.keys)
        for name, (key, factor) in _PER_VOLUME.items():
            column = [v.get(name) for v in plan.values]
            if all(c is None for c in column):
                continue
            if name not in plan.keys and name != "EchoTime" and len(set(column)) == 1:
                continue  # the same for every volume: the series-level field says it
            if factor is not None:
                column = [None if c is None else float(c) * factor for c in column]
            elif name not in ("ImageType", "ComplexImageComponent", "StackID"):
                column = [None if c is None else int(c) for c in column]
            meta[key] = column
    _diffusion(meta, plan, ds)
    return meta
