"""Write synthetic DICOM series for tests: one file per slice, or one enhanced file.

The files have valid file meta, so any DICOM reader opens them. With
``file_names="shuffled"`` neither the file names nor ``InstanceNumber`` follow the
spatial order, so a reader must sort by position.

Besides plain 3D series the writer makes what scanners make:

* 4-D series: ``data`` of shape ``(C, I, J, K)`` writes ``C`` volumes at the same slice
  positions; ``volume_tags`` gives each volume the attributes that tell it apart
  (``EchoNumbers``/``EchoTime`` for multi-echo, ``DiffusionBValue`` and
  ``DiffusionGradientOrientation`` for DWI, ``TemporalPositionIdentifier`` or
  ``AcquisitionNumber`` for fMRI, ``ImageType``…). In an enhanced file they go into
  the per-frame functional groups (MR echo, MR diffusion, frame content, frame type);
* Philips' private MR scale slope (2005,100E), for the ``philips_scaling`` option;
* compressed pixel data (RLE Lossless, JPEG Lossless), and files without preamble.

Siemens mosaics are written by :func:`brrrr.core.testing.write_dicom_mosaics`.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["TransferSyntax", "write_dicom_series"]

TransferSyntax = Literal["explicit", "rle", "jpeg-lossless"]

_SOP_CLASSES = {
    ("MR", False): "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    ("MR", True): "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    ("CT", False): "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    ("CT", True): "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    ("PT", False): "1.2.840.10008.5.1.4.1.1.128",  # PET Image Storage
}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_PHILIPS_MR = "Philips MR Imaging DD 001"


def _ds(values: Sequence[float] | np.ndarray) -> list[str]:
    from pydicom.valuerep import format_number_as_ds

    # DS holds at most 16 characters; format_number_as_ds keeps as many digits as fit.
    return [format_number_as_ds(float(v)) for v in values]


def _enhanced_groups(item: Any, tags: Mapping[str, Any], content: Any) -> None:
    """Put a volume's attributes where enhanced MR keeps them (per-frame groups)."""
    from pydicom.dataset import Dataset

    rest = dict(tags)
    if "EchoTime" in rest:
        echo = Dataset()
        echo.EffectiveEchoTime = float(rest.pop("EchoTime"))
        item.MREchoSequence = [echo]
    rest.pop("EchoNumbers", None)  # enhanced files have no per-frame echo number
    if "DiffusionBValue" in rest:
        diffusion = Dataset()
        diffusion.DiffusionBValue = float(rest.pop("DiffusionBValue"))
        gradient = rest.pop("DiffusionGradientOrientation", None)
        diffusion.DiffusionDirectionality = "DIRECTIONAL" if gradient is not None else "NONE"
        if gradient is not None:
            direction = Dataset()
            direction.DiffusionGradientOrientation = [float(g) for g in gradient]
            diffusion.DiffusionGradientDirectionSequence = [direction]
        item.MRDiffusionSequence = [diffusion]
    for keyword, target in (
        ("TemporalPositionIdentifier", "TemporalPositionIndex"),
        ("TemporalPositionIndex", "TemporalPositionIndex"),
        ("AcquisitionNumber", "FrameAcquisitionNumber"),
    ):
        if keyword in rest:
            setattr(content, target, int(rest.pop(keyword)))
    if "ImageType" in rest:
        frame_type = Dataset()
        frame_type.FrameType = list(rest.pop("ImageType"))
        item.MRImageFrameTypeSequence = [frame_type]
    if rest:
        raise ValueError(f"no enhanced-file mapping for {sorted(rest)}")


