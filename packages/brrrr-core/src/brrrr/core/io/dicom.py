"""Read a DICOM file, or one series from a folder of DICOM files, into a `Volume`.

pydicom parses the headers and decodes the pixels. This module finds the files and
series; the private modules beside it turn headers into images
(:mod:`~brrrr.core.io._dicom_frames`, Siemens mosaics in
:mod:`~brrrr.core.io._dicom_mosaic`), images into volumes
(:mod:`~brrrr.core.io._dicom_group`), volumes into geometry
(:mod:`~brrrr.core.io._dicom_stack`), and decode the pixels
(:mod:`~brrrr.core.io._dicom_pixels`).

What is read:

* classic series (one file per slice), enhanced multi-frame files (per-frame
  functional groups), Siemens mosaics (fMRI, DWI), single images, RGB images;
* 4-D series: several images at each slice position (time series, DWI, multi-echo,
  field maps, cardiac phases) become one channel-first ``(C, I, J, K)`` volume, one
  channel per volume of the series, with per-volume metadata (echo times, b-values
  and b-vectors, …; :mod:`~brrrr.core.io._dicom_meta`); ``echo=`` keeps one echo;
* every transfer syntax pydicom decodes; compressed ones (JPEG, JPEG Lossless,
  JPEG-LS, JPEG 2000, RLE) with the ``brrrr-core[dicom-codecs]`` extra;
* files with or without the 128-byte preamble and ``DICM`` prefix (recognised by
  content), and gzip-compressed files (``.dcm.gz``).

Non-image DICOM objects in a folder (Philips raw data, presentation states,
structured reports, DICOMDIR…) are skipped and listed in ``metadata["skipped_files"]``
(with a :class:`SkippedFilesWarning`, except for DICOMDIR). Files that are not DICOM
at all (README, JSON sidecars) are skipped silently.

Layout of the returned volume (shape ``(I, J, K)``, or ``(C, I, J, K)``):

* ``i`` is the column index of a DICOM image (along ``ImageOrientationPatient[0:3]``),
* ``j`` is the row index (along ``ImageOrientationPatient[3:6]``),
* ``k`` is the slice, increasing along the slice normal ``IOP[0:3] × IOP[3:6]``.

Slices are ordered by their position along that normal, never by file name or
``InstanceNumber``. The affine maps ``(i, j, k)`` to RAS+ mm (DICOM's LPS with x
and y negated). Each channel is Fortran-ordered, the layout NIfTI uses on disk.

The slice step (the affine's third column) is the mean step between the first and
last slice positions, once every gap has been checked against the median
(``slice_tolerance``); a Siemens mosaic's tiles are placed ``SpacingBetweenSlices``
(else ``SliceThickness``) apart; a single slice is ``SliceThickness`` thick, else
``SpacingBetweenSlices``, else 1 mm. ``metadata["slice_step_source"]`` says which.

Rescaling (``RescaleSlope``/``RescaleIntercept``) is applied. The dtype depends on
the headers only, never on the voxel values:

* integer pixels with one integral slope and intercept for the whole series give the
  smallest integer dtype (unsigned when possible) that holds every rescaled value the
  header allows (``BitsStored``/``PixelRepresentation``); with slope 1 and intercept 0
  that is the stored dtype (CT stored as unsigned 12 bits with intercept -1024 gives
  int16, stored as signed 16 bits it gives int32);
* anything else (a fractional slope or intercept, values that differ between slices,
  float pixel data) gives float32.

Philips scaling: Philips MR files carry two scales. ``RescaleSlope``/``RescaleIntercept``
give the *displayed* value (DV = stored × RS + RI), what the scanner console shows
and what other readers return; this is ``philips_scaling="display"``, the default.
Philips' private MR scale slope SS (2005,100E) gives the *precise* floating-point
value FP = DV / (RS × SS), proportional to the signal the scanner measured and
comparable between series and sessions (quantitative work, e.g. T1 maps from
several flip angles); ask for it with ``philips_scaling="precise"``.

Example:
    >>> from brrrr.core.io.dicom import list_series, read_dicom
    >>> [s.series_uid for s in list_series("dicom_folder")]  # doctest: +SKIP
    >>> vol = read_dicom("dicom_folder", series_uid="1.2.840.1234")  # doctest: +SKIP
    >>> bold = read_dicom("bold_mosaics")  # doctest: +SKIP
    >>> bold.channels, bold.metadata["volume_keys"]  # doctest: +SKIP
    (200, ['AcquisitionNumber'])
"""

