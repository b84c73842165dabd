"""The 2D images of one DICOM file: where each sits, how it is scaled, what tells it apart.

A file holds one image (classic single-frame), several (enhanced multi-frame, with
per-frame functional groups), or a Siemens mosaic whose tiles are the slices of a
volume (:mod:`brrrr.core.io._dicom_mosaic`). :func:`frames_of` turns any of them into
:class:`Frame` objects that carry:

* the geometry: position, orientation, pixel spacing, size;
* the rescale to apply (``RescaleSlope``/``RescaleIntercept``, or Philips' precise
  floating-point scale, see :func:`frames_of`);
* the *identifiers* that tell apart images sharing one slice position: echo number and
  time, inversion time, flip angle, repetition time, temporal position, trigger time,
  acquisition number, b-value and gradient direction, image type, complex component,
  stack. :mod:`brrrr.core.io._dicom_group` groups frames into volumes by them.

Diffusion b-values and gradient directions (patient frame, LPS) are read from the
standard attributes (``DiffusionBValue``, ``DiffusionGradientOrientation``, also in an
``MRDiffusionSequence``), else from Siemens (0019,100C/100E or the CSA header), Philips
(2001,1003, b-value only) and GE (0043,1039, b-value only) private tags.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from brrrr.core.errors import UnsupportedFormatError, VolumeReadError
from brrrr.core.io._dicom_mosaic import (
    MosaicLayout,
    csa_image_header,
    csa_value,
    is_mosaic,
    mosaic_layout,
)

__all__ = ["IDENTIFIERS", "Frame", "Header", "PhilipsScaling", "frames_of", "private_value"]

PhilipsScaling = Literal["display", "precise"]

#: Attributes that tell apart images sharing one slice position, in the order used to
#: group and sort volumes.
IDENTIFIERS = (
    "EchoNumbers",
    "EchoTime",
    "InversionTime",
    "FlipAngle",
    "RepetitionTime",
    "TemporalPosition",
    "TriggerTime",
    "AcquisitionNumber",
    "DiffusionBValue",
    "DiffusionGradient",
    "ImageType",
    "ComplexImageComponent",
    "StackID",
)
_PHILIPS_MR = "Philips MR Imaging DD 001"


@dataclass
class Header:
    """A DICOM image file's header (everything before the pixel data)."""

    name: str  # what error messages call it
    path: Path | None  # None for in-memory bytes
    raw: bytes | None  # the bytes of an in-memory file
    ds: Dataset
    pixel_kind: str  # "int", "float32" or "float64"
    forced: bool  # read without the 128-byte preamble and "DICM" prefix
    gzipped: bool = False  # ``path`` is a gzip file holding the DICOM file
    mosaic: MosaicLayout | None = field(default=None, repr=False)

    @property
    def where(self) -> str | Path:
        """The file to name in an error message."""
        return self.path if self.path is not None else self.name

    @property
    def n_frames(self) -> int:
        return int(self.ds.get("NumberOfFrames") or 1)

    @property
    def samples(self) -> int:
        return int(self.ds.get("SamplesPerPixel") or 1)

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
    """One 2D image: a single-frame file, a frame of a multi-frame file, or a mosaic tile."""

    header: int  # index into the series' headers
    index: int  # frame number within the file (0 for single-frame files)
    tile: int | None  # mosaic tile number, None outside mosaics
    label: str  # file name, plus the frame or tile number
    position: np.ndarray  # (3,) ImagePositionPatient, LPS mm
    orientation: np.ndarray  # (6,) ImageOrientationPatient
    spacing: np.ndarray  # (2,) PixelSpacing: between rows, between columns
    shape: tuple[int, int]  # (rows, cols)
    slope: float
    intercept: float
    keys: dict[str, Any]  # IDENTIFIERS present on this image (hashable values)
    instance: float  # InstanceNumber (frame number in multi-frame files), for ordering
    time: str  # AcquisitionTime (FrameAcquisitionDateTime), for ordering
    sop_uid: str  # SOPInstanceUID, plus the frame or tile number
    philips_scale: float | None = None  # Philips (2005,100E) scale slope, when present


def _first(value: Any) -> Any:
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return value[0] if len(value) else None
    return value


