"""Write Siemens mosaic series for tests: one file per volume, slices tiled in one image.

Each file carries a CSA image header (0029,1010) in Siemens' CSA2 (``SV10``) layout
with ``NumberOfImagesInMosaic``, ``SliceNormalVector``, ``MosaicRefAcqTimes`` and, for
diffusion, ``B_value``, ``DiffusionGradientDirection`` and ``B_matrix``; nibabel's
``nibabel.nicom`` reads these files, so tests can compare against it.
``ImagePositionPatient`` is written the way Siemens writes it: the corner of the
whole mosaic as if it were one slice.

Example:
    >>> import numpy as np
    >>> from brrrr.core.testing import write_dicom_mosaics
    >>> paths = write_dicom_mosaics("bold", np.zeros((3, 8, 8, 5)), np.eye(4))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["csa_header_bytes", "write_dicom_mosaics"]

CsaValue = str | int | float
_UPPER = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def csa_header_bytes(tags: dict[str, tuple[str, Sequence[CsaValue]]]) -> bytes:
    """A Siemens CSA2 header holding ``tags`` (name → (VR, values)).

    Args:
        tags: e.g. ``{"NumberOfImagesInMosaic": ("US", [48])}``.

    Returns:
        The bytes of the (0029,xx10) or (0029,xx20) element.
    """
    out = bytearray(b"SV10" + b"\x04\x03\x02\x01" + struct.pack("<2I", len(tags), 77))
    for name, (vr, values) in tags.items():
        out += struct.pack("<64si4s3i", name.encode(), len(values), vr.encode(), 0, len(values), 77)
        for value in values:
            text = (f"{value:.8f}" if isinstance(value, float) else str(value)).encode() + b"\0"
            out += struct.pack("<4i", len(text), len(text), 77, len(text)) + text
            out += b"\0" * (-len(text) % 4)
    return bytes(out)


def write_dicom_mosaics(
    folder: str | os.PathLike[str],
    data: np.ndarray,
    affine: np.ndarray,
    *,
    series_uid: str | None = None,
    descending: bool = False,
    b_values: Sequence[float] | None = None,
    gradients_lps: Sequence[Sequence[float]] | None = None,
    slice_times_ms: Sequence[float] | None = None,
) -> list[Path]:
    """Write ``data`` as Siemens mosaics, one file per volume.

    Args:
        folder: Where to write (created if needed).
        data: ``(I, J, K)`` or ``(C, I, J, K)`` unsigned values below 2**16;
            ``i`` is the DICOM column, ``j`` the row, ``k`` the slice.
        affine: (4, 4) voxel→world RAS+ mm; its first two columns orthogonal, its third
            along their cross product (mosaics cannot store a tilt).
        series_uid: ``SeriesInstanceUID``; a new random UID when ``None``.
        descending: Tile the slices from ``k = K-1`` down, with the CSA slice normal
            pointing against DICOM's ``IOP[0:3] × IOP[3:6]`` (as in a descending
            acquisition).
        b_values: Per volume, CSA ``B_value`` (writes a DWI series).
        gradients_lps: Per volume, CSA ``DiffusionGradientDirection`` (patient LPS).
        slice_times_ms: Per slice ``k``, ``MosaicRefAcqTimes`` (ms from the first).

    Returns:
        The paths written, one per volume, in volume order.

    Raises:
        ValueError: Wrong dimensions, a sheared affine, or values that do not fit 16 bits.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

    from brrrr.core.testing._dicom import _ds

    data = np.asarray(data)
    volumes = data[None] if data.ndim == 3 else data
    if volumes.ndim != 4:
        raise ValueError(f"data must be (I, J, K) or (C, I, J, K), got shape {data.shape}")
    if volumes.min(initial=0) < 0 or volumes.max(initial=0) > 65535:
        raise ValueError("mosaic values must fit unsigned 16 bits")
    stored = np.rint(volumes).astype("<u2")
    n_vol, n_i, n_j, n_k = volumes.shape
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=np.float64)
    di, dj = float(np.linalg.norm(lps[:3, 0])), float(np.linalg.norm(lps[:3, 1]))
    row_dir, col_dir, step = lps[:3, 0] / di, lps[:3, 1] / dj, lps[:3, 2]
    normal = np.cross(row_dir, col_dir)
    thickness = float(np.linalg.norm(step))
    if abs(float(row_dir @ col_dir)) > 1e-9 or not np.allclose(step, normal * thickness, atol=1e-9):
        raise ValueError("mosaics need orthogonal in-plane columns and a third along their normal")

    grid = math.ceil(math.sqrt(n_k))
    tiles = list(range(n_k))[::-1] if descending else list(range(n_k))  # slice of tile t
    corner = lps[:3, 3] + tiles[0] * step
    rows, cols = grid * n_j, grid * n_i
    ipp = corner - row_dir * di * (cols - n_i) / 2 - col_dir * dj * (rows - n_j) / 2
    csa_normal = -normal if descending else normal

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, frame_uid = generate_uid(), generate_uid()
    series_uid = series_uid or generate_uid()
    paths = []
    for v in range(n_vol):
        mosaic = np.zeros((rows, cols), dtype="<u2")
        for t, k in enumerate(tiles):
            r, c = divmod(t, grid)
            mosaic[r * n_j : (r + 1) * n_j, c * n_i : (c + 1) * n_i] = stored[v, :, :, k].T
        csa: dict[str, tuple[str, Sequence[CsaValue]]] = {
            "NumberOfImagesInMosaic": ("US", [n_k]),
            "SliceNormalVector": ("FD", [float(x) for x in csa_normal]),
            "AcquisitionMatrixText": ("SH", [f"{n_j}*{n_i}"]),
        }
        if slice_times_ms is not None:
            csa["MosaicRefAcqTimes"] = ("FD", [float(slice_times_ms[k]) for k in tiles])
        if b_values is not None:
            csa["B_value"] = ("IS", [round(b_values[v])])
        if gradients_lps is not None:
            g = np.asarray(gradients_lps[v], dtype=np.float64)
            csa["DiffusionGradientDirection"] = ("FD", [float(x) for x in g])
            if b_values is not None:  # b g gᵀ, upper triangle row by row
                b_matrix = float(b_values[v]) * np.outer(g, g)
                csa["B_matrix"] = ("FD", [float(b_matrix[r, c]) for r, c in _UPPER])
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.4")
        meta.MediaStorageSOPInstanceUID = UID(sop_uid)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientName, ds.PatientID = "brrrr^synthetic", "brrrr"
        ds.Modality, ds.Manufacturer = "MR", "SIEMENS"
        ds.SeriesDescription, ds.SeriesNumber = "brrrr mosaic", 1
        kind = "DIFFUSION" if b_values is not None else "M"
        ds.ImageType = ["ORIGINAL", "PRIMARY", kind, "ND", "MOSAIC"]
        ds.InstanceNumber = ds.AcquisitionNumber = v + 1
        ds.RepetitionTime, ds.EchoTime = "2000", "30"
        ds.ImagePositionPatient = _ds(ipp)
        ds.ImageOrientationPatient = _ds([*row_dir, *col_dir])
        ds.PixelSpacing = _ds([dj, di])
        ds.SliceThickness = ds.SpacingBetweenSlices = _ds([thickness])[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
        block.add_new(0x10, "OB", csa_header_bytes(csa))
        ds.PixelData = mosaic.tobytes()
        path = folder / f"MOSAIC{v + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