from __future__ import annotations

import gzip
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from brrrr.core.errors import (
    DicomSeriesError,
    UnsupportedFormatError,
    VolumeReadError,
    VolumeTooLargeError,
)
from brrrr.core.io._dicom_frames import Header, PhilipsScaling, frames_of
from brrrr.core.io._dicom_group import plan_volumes, select_echo
from brrrr.core.io._dicom_meta import series_metadata
from brrrr.core.io._dicom_pixels import check_decodable, decode, output_dtype
from brrrr.core.io._dicom_sniff import SNIFF_BYTES, has_dicom_prefix, looks_like_dicom
from brrrr.core.volume import Volume

__all__ = ["DicomSeries", "SkippedFilesWarning", "list_series", "read_dicom"]

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
_DICOMDIR = "Media Storage Directory Storage"
_NOT_DICOM = (
    "not a DICOM image: no 'DICM' prefix at byte 128, and the content does not start "
    "with DICOM elements"
)
_GZIP_MAGIC = b"\x1f\x8b"


class SkippedFilesWarning(UserWarning):
    """DICOM objects without an image (raw data, presentation states…) were skipped."""


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
        n_frames: Number of 2D images (frames) over all files (a mosaic counts as one).
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


@dataclass(frozen=True)
class _Skipped:
    name: str
    sop_class: str


# -- headers --------------------------------------------------------------------------


def _is_image_class(name: str) -> bool:
    return "Image Storage" in name or name in _PIXEL_CLASSES


def _read_header(
    fp: IO[bytes], name: str, path: Path | None, raw: bytes | None, *, single: bool, gz: bool
) -> Header | _Skipped | None:
    """Parse a header: a Header, a skipped non-image object, or None for non-DICOM content.

    A single file given on purpose that is not DICOM is an error; in a scanned folder
    it is skipped, so a README or a NIfTI is never parsed as DICOM.
    """
    head = fp.read(SNIFF_BYTES)
    fp.seek(0)
    if not looks_like_dicom(head):
        if single:
            raise UnsupportedFormatError(_NOT_DICOM, path=name)
        return None
    forced = not has_dicom_prefix(head)
    try:
        ds: Dataset = pydicom.dcmread(fp, stop_before_pixels=True, force=forced)
    except Exception as exc:
        raise VolumeReadError(
            f"cannot parse the DICOM header ({type(exc).__name__}: {exc}); the file is "
            "probably truncated or corrupt",
            path=name,
        ) from None
    pixel_kind = _PIXEL_TAGS.get(fp.read(4))
    meta = getattr(ds, "file_meta", Dataset())
    if meta.get("TransferSyntaxUID") == pydicom.uid.DeflatedExplicitVRLittleEndian:
        # pydicom inflates into a buffer of its own: fp says nothing about what follows.
        fp.seek(0)
        ds = pydicom.dcmread(fp, force=forced)
        kinds = {"PixelData": "int", "FloatPixelData": "float32", "DoubleFloatPixelData": "float64"}
        pixel_kind = next((kind for keyword, kind in kinds.items() if keyword in ds), None)
    sop = ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID")
    class_name = UID(sop).name if sop else ""
    if sop and sop in pydicom.uid.UID_dictionary and not _is_image_class(class_name):
        # A known non-image class (Philips raw data carries Rows/Columns but no pixels).
        return _Skipped(name, class_name)
    has_grid = "Rows" in ds and "Columns" in ds
    if has_grid and pixel_kind is not None:
        return Header(name, path, raw, ds, pixel_kind, forced, gzipped=gz)
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
    if not sop or len(ds) == 0:
        raise VolumeReadError(
            "DICOM file with an empty or unidentifiable data set (no SOP Class UID): the "
            "file is probably truncated or corrupt",
            path=name,
        )
    if _is_image_class(class_name):
        raise VolumeReadError(
            f"{class_name} file ends before its image attributes: the file is probably truncated",
            path=name,
        )
    return _Skipped(name, class_name)  # a private class without pixel data