def _number(value: Any) -> float | None:
    value = _first(value)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def private_value(ds: Dataset, group: int, offset: int, creator: str) -> Any:
    """A private element's value (bytes of an unknown VR decoded), or ``None``."""
    try:
        element = ds.get_private_item(group, offset, creator)
    except (KeyError, ValueError):
        return None
    value = element.value
    if isinstance(value, bytes):
        from pydicom.datadict import private_dictionary_VR

        try:
            vr = private_dictionary_VR(element.tag, creator)
        except KeyError:
            return None
        little = ds.original_encoding[1] is not False
        if vr in ("FL", "FD") and len(value) % (4 if vr == "FL" else 8) == 0:
            dtype = np.dtype(("<" if little else ">") + ("f4" if vr == "FL" else "f8"))
            floats = np.frombuffer(value, dtype=dtype).tolist()
            return floats[0] if len(floats) == 1 else floats
        if vr in ("IS", "DS"):
            parts = value.decode("ascii", "replace").strip("\x00 ").split("\\")
            return parts[0] if len(parts) == 1 else parts
        return None
    return value


def _gradient(value: Any) -> tuple[float, float, float] | None:
    try:
        vector = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if vector.shape != (3,) or not np.all(np.isfinite(vector)):
        return None
    norm = float(np.linalg.norm(vector))
    if norm > 0:
        vector = vector / norm
    return (round(float(vector[0]), 4), round(float(vector[1]), 4), round(float(vector[2]), 4))


def _diffusion_from(ds: Dataset | None) -> tuple[float | None, Any]:
    if ds is None:
        return None, None
    b, g = _number(ds.get("DiffusionBValue")), ds.get("DiffusionGradientOrientation")
    seq = ds.get("DiffusionGradientDirectionSequence")
    if g is None and seq:
        g = seq[0].get("DiffusionGradientOrientation")
    return b, g


def _classic_diffusion(ds: Dataset, csa: dict[str, Any] | None) -> tuple[float | None, Any]:
    b, g = _diffusion_from(ds)
    if b is None and ds.get("MRDiffusionSequence"):
        b, g = _diffusion_from(ds.MRDiffusionSequence[0])
    if b is None:
        b = _number(private_value(ds, 0x0019, 0x0C, "SIEMENS MR HEADER"))
        g = private_value(ds, 0x0019, 0x0E, "SIEMENS MR HEADER") if b is not None else g
    if b is None and csa is not None:
        b = _number(csa_value(csa, "B_value"))
        g = csa_value(csa, "DiffusionGradientDirection", 3) if b is not None else g
    if b is None:
        b = _number(private_value(ds, 0x2001, 0x03, "Philips Imaging DD 001"))
    if b is None:
        ge = _number(private_value(ds, 0x0043, 0x39, "GEMS_PARM_01"))
        b = None if ge is None else ge % 1e9  # GE adds 1e9 to flag some b-values
    return b, g


def _put_diffusion(keys: dict[str, Any], b: float | None, g: Any) -> None:
    if b is None:
        return
    keys["DiffusionBValue"] = b
    vector = None if g is None else _gradient(g)
    if vector is None and b == 0:
        vector = (0.0, 0.0, 0.0)
    if vector is not None:
        keys["DiffusionGradient"] = vector


def _put(keys: dict[str, Any], name: str, value: Any, *, text: bool = False) -> None:
    if text:
        if value not in (None, "") and (not isinstance(value, list) or value):
            keys[name] = (
                "\\".join(str(v) for v in value)
                if isinstance(value, pydicom.multival.MultiValue | list | tuple)
                else str(value)
            )
        return
    number = _number(value)
    if number is not None:
        keys[name] = number


def _classic_keys(ds: Dataset, csa: dict[str, Any] | None) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for name, keyword in (
        ("EchoNumbers", "EchoNumbers"),
        ("EchoTime", "EchoTime"),
        ("InversionTime", "InversionTime"),
        ("FlipAngle", "FlipAngle"),
        ("RepetitionTime", "RepetitionTime"),
        ("TemporalPosition", "TemporalPositionIdentifier"),
        ("TriggerTime", "TriggerTime"),
        ("AcquisitionNumber", "AcquisitionNumber"),
    ):
        _put(keys, name, ds.get(keyword))
    _put_diffusion(keys, *_classic_diffusion(ds, csa))
    _put(keys, "ImageType", ds.get("ImageType"), text=True)
    return keys