def _philips_block(ds: Any, scale: float) -> None:
    block = ds.private_block(0x2005, _PHILIPS_MR, create=True)
    block.add_new(0x0E, "FL", float(scale))


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
    volume_tags: Sequence[Mapping[str, Any]] | None = None,
    philips_scale_slope: float | None = None,
    transfer_syntax: TransferSyntax = "explicit",
    preamble: bool = True,
) -> list[Path]:
    """Write ``data`` as a DICOM series in ``folder``.

    Args:
        folder: Where to write (created if needed).
        data: ``(I, J, K)`` array, or ``(C, I, J, K)`` for ``C`` volumes at the same
            positions; ``i`` becomes the DICOM column index, ``j`` the row, ``k`` the slice.
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
            in a random order within each volume; ``"ordered"``: in slice order.
        seed: Seed of the shuffle.
        volume_tags: Per volume, DICOM attributes (keyword → value) of all its images,
            e.g. ``{"EchoNumbers": 2, "EchoTime": 60}``; ``C`` mappings.
        philips_scale_slope: Write Philips' private MR scale slope (2005,100E) with
            this value (per frame, in a private sequence, in enhanced files).
        transfer_syntax: ``"explicit"`` (Explicit VR Little Endian), ``"rle"`` (RLE
            Lossless) or ``"jpeg-lossless"`` (JPEG Lossless SV1, unsigned values only).
        preamble: ``False`` writes files without the 128-byte preamble and ``DICM``.

    Returns:
        The paths written: per volume, one per slice in the order ``k`` (kept slices,
        then the duplicates); or the single enhanced file.

    Raises:
        ValueError: ``data`` is not 3D/4D, the affine's in-plane columns are not
            orthogonal, the stored values do not fit 16 bits (or are signed for JPEG
            Lossless), or ``volume_tags`` has the wrong length.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

    data = np.asarray(data)
    if data.ndim not in (3, 4):
        raise ValueError(f"data must be (I, J, K) or (C, I, J, K), got shape {data.shape}")
    volumes = data[None] if data.ndim == 3 else data
    tags_of = list(volume_tags) if volume_tags is not None else [{}] * len(volumes)
    if len(tags_of) != len(volumes):
        raise ValueError(f"volume_tags has {len(tags_of)} entries for {len(volumes)} volumes")
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=np.float64)
    col_i, col_j, step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    di, dj = float(np.linalg.norm(col_i)), float(np.linalg.norm(col_j))
    row_dir, col_dir = col_i / di, col_j / dj
    if abs(float(row_dir @ col_dir)) > 1e-9:
        raise ValueError("the affine's first two columns must be orthogonal (DICOM in-plane axes)")
    normal = np.cross(row_dir, col_dir)
    thickness = abs(float(step @ normal))

    stored = np.rint((volumes.astype(np.float64) - rescale_intercept) / rescale_slope)
    dtype = np.dtype("<u2") if stored.min(initial=0) >= 0 else np.dtype("<i2")
    info = np.iinfo(dtype)
    if stored.size and (stored.min() < info.min or stored.max() > info.max):
        raise ValueError(f"stored values {stored.min()}..{stored.max()} do not fit {dtype.name}")
    if transfer_syntax == "jpeg-lossless" and dtype.kind != "u":
        raise ValueError("the JPEG Lossless test encoder writes unsigned values only")
    stored = stored.astype(dtype)

    n_vol, n_i, n_j, n_k = volumes.shape
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
        ds.Manufacturer = "Philips" if philips_scale_slope is not None else "brrrr"
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

    def image(v: int, k: int) -> np.ndarray:
        return np.ascontiguousarray(stored[v, :, :, k].T)

    def save(ds: Dataset, images: list[np.ndarray], path: Path) -> None:
        _store_pixels(ds, images, transfer_syntax)
        ds.save_as(path, enforce_file_format=True)
        if not preamble:
            path.write_bytes(path.read_bytes()[132:])

    if enhanced:
        ds = base(generate_uid())
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER", "NONE"]
        ds.InstanceNumber = 1
        ds.NumberOfFrames = n_vol * len(slices)
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
        per_frame, images = [], []
        for v in range(n_vol):
            for k in by_rank:
                item, pos, content = Dataset(), Dataset(), Dataset()
                pos.ImagePositionPatient = position(k)
                content.StackID, content.InStackPositionNumber = "1", k + 1
                content.DimensionIndexValues = [v + 1, k + 1]
                _enhanced_groups(item, tags_of[v], content)
                item.PlanePositionSequence = [pos]
                item.FrameContentSequence = [content]
                if philips_scale_slope is not None:
                    private = Dataset()
                    _philips_block(private, philips_scale_slope)
                    block = item.private_block(0x2005, "Philips MR Imaging DD 005", create=True)
                    block.add_new(0x0F, "SQ", [private])
                per_frame.append(item)
                images.append(image(v, k))
        ds.PerFrameFunctionalGroupsSequence = per_frame
        path = folder / "enhanced.dcm"
        save(ds, images, path)
        return [path]

    paths = []
    width = max(4, len(str(n_vol * len(slices))))
    for v in range(n_vol):
        for e, k in enumerate(slices):
            instance = v * len(slices) + int(order[e]) + 1
            ds = base(generate_uid())
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.InstanceNumber = instance
            ds.ImagePositionPatient = position(k)
            ds.ImageOrientationPatient = orientation
            ds.PixelSpacing = pixel_spacing
            ds.SliceThickness = _ds([thickness])[0]
            ds.RescaleIntercept = _ds([rescale_intercept])[0]
            ds.RescaleSlope = _ds([rescale_slope])[0]
            ds.RescaleType = "HU" if modality == "CT" else "US"
            for keyword, value in tags_of[v].items():
                setattr(ds, keyword, value)
            if philips_scale_slope is not None:
                _philips_block(ds, philips_scale_slope)
            path = folder / f"IM{instance:0{width}d}.dcm"
            save(ds, [image(v, k)], path)
            paths.append(path)
    return paths


def _store_pixels(ds: Any, images: list[np.ndarray], syntax: TransferSyntax) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLosslessSV1, RLELossless

    if syntax == "explicit":
        ds.PixelData = b"".join(im.tobytes() for im in images)
        return
    if syntax == "rle":
        array = images[0] if len(images) == 1 else np.stack(images)
        ds.compress(RLELossless, array, encoding_plugin="pydicom")
        return
    from brrrr.core.testing._jpeg_lossless import encode_jpeg_lossless

    ds.PixelData = encapsulate([encode_jpeg_lossless(im) for im in images])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