def _header_of_file(path: Path, *, single: bool) -> Header | _Skipped | None:
    try:
        with open(path, "rb") as fp:
            if fp.read(2) != _GZIP_MAGIC:
                fp.seek(0)
                return _read_header(fp, str(path), path, None, single=single, gz=False)
            fp.seek(0)
            with gzip.GzipFile(fileobj=fp, mode="rb") as inflated:
                try:
                    inflated.peek(1)
                except (OSError, EOFError) as exc:
                    if not single:
                        return None
                    raise VolumeReadError(f"corrupt gzip stream: {exc}", path=path) from None
                stream = cast(IO[bytes], inflated)
                return _read_header(stream, str(path), path, None, single=single, gz=True)
    except OSError as exc:
        raise VolumeReadError(f"cannot read file: {exc.strerror or exc}", path=path) from None


def _scan(folder: Path) -> tuple[list[Header], list[_Skipped]]:
    headers, skipped = [], []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for file_name in sorted(names):
            found = _header_of_file(Path(root) / file_name, single=False)
            if isinstance(found, Header):
                found.name = os.path.relpath(found.name, folder)
                headers.append(found)
            elif isinstance(found, _Skipped):
                skipped.append(_Skipped(os.path.relpath(found.name, folder), found.sop_class))
    return headers, skipped


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

    Every file under ``folder`` (recursively, ``.gz`` files too) is tried. Files that
    are not DICOM (a README, JSON sidecars…) and DICOM objects without an image
    (DICOMDIR, raw data, structured reports…) are skipped.

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
    return [_describe(uid, hs) for uid, hs in _group(_scan(path)[0]).items()]


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


def _warn_skipped(skipped: list[_Skipped], where: str) -> None:
    worth = [s for s in skipped if s.sop_class != _DICOMDIR]
    if not worth:
        return
    classes: dict[str, list[str]] = {}
    for s in worth:
        classes.setdefault(s.sop_class or "unknown class", []).append(s.name)
    detail = "; ".join(
        f"{len(names)} {cls} ({', '.join(names[:3])}{' …' if len(names) > 3 else ''})"
        for cls, names in classes.items()
    )
    warnings.warn(
        f"{where}: skipped {len(worth)} DICOM object(s) without an image: {detail} "
        "(listed in metadata['skipped_files'])",
        SkippedFilesWarning,
        stacklevel=3,
    )


# -- the reader -----------------------------------------------------------------------


def _headers_of(
    source: str | os.PathLike[str] | bytes,
) -> tuple[list[Header], list[_Skipped], str, Path | None]:
    if isinstance(source, bytes | bytearray | memoryview):
        raw = bytes(source)
        if raw[:2] == _GZIP_MAGIC:
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise VolumeReadError(f"corrupt gzip stream: {exc}", path="<bytes>") from None
        found = _read_header(io.BytesIO(raw), "<bytes>", None, raw, single=True, gz=False)
        if isinstance(found, _Skipped):
            raise VolumeReadError(
                f"DICOM {found.sop_class or 'object'} without an image", path="<bytes>"
            )
        return ([found] if found else []), [], "<bytes>", None
    path = Path(source)
    if path.is_dir():
        headers, skipped = _scan(path)
        if not headers:
            what = f" ({len(skipped)} non-image DICOM object(s) skipped)" if skipped else ""
            raise VolumeReadError(
                f"no DICOM image file found in this folder or its subfolders{what}; files "
                "that are not DICOM and non-image DICOM objects (DICOMDIR, raw data, "
                "reports…) are skipped",
                path=path,
            )
        return headers, skipped, str(path), path
    if path.is_file():
        found = _header_of_file(path, single=True)
        if isinstance(found, _Skipped):
            raise VolumeReadError(
                f"DICOM {found.sop_class or 'object'} without an image (no pixel data)", path=path
            )
        return ([found] if found else []), [], str(path), path
    raise VolumeReadError("no such DICOM file or folder", path=path)