def _in_group(item: Dataset, shared: Dataset, sequence: str, keyword: str) -> Any:
    for group in (item, shared):
        seq = group.get(sequence)
        if seq:
            value = seq[0].get(keyword)
            if value not in (None, ""):
                return value
    return None


def _enhanced_keys(item: Dataset, shared: Dataset) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    content = item.get("FrameContentSequence")
    content_item = content[0] if content else Dataset()
    get = _in_group
    _put(keys, "EchoTime", get(item, shared, "MREchoSequence", "EffectiveEchoTime"))
    _put(keys, "InversionTime", get(item, shared, "MRModifierSequence", "InversionTimes"))
    timing = "MRTimingAndRelatedParametersSequence"
    _put(keys, "FlipAngle", get(item, shared, timing, "FlipAngle"))
    _put(keys, "RepetitionTime", get(item, shared, timing, "RepetitionTime"))
    _put(keys, "TemporalPosition", content_item.get("TemporalPositionIndex"))
    cardiac = "CardiacSynchronizationSequence"
    _put(keys, "TriggerTime", get(item, shared, cardiac, "NominalCardiacTriggerDelayTime"))
    _put(keys, "AcquisitionNumber", content_item.get("FrameAcquisitionNumber"))
    diffusion = None
    for group in (item, shared):
        if group.get("MRDiffusionSequence"):
            diffusion = group.MRDiffusionSequence[0]
            break
    _put_diffusion(keys, *_diffusion_from(diffusion))
    for frame_type in ("MRImageFrameTypeSequence", "CTImageFrameTypeSequence"):
        _put(keys, "ImageType", get(item, shared, frame_type, "FrameType"), text=True)
        _put(
            keys,
            "ComplexImageComponent",
            get(item, shared, frame_type, "ComplexImageComponent"),
            text=True,
        )
    _put(keys, "StackID", content_item.get("StackID"), text=True)
    return keys


def _philips_scale(*datasets: Dataset) -> float | None:
    """Philips' MR scale slope (2005,100E) in a data set or its private sequences."""
    for ds in datasets:
        value = _number(private_value(ds, 0x2005, 0x0E, _PHILIPS_MR))
        if value is not None:
            return value
        for element in ds:
            if element.VR == "SQ" and element.tag.is_private and element.value:
                value = _number(private_value(element.value[0], 0x2005, 0x0E, _PHILIPS_MR))
                if value is not None:
                    return value
    return None


def _floats(value: Any, n: int, what: str, label: str, where: str | Path) -> np.ndarray:
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


# Where enhanced multi-frame files keep each attribute (per frame, or shared by all).
_GROUP_OF = {
    "ImagePositionPatient": "PlanePositionSequence",
    "ImageOrientationPatient": "PlaneOrientationSequence",
    "PixelSpacing": "PixelMeasuresSequence",
    "RescaleSlope": "PixelValueTransformationSequence",
    "RescaleIntercept": "PixelValueTransformationSequence",
}


def _scale(
    get: Callable[[str], Any], philips: float | None, mode: PhilipsScaling, label: str, where: Any
) -> tuple[float, float]:
    slope = _number(get("RescaleSlope"))
    intercept = _number(get("RescaleIntercept"))
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    if mode == "display":
        return slope, intercept
    if philips is None or philips == 0 or slope == 0:
        raise VolumeReadError(
            f"{label}: philips_scaling='precise' needs Philips' private scale slope (2005,100E, "
            f"{_PHILIPS_MR!r}) and a non-zero RescaleSlope; found {philips!r} and {slope!r}. "
            "Read it with philips_scaling='display' (the rescale the scanner displays)",
            path=where,
        )
    # Philips: displayed = stored * RS + RI; precise = displayed / (RS * SS).
    return 1.0 / philips, intercept / (slope * philips)


