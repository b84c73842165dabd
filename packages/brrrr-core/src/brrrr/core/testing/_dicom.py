"""Write synthetic DICOM series for tests: one file per slice, or one enhanced file.

The files are uncompressed (Explicit VR Little Endian) with valid file meta, so any
DICOM reader opens them. With ``file_names="shuffled"`` neither the file names nor
``InstanceNumber`` follow the spatial order, so a reader must sort by position.

Round trip: ``read_dicom(folder)`` returns ``data`` (within the rounding of the
rescale) and ``affine`` for any affine whose first two columns are orthogonal and
whose determinant is positive. DICOM orders slices along ``IOP[0:3] × IOP[3:6]``;
for an affine with a negative determinant that normal points against the third
column, so the reader returns the same image in world space with ``k`` reversed
(``data[..., ::-1]`` and the matching affine).

Example:
    >>> import numpy as np
    >>> from brrrr.core.testing import write_dicom_series
    >>> paths = write_dicom_series("series", np.zeros((4, 5, 6)), np.eye(4))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["write_dicom_series"]

_SOP_CLASSES = {
    ("MR", False): "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    ("MR", True): "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    ("CT", False): "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    ("CT", True): "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    ("PT", False): "1.2.840.10008.5.1.4.1.1.128",  # PET Image Storage
}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _ds(values: Sequence[float] | np.ndarray) -> list[str]:
    from pydicom.valuerep import format_number_as_ds

    # DS holds at most 16 characters; format_number_as_ds keeps as many digits as fit.
    return [format_number_as_ds(float(v)) for v in values]


def write_dicom_series(
    folder: str | os.PathLike[str],
    data: np.ndarray,
    affine: np.ndarray,
    *,
    series_uid: str | None = None,
    series_description: str = "brrrr synthetic",
    modality: str = "MR",
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
    enhanced: bool = False,
    drop_slices: Sequence[int] = (),
    duplicate_slices: Sequence[int] = (),
    file_names: Literal["shuffled", "ordered"] = "shuffled",
    seed: int = 0,
) -> list[Path]:
    """Write ``data`` as a DICOM series in ``folder``.

    Args:
        folder: Where to write (created if needed).
        data: ``(I, J, K)`` array; ``i`` becomes the DICOM column index, ``j`` the row,
            ``k`` the slice.
        affine: (4, 4) voxel→world RAS+ mm; its first two columns must be orthogonal.
        series_uid: ``SeriesInstanceUID``; a new random UID when ``None``.
        series_description: ``SeriesDescription``.
        modality: ``Modality`` (``"MR"``, ``"CT"``, ``"PT"``…).
        rescale_slope: Stored values are ``round((data - intercept) / slope)``.
        rescale_intercept: See ``rescale_slope``.
        enhanced: Write one enhanced multi-frame file (per-frame positions) instead of
            one file per slice.
        drop_slices: Slice indices ``k`` not to write (to fake a missing slice).
        duplicate_slices: Slice indices ``k`` written twice (same position, new UID).
        file_names: ``"shuffled"``: file names and ``InstanceNumber`` (or frame order)
            in a random order; ``"ordered"``: in slice order.
        seed: Seed of the shuffle.

    Returns:
        The paths written: one per slice in the order ``k`` (kept slices, then the
        duplicates), or the single enhanced file.

    Raises:
        ValueError: ``data`` is not 3D, the affine's in-plane columns are not orthogonal,
            or the stored values do not fit 16 bits.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f"data must be (I, J, K), got shape {data.shape}")
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=np.float64)
    col_i, col_j, step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    di, dj = float(np.linalg.norm(col_i)), float(np.linalg.norm(col_j))
    row_dir, col_dir = col_i / di, col_j / dj
    if abs(float(row_dir @ col_dir)) > 1e-9:
        raise ValueError("the affine's first two columns must be orthogonal (DICOM in-plane axes)")
    normal = np.cross(row_dir, col_dir)
    thickness = abs(float(step @ normal))

    stored = np.rint((data.astype(np.float64) - rescale_intercept) / rescale_slope)
    dtype = np.dtype("<u2") if stored.min(initial=0) >= 0 else np.dtype("<i2")
    info = np.iinfo(dtype)
    if stored.size and (stored.min() < info.min or stored.max() > info.max):
        raise ValueError(f"stored values {stored.min()}..{stored.max()} do not fit {dtype.name}")
    stored = stored.astype(dtype)

    n_i, n_j, n_k = data.shape
    drop = set(drop_slices)
    slices = [k for k in range(n_k) if k not in drop] + list(duplicate_slices)
    order = np.arange(len(slices))
    if file_names == "shuffled":
        order = np.random.default_rng(seed).permutation(len(slices))
        if len(slices) > 1 and np.array_equal(order, np.sort(order)):
            order = order[::-1].copy()
    # order[e]: the rank (file name, InstanceNumber, frame) of the e-th slice written.

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sop_class = _SOP_CLASSES.get((modality, enhanced), _SECONDARY_CAPTURE)
    study_uid, frame_uid = generate_uid(), generate_uid()
    series_uid = series_uid or generate_uid()

    def base(sop_uid: str) -> Dataset:  # the attributes every file shares
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(sop_class)
        meta.MediaStorageSOPInstanceUID = UID(sop_uid)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientName, ds.PatientID = "brrrr^synthetic", "brrrr"
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber = modality, series_description, 1
        ds.Manufacturer = "brrrr"
        if modality == "MR":
            ds.RepetitionTime, ds.EchoTime = "2000", "30"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = n_j, n_i
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 0 if dtype.kind == "u" else 1
        return ds

    orientation = _ds([*row_dir, *col_dir])
    pixel_spacing = _ds([dj, di])  # between rows, between columns

    def position(k: int) -> list[str]:
        return _ds(lps[:3, 3] + k * step)

    if enhanced:
        sop_uid = generate_uid()
        ds = base(sop_uid)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER", "NONE"]
        ds.InstanceNumber = 1
        ds.NumberOfFrames = len(slices)
        shared = Dataset()
        measures = Dataset()
        measures.PixelSpacing, measures.SliceThickness = pixel_spacing, _ds([thickness])[0]
        plane = Dataset()
        plane.ImageOrientationPatient = orientation
        transform = Dataset()
        transform.RescaleIntercept = _ds([rescale_intercept])[0]
        transform.RescaleSlope = _ds([rescale_slope])[0]
        transform.RescaleType = "US"
        shared.PixelMeasuresSequence = [measures]
        shared.PlaneOrientationSequence = [plane]
        shared.PixelValueTransformationSequence = [transform]
        ds.SharedFunctionalGroupsSequence = [shared]
        by_rank = [slices[e] for e in np.argsort(order)]
        per_frame = []
        for k in by_rank:
            item, pos, content = Dataset(), Dataset(), Dataset()
            pos.ImagePositionPatient = position(k)
            content.StackID, content.InStackPositionNumber = "1", k + 1
            item.PlanePositionSequence = [pos]
            item.FrameContentSequence = [content]
            per_frame.append(item)
        ds.PerFrameFunctionalGroupsSequence = per_frame
        ds.PixelData = b"".join(np.ascontiguousarray(stored[:, :, k].T).tobytes() for k in by_rank)
        path = folder / "enhanced.dcm"
        ds.save_as(path, enforce_file_format=True)
        return [path]

    paths = []
    width = max(4, len(str(len(slices))))
    for e, k in enumerate(slices):
        rank = int(order[e])
        ds = base(generate_uid())
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = rank + 1
        ds.ImagePositionPatient = position(k)
        ds.ImageOrientationPatient = orientation
        ds.PixelSpacing = pixel_spacing
        ds.SliceThickness = _ds([thickness])[0]
        ds.RescaleIntercept = _ds([rescale_intercept])[0]
        ds.RescaleSlope = _ds([rescale_slope])[0]
        ds.RescaleType = "HU" if modality == "CT" else "US"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        path = folder / f"IM{rank + 1:0{width}d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
