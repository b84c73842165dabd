"""Read a DICOM file, or one series from a folder of DICOM files, into a `Volume`.

pydicom parses the headers and decodes the pixels; this module finds the files and
series, decodes and rescales the pixels, and gathers the metadata. Sorting the
slices in space, checking that they form one regular stack and building the affine
live in :mod:`brrrr.core.io._dicom_stack`.

Layout of the returned volume (shape ``(I, J, K)``):

* ``i`` is the column index of a DICOM image (along ``ImageOrientationPatient[0:3]``),
* ``j`` is the row index (along ``ImageOrientationPatient[3:6]``),
* ``k`` is the slice, increasing along the slice normal ``IOP[0:3] × IOP[3:6]``.

Slices are ordered by their position along that normal, never by file name or
``InstanceNumber``. The affine maps ``(i, j, k)`` to RAS+ mm (DICOM's LPS with x
and y negated). The array is the decoded frames stacked as ``(K, rows, cols)``
and viewed as ``(cols, rows, K)``: Fortran-ordered, the layout NIfTI uses on disk.

Rescaling (``RescaleSlope``/``RescaleIntercept``) is applied. The dtype depends on
the headers only, never on the voxel values:

* integer pixels with one integral slope and intercept for the whole series give the
  smallest integer dtype (unsigned when possible) that holds every rescaled value the
  header allows (``BitsStored``/``PixelRepresentation``); with slope 1 and intercept 0
  that is the stored dtype (CT stored as unsigned 12 bits with intercept -1024 gives
  int16, stored as signed 16 bits it gives int32);
* anything else (a fractional slope or intercept, values that differ between slices,
  float pixel data) gives float32.

A series must be one 3D stack: duplicated slice positions (several time points,
echoes or acquisitions in one series), a missing slice, uneven spacing, or slices
that differ in orientation, size or pixel spacing raise `DicomSeriesError`.

Example:
    >>> from brrrr.core.io.dicom import list_series, read_dicom
    >>> [s.series_uid for s in list_series("dicom_folder")]  # doctest: +SKIP
    >>> vol = read_dicom("dicom_folder", series_uid="1.2.840.1234")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from brrrr.core.errors import (
    DicomSeriesError,
    UnsupportedFormatError,
    VolumeReadError,
    VolumeTooLargeError,
)
from brrrr.core.io._dicom_stack import Frame, Header, Stack, frames_of, stack_frames
from brrrr.core.volume import Volume

__all__ = ["DicomSeries", "list_series", "read_dicom"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# The tags pydicom stops before (Pixel Data, Float and Double Float Pixel Data),
# as the 4 bytes that start the element in little and big endian files.
_PIXEL_TAGS = {
    b"\xe0\x7f\x10\x00": "int",
    b"\xe0\x7f\x08\x00": "float32",
    b"\xe0\x7f\x09\x00": "float64",
    b"\x7f\xe0\x00\x10": "int",
    b"\x7f\xe0\x00\x08": "float32",
    b"\x7f\xe0\x00\x09": "float64",
}
# Storage classes that carry pixel data although their name lacks "Image".
_PIXEL_CLASSES = {"RT Dose Storage", "Segmentation Storage", "Parametric Map Storage"}
_NOT_DICOM = "not a DICOM image: no 'DICM' prefix at byte 128 and no readable image header"


@dataclass(frozen=True)
class DicomSeries:
    """One image series found in a folder (from the headers only).

    Attributes:
        series_uid: ``SeriesInstanceUID`` (``""`` when the files have none).
        description: ``SeriesDescription`` (``""`` when absent).
        modality: ``Modality`` (``"MR"``, ``"CT"``…).
        n_files: Number of files in the series.
        files: The files, sorted by path (not in spatial order).
        rows: ``Rows`` of the first file (pixels along ``j``).
        cols: ``Columns`` of the first file (pixels along ``i``).
        enhanced: Whether the files are enhanced multi-frame (per-frame functional groups).
        n_frames: Number of 2D images (slices) over all files.
        series_number: ``SeriesNumber``, if any.
    """

    series_uid: str
    description: str
    modality: str
    n_files: int
    files: tuple[Path, ...]
    rows: int
    cols: int
    enhanced: bool
    n_frames: int
    series_number: int | None


# -- headers --------------------------------------------------------------------------


def _read_header(
    fp: BinaryIO, name: str, path: Path | None, raw: bytes | None, *, single: bool
) -> Header | None:
    """Parse a header; None for a file that is not DICOM or a DICOM object with no image.

    A single file given on purpose may lack the preamble (``single=True``); a scanned
    folder is strict so that a README or a NIfTI is never parsed as DICOM.
    """
    forced = False
    ds: Dataset
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=False)
    except InvalidDicomError:
        if not single:
            return None
        fp.seek(0)
        forced = True
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
        except Exception:
            raise UnsupportedFormatError(_NOT_DICOM, path=name) from None
    except Exception as exc:
        raise VolumeReadError(
            f"cannot parse the DICOM header ({type(exc).__name__}: {exc}); the file is "
            "probably truncated or corrupt",
            path=name,
        ) from None
    pixel_kind = _PIXEL_TAGS.get(fp.read(4))
    has_grid = "Rows" in ds and "Columns" in ds
    if has_grid and pixel_kind is not None:
        return Header(name, path, raw, ds, pixel_kind, forced)
    if forced:
        raise UnsupportedFormatError(_NOT_DICOM, path=name)
    if has_grid:
        raise VolumeReadError(
            "the header describes an image (Rows, Columns) but the file ends before its "
            "pixel data: the file is probably truncated",
            path=name,
        )
    if pixel_kind is not None:
        raise VolumeReadError(
            "pixel data without Rows/Columns: corrupt or truncated header", path=name
        )
    meta = getattr(ds, "file_meta", Dataset())
    sop = ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID")
    if not sop or len(ds) == 0:
        raise VolumeReadError(
            "DICOM file with an empty or unidentifiable data set (no SOP Class UID): the "
            "file is probably truncated or corrupt",
            path=name,
        )
    name_of_class = UID(sop).name
    if "Image Storage" in name_of_class or name_of_class in _PIXEL_CLASSES:
        raise VolumeReadError(
            f"{name_of_class} file ends before its image attributes: the file is probably "
            "truncated",
            path=name,
        )
    return None  # DICOMDIR, structured report, RT structure set, private non-image…


def _header_of_file(path: Path, *, single: bool) -> Header | None:
    try:
        with open(path, "rb") as fp:
            return _read_header(fp, str(path), path, None, single=single)
    except OSError as exc:
        raise VolumeReadError(f"cannot read file: {exc.strerror or exc}", path=path) from None


def _scan(folder: Path) -> list[Header]:
    headers = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for file_name in sorted(names):
            header = _header_of_file(Path(root) / file_name, single=False)
            if header is not None:
                header.name = os.path.relpath(header.name, folder)
                headers.append(header)
    return headers


def _group(headers: list[Header]) -> dict[str, list[Header]]:
    groups: dict[str, list[Header]] = {}
    for header in headers:
        groups.setdefault(str(header.ds.get("SeriesInstanceUID") or ""), []).append(header)

    def key(item: tuple[str, list[Header]]) -> tuple[float, str]:
        number = item[1][0].ds.get("SeriesNumber")
        return (float("inf") if number in (None, "") else float(number), item[0])

    return dict(sorted(groups.items(), key=key))


def _describe(uid: str, headers: list[Header]) -> DicomSeries:
    ds = headers[0].ds
    number = ds.get("SeriesNumber")
    return DicomSeries(
        series_uid=uid,
        description=str(ds.get("SeriesDescription") or ""),
        modality=str(ds.get("Modality") or ""),
        n_files=len(headers),
        files=tuple(h.path if h.path is not None else Path(h.name) for h in headers),
        rows=int(ds.Rows),
        cols=int(ds.Columns),
        enhanced="PerFrameFunctionalGroupsSequence" in ds,
        n_frames=sum(h.n_frames for h in headers),
        series_number=None if number in (None, "") else int(number),
    )


def list_series(folder: str | os.PathLike[str]) -> list[DicomSeries]:
    """List the image series in a folder, reading headers only.

    Every file under ``folder`` (recursively) is tried. Files that are not DICOM
    (no ``DICM`` prefix: a README, JSON sidecars…) and DICOM objects without an
    image (DICOMDIR, structured reports…) are skipped.

    Args:
        folder: The folder to scan.

    Returns:
        One :class:`DicomSeries` per ``SeriesInstanceUID``, by ``SeriesNumber`` then UID.

    Raises:
        VolumeReadError: ``folder`` is not a folder, or a DICOM file cannot be parsed
            (truncated or corrupt), naming the file.
    """
    path = Path(folder)
    if not path.is_dir():
        raise VolumeReadError("not a folder", path=path)
    return [_describe(uid, hs) for uid, hs in _group(_scan(path)).items()]


def _series_listing(groups: dict[str, list[Header]]) -> str:
    lines = []
    for uid, headers in groups.items():
        s = _describe(uid, headers)
        lines.append(
            f"  series_uid={uid!r}  description={s.description!r}  modality={s.modality}  "
            f"{s.n_files} file(s), {s.n_frames} image(s) of {s.cols}×{s.rows}"
        )
    return "\n".join(lines)


def _select(headers: list[Header], series_uid: str | None, where: str) -> list[Header]:
    groups = _group(headers)
    if series_uid is not None:
        if series_uid in groups:
            return groups[series_uid]
        raise DicomSeriesError(
            f"no series with series_uid={series_uid!r}; found:\n{_series_listing(groups)}",
            path=where,
        )
    if len(groups) > 1:
        raise DicomSeriesError(
            f"found {len(groups)} image series; pass series_uid= to choose one:\n"
            f"{_series_listing(groups)}",
            path=where,
        )
    return next(iter(groups.values()))


# -- pixels ---------------------------------------------------------------------------

_DECODER_HINTS = (
    (
        pydicom.uid.JPEGLSTransferSyntaxes,
        "pylibjpeg with pylibjpeg-libjpeg, pyjpegls, or python-gdcm",
    ),
    (
        pydicom.uid.JPEG2000TransferSyntaxes,
        "pylibjpeg with pylibjpeg-openjpeg, Pillow, or python-gdcm",
    ),
    (pydicom.uid.JPEGTransferSyntaxes, "pylibjpeg with pylibjpeg-libjpeg, or python-gdcm"),
    (pydicom.uid.RLETransferSyntaxes, "pylibjpeg with pylibjpeg-rle"),
)


def _check_decodable(headers: list[Header]) -> None:
    from pydicom.pixels import get_decoder

    seen: set[str] = set()
    for header in headers:
        uid = header.transfer_syntax
        if uid in seen:
            continue
        seen.add(uid)
        try:
            decoder = get_decoder(uid)
        except NotImplementedError:
            raise VolumeReadError(
                f"unknown or unsupported transfer syntax {uid.name} ({uid}): pydicom has no "
                "decoder for its pixel data",
                path=header.path or header.name,
            ) from None
        if not decoder.is_available:
            hint = next(
                (h for uids, h in _DECODER_HINTS if uid in uids), "pylibjpeg or python-gdcm"
            )
            raise VolumeReadError(
                f"pixel data is compressed as {uid.name} ({uid}) and no installed package can "
                f"decode it; install {hint} (e.g. pip install pylibjpeg pylibjpeg-libjpeg "
                "pylibjpeg-openjpeg)",
                path=header.path or header.name,
            )


def _bits_range(ds: Dataset) -> tuple[int, int]:
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _output_dtype(headers: list[Header], frames: list[Frame]) -> np.dtype:
    kinds = {h.pixel_kind for h in headers}
    scales = {(f.slope, f.intercept) for f in frames}
    if kinds != {"int"}:
        return np.dtype("float64" if kinds == {"float64"} and scales == {(1.0, 0.0)} else "float32")
    if len(scales) > 1:
        return np.dtype("float32")
    slope, intercept = scales.pop()
    if not (slope.is_integer() and intercept.is_integer()) or slope == 0:
        return np.dtype("float32")
    # The in-place integer rescale goes through ``stored * slope`` first: it must fit too.
    ends = [
        v
        for h in headers
        for lim in _bits_range(h.ds)
        for v in (lim * slope, lim * slope + intercept)
    ]
    lo, hi = min(ends), max(ends)
    for size in (1, 2, 4, 8):
        dtype = np.dtype(f"{'u' if lo >= 0 else 'i'}{size}")
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return dtype
    return np.dtype("float64")


def _pixels(header: Header) -> Iterator[np.ndarray]:
    from pydicom.pixels import iter_pixels

    if header.forced:
        src: Any = pydicom.dcmread(
            header.path if header.path is not None else io.BytesIO(header.raw or b""), force=True
        )
        src.file_meta.TransferSyntaxUID = header.transfer_syntax
    elif header.path is not None:
        src = header.path
    else:
        src = io.BytesIO(header.raw or b"")
    yield from iter_pixels(src)


def _decode(
    headers: list[Header], frames: list[Frame], order: np.ndarray, dtype: np.dtype
) -> np.ndarray:
    rows, cols = frames[0].shape
    out = np.empty((len(frames), rows, cols), dtype=dtype)
    # slots[file][frame number in the file] = k; files are decoded in slice order.
    slots: dict[int, dict[int, int]] = {}
    for k, i in enumerate(order):
        slots.setdefault(frames[i].header, {})[frames[i].index] = k
    for h, slot in sorted(slots.items(), key=lambda item: min(item[1].values())):
        header = headers[h]
        filled = 0
        try:
            for f, pixels in enumerate(_pixels(header)):
                k = slot[f]
                frame = frames[order[k]]
                if pixels.shape != (rows, cols):
                    raise ValueError(
                        f"decoded frame has shape {pixels.shape}, expected {(rows, cols)}"
                    )
                target = out[k]
                filled += 1
                if dtype.kind == "f" and (frame.slope != 1 or frame.intercept != 0):
                    # float64 for the arithmetic, one rounding to float32 at the end.
                    target[...] = pixels * frame.slope + frame.intercept
                else:
                    np.copyto(target, pixels, casting="unsafe")
                    if frame.slope != 1:
                        target *= dtype.type(frame.slope)
                    if frame.intercept != 0:
                        target += dtype.type(frame.intercept)
            if filled != header.n_frames:
                raise ValueError(
                    f"{filled} frame(s) decoded, the header declares {header.n_frames}"
                )
        except (VolumeReadError, UnsupportedFormatError):
            raise
        except Exception as exc:
            uid = header.transfer_syntax
            raise VolumeReadError(
                f"cannot decode the pixel data ({uid.name}): {type(exc).__name__}: {exc}; the "
                "file is probably truncated or corrupt",
                path=header.path or header.name,
            ) from None
    return out


# -- metadata -------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return [_jsonable(v) for v in value]
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


def _metadata(
    headers: list[Header], frames: list[Frame], stack: Stack, series_uid: str
) -> dict[str, Any]:
    ds = headers[0].ds
    uid = headers[0].transfer_syntax
    slopes = [frames[i].slope for i in stack.order]
    intercepts = [frames[i].intercept for i in stack.order]
    meta: dict[str, Any] = {
        "format": "dicom",
        "modality": str(ds.get("Modality") or ""),
        "series_uid": series_uid,
        "series_description": str(ds.get("SeriesDescription") or ""),
        "n_files": len(headers),
        "n_slices": len(frames),
        "enhanced": "PerFrameFunctionalGroupsSequence" in ds,
        "rescale_slope": slopes[0] if len(set(slopes)) == 1 else slopes,
        "rescale_intercept": intercepts[0] if len(set(intercepts)) == 1 else intercepts,
        "slice_step_mm": stack.step_mm,
        "slice_step_source": stack.step_source,
        "transfer_syntax": str(uid),
        "transfer_syntax_name": uid.name,
    }
    fields: dict[str, tuple[str, ...]] = {
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
    for key, keywords in fields.items():
        value = _lookup(ds, *keywords)
        if value not in (None, ""):
            meta[key] = _jsonable(value)
    timings: dict[str, tuple[str, ...]] = {
        "repetition_time_s": ("RepetitionTime",),
        "echo_time_s": ("EchoTime", "EffectiveEchoTime"),
        "inversion_time_s": ("InversionTime", "InversionTimes"),
    }
    for key, keywords in timings.items():
        value = _lookup(ds, *keywords)
        if isinstance(value, pydicom.multival.MultiValue | list):
            value = value[0] if value else None
        try:
            if value not in (None, ""):
                meta[key] = float(value) / 1000.0  # DICOM stores milliseconds
        except (TypeError, ValueError):
            pass
    return meta


# -- the reader -----------------------------------------------------------------------


def read_dicom(
    source: str | os.PathLike[str] | bytes,
    *,
    series_uid: str | None = None,
    max_voxels: int | None = None,
    slice_tolerance: float = 0.01,
) -> Volume:
    """Read a DICOM file, its bytes, or one series of a folder into a volume.

    Args:
        source: A DICOM file (single- or multi-frame), the bytes of one, or a folder
            (searched recursively) holding one or several series.
        series_uid: The ``SeriesInstanceUID`` to read when the source holds several
            series (:func:`list_series` lists them).
        max_voxels: Refuse, from the headers and before decoding any pixel, a series of
            more than ``rows × cols × slices`` voxels. ``None`` for no limit.
        slice_tolerance: Largest relative deviation of a gap between slice positions
            from the median gap (0.01 = 1 %); also bounds in-plane shifts of slices.

    Returns:
        A :class:`~brrrr.core.volume.Volume` of shape ``(cols, rows, n_slices)``, RAS+
        affine, rescaled values (dtype rule in the module docstring), ``metadata``
        (JSON-serialisable: ``format="dicom"``, modality, series_uid, rescale, slice step,
        transfer syntax, timing in seconds…) and ``source`` the path (``None`` for bytes).

    Raises:
        DicomSeriesError: Several series and no ``series_uid``; duplicated, missing or
            unevenly spaced slices; slices differing in orientation, size or spacing.
        VolumeTooLargeError: More voxels than ``max_voxels``.
        VolumeReadError: No DICOM image in the folder; a truncated or corrupt file; pixel
            data compressed in a format no installed package decodes.
        UnsupportedFormatError: A single file that is not a DICOM image, or a colour or
            mosaic image.
        VolumeReadError: ``source`` is a path that does not exist.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        raw = bytes(source)
        header = _read_header(io.BytesIO(raw), "<bytes>", None, raw, single=True)
        headers, where, path = [header] if header else [], "<bytes>", None
    else:
        path = Path(source)
        where = str(path)
        if path.is_dir():
            headers = _scan(path)
            if not headers:
                raise VolumeReadError(
                    "no DICOM image file found in this folder or its subfolders (files without "
                    "the 'DICM' prefix and non-image DICOM objects such as DICOMDIR are skipped)",
                    path=path,
                )
        elif path.is_file():
            header = _header_of_file(path, single=True)
            headers = [header] if header else []
        else:
            raise VolumeReadError("no such DICOM file or folder", path=path)
    if not headers:
        raise VolumeReadError("DICOM file without an image (no pixel data)", path=where)
    headers = _select(headers, series_uid, where)
    uid = str(headers[0].ds.get("SeriesInstanceUID") or "")

    frames = [frame for h, header in enumerate(headers) for frame in frames_of(header, h, where)]
    n_voxels = sum(f.shape[0] * f.shape[1] for f in frames)
    if max_voxels is not None and n_voxels > max_voxels:
        rows, cols = frames[0].shape
        raise VolumeTooLargeError(
            f"the headers declare {n_voxels:,} voxels (shape {cols}×{rows}×{len(frames)}), more "
            f"than max_voxels={max_voxels:,}; nothing was decoded",
            path=where,
        )
    stack = stack_frames(frames, headers, where, slice_tolerance)
    _check_decodable(headers)
    dtype = _output_dtype(headers, frames)
    data = _decode(headers, frames, stack.order, dtype).transpose(2, 1, 0)
    affine = _LPS_TO_RAS @ stack.affine_lps
    metadata = _metadata(headers, frames, stack, uid)
    return Volume(data, affine, metadata=metadata, source=path)