def read_dicom(
    source: str | os.PathLike[str] | bytes,
    *,
    series_uid: str | None = None,
    echo: int | None = None,
    philips_scaling: PhilipsScaling = "display",
    max_voxels: int | None = None,
    slice_tolerance: float = 0.01,
) -> Volume:
    """Read a DICOM file, its bytes, or one series of a folder into a volume.

    Args:
        source: A DICOM file (single- or multi-frame, mosaic, possibly gzip-compressed),
            the bytes of one, or a folder (searched recursively) holding one or several
            series.
        series_uid: The ``SeriesInstanceUID`` to read when the source holds several
            series (:func:`list_series` lists them).
        echo: Keep only this echo (``EchoNumbers``, else the rank of the echo time,
            from 1) of a multi-echo series; ``None`` keeps every echo as channels.
        philips_scaling: ``"display"`` (``RescaleSlope``/``RescaleIntercept``) or
            ``"precise"`` (Philips' floating-point value; module docstring).
        max_voxels: Refuse, from the headers and before decoding any pixel, a series of
            more voxels than this (all channels). ``None`` for no limit.
        slice_tolerance: Largest relative deviation of a gap between slice positions
            from the median gap (0.01 = 1 %); also bounds in-plane shifts of slices.

    Returns:
        A :class:`~brrrr.core.volume.Volume` of shape ``(cols, rows, n_slices)``, or
        ``(C, cols, rows, n_slices)`` for a 4-D series (``C`` volumes) or an RGB image
        (``C = 3``); RAS+ affine, rescaled values (dtype rule in the module docstring),
        ``metadata`` (JSON-serialisable: ``format="dicom"``, modality, series_uid,
        rescale, slice step, transfer syntax, timing in seconds, per-volume echo times,
        b-values and b-vectors, skipped files…) and ``source`` the path (``None`` for
        bytes).

    Raises:
        DicomSeriesError: Several series and no ``series_uid``; a localizer; images
            sharing slice positions that nothing tells apart; missing or unevenly
            spaced slices; slices differing in orientation, size or spacing; no such
            echo.
        VolumeTooLargeError: More voxels than ``max_voxels``.
        MissingDependencyError: Compressed pixel data and no installed decoder (install
            ``brrrr-core[dicom-codecs]``).
        VolumeReadError: No DICOM image in the folder; a truncated or corrupt file;
            ``source`` does not exist; ``"precise"`` scaling without Philips' scale.
        UnsupportedFormatError: A single file that is not a DICOM image; an image with
            2 or 4 samples per pixel; an RGB 4-D series.
    """
    if philips_scaling not in ("display", "precise"):
        raise ValueError(f"philips_scaling must be 'display' or 'precise', not {philips_scaling!r}")
    headers, skipped, where, path = _headers_of(source)
    if not headers:
        raise VolumeReadError("DICOM file without an image (no pixel data)", path=where)
    headers = _select(headers, series_uid, where)
    uid = str(headers[0].ds.get("SeriesInstanceUID") or "")

    frames = [
        frame
        for h, header in enumerate(headers)
        for frame in frames_of(header, h, where, philips_scaling=philips_scaling)
    ]
    frames = select_echo(frames, echo, where)
    n_voxels = sum(f.shape[0] * f.shape[1] * headers[f.header].samples for f in frames)
    if max_voxels is not None and n_voxels > max_voxels:
        rows, cols = frames[0].shape
        samples = headers[frames[0].header].samples
        shape = f"{cols}×{rows}×{len(frames)}" + (f"×{samples}" if samples > 1 else "")
        raise VolumeTooLargeError(
            f"the headers declare {n_voxels:,} voxels (shape {shape}), more than "
            f"max_voxels={max_voxels:,}; nothing was decoded",
            path=where,
        )
    plan = plan_volumes(frames, headers, where, slice_tolerance)
    if len(plan.volumes) > 1 and any(h.samples != 1 for h in headers):
        raise UnsupportedFormatError(
            f"RGB series with {len(plan.volumes)} volumes: colour images are read as one "
            "3-channel volume only",
            path=where,
        )
    used = sorted({frames[i].header for volume in plan.volumes for i in volume})
    check_decodable([headers[h] for h in used])
    dtype = output_dtype(
        [headers[h] for h in used], [frames[i] for volume in plan.volumes for i in volume]
    )
    data = decode(headers, frames, plan.volumes, dtype).transpose(0, 3, 2, 1)
    if data.shape[0] == 1:
        data = data[0]
    affine = _LPS_TO_RAS @ plan.stack.affine_lps
    metadata = series_metadata(
        headers, frames, plan, series_uid=uid, philips_scaling=philips_scaling
    )
    if skipped:
        metadata["skipped_files"] = [{"file": s.name, "sop_class": s.sop_class} for s in skipped]
        _warn_skipped(skipped, where)
    return Volume(data, affine, metadata=metadata, source=path)