def frames_of(
    header: Header, h: int, where: str, *, philips_scaling: PhilipsScaling = "display"
) -> list[Frame]:
    """The 2D images of one file.

    With ``philips_scaling="precise"`` every image is scaled to Philips' floating-point
    value ``(stored × RescaleSlope + RescaleIntercept) / (RescaleSlope × SS)``, with
    ``SS`` the private MR scale slope (2005,100E); ``"display"`` applies
    ``RescaleSlope``/``RescaleIntercept`` only.

    Raises:
        UnsupportedFormatError: Pixels with 2 or 4 samples, or a multi-frame file
            without per-frame functional groups.
        VolumeReadError: Missing geometry, a damaged mosaic, or ``"precise"`` scaling
            of a file without Philips' scale slope.
    """
    ds = header.ds
    shape = (int(ds.Rows), int(ds.Columns))
    if header.samples not in (1, 3):
        raise UnsupportedFormatError(
            f"image with SamplesPerPixel={header.samples} "
            f"({ds.get('PhotometricInterpretation')}): only greyscale and RGB images are read",
            path=header.where,
        )
    uid = str(ds.get("SOPInstanceUID") or header.name)
    instance = _number(ds.get("InstanceNumber"))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        if header.n_frames > 1:
            raise UnsupportedFormatError(
                f"multi-frame file ({header.n_frames} frames) without per-frame functional "
                "groups: the frames have no positions",
                path=header.where,
            )
        csa = csa_image_header(ds) if "SIEMENS" in str(ds.get("Manufacturer", "")).upper() else None
        keys = _classic_keys(ds, csa)
        philips = _philips_scale(ds)
        slope, intercept = _scale(ds.get, philips, philips_scaling, header.name, header.where)
        geometry = [
            _floats(ds.get(keyword), n, keyword, header.name, where)
            for keyword, n in (
                ("ImagePositionPatient", 3),
                ("ImageOrientationPatient", 6),
                ("PixelSpacing", 2),
            )
        ]
        common: dict[str, Any] = {
            "header": h,
            "index": 0,
            "orientation": geometry[1],
            "spacing": geometry[2],
            "slope": slope,
            "intercept": intercept,
            "keys": keys,
            "instance": math.inf if instance is None else instance,
            "time": str(ds.get("AcquisitionTime") or ds.get("ContentTime") or ""),
            "philips_scale": philips,
        }
        if not is_mosaic(ds):
            frame = Frame(
                tile=None,
                label=header.name,
                position=geometry[0],
                shape=shape,
                sop_uid=uid,
                **common,
            )
            return [frame]
        layout = mosaic_layout(
            ds,
            csa if csa is not None else csa_image_header(ds),
            position=geometry[0],
            orientation=geometry[1],
            spacing=geometry[2],
            name=str(header.where),
        )
        header.mosaic = layout
        return [
            Frame(
                tile=t,
                label=f"{header.name} tile {t + 1}",
                position=layout.positions[t],
                shape=layout.shape,
                sop_uid=f"{uid}#{t}",
                **common,
            )
            for t in range(layout.n_tiles)
        ]
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else Dataset()
    if len(per_frame) != header.n_frames:
        raise VolumeReadError(
            f"NumberOfFrames={header.n_frames} but {len(per_frame)} per-frame functional groups",
            path=header.where,
        )
    frames = []
    for f, item in enumerate(per_frame):
        label = f"{header.name} frame {f + 1}"

        def get(keyword: str, item: Dataset = item) -> Any:
            return _in_group(item, shared, _GROUP_OF[keyword], keyword)

        position, orientation, spacing = (
            _floats(get(keyword), n, keyword, label, where)
            for keyword, n in (
                ("ImagePositionPatient", 3),
                ("ImageOrientationPatient", 6),
                ("PixelSpacing", 2),
            )
        )
        philips = _philips_scale(item, shared)
        slope, intercept = _scale(get, philips, philips_scaling, label, header.where)
        content = item.get("FrameContentSequence")
        time = str(content[0].get("FrameAcquisitionDateTime") or "") if content else ""
        frames.append(
            Frame(
                header=h,
                index=f,
                tile=None,
                label=label,
                position=position,
                orientation=orientation,
                spacing=spacing,
                shape=shape,
                slope=slope,
                intercept=intercept,
                keys=_enhanced_keys(item, shared),
                instance=float(f),
                time=time,
                sop_uid=f"{uid}#{f}",
                philips_scale=philips,
            )
        )
    return frames
