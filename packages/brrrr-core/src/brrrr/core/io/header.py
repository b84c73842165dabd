"""What an image header says — shape, affine, dtype — without reading its voxels.

:func:`read_header` reads the first bytes of a NIfTI-1/2 (``.nii``, ``.nii.gz``) or
MGH/MGZ file (for a compressed file only the start of the stream is inflated) and
parses them with the code :func:`~brrrr.core.io.load_volume` uses, so the affine,
shape and dtype are exactly those of the :class:`~brrrr.core.Volume` a later
``load_volume`` gives. A header read does not see truncated or corrupt voxel data.

Example:
    >>> from brrrr.core.io import read_header
    >>> header = read_header("sub-01_T1w.nii.gz")  # doctest: +SKIP
    >>> header.shape, header.spacing, header.axcodes  # doctest: +SKIP
    ((176, 256, 256), (1.0, 1.0, 1.0), 'RAS')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from brrrr.core.errors import UnsupportedFormatError, VolumeReadError
from brrrr.core.io._source import RawSource

__all__ = ["VolumeHeader", "read_header"]

# Content bytes that hold any supported header: NIfTI-2 (540) > NIfTI-1 (348) > MGH (284).
_HEADER_CONTENT = 540
# Stored bytes read first: the compressed start of any header, unless its gzip header
# carries a long name, comment or extra field (then the rest of the file is read).
_FIRST_READ = 1 << 16


@dataclass(frozen=True, eq=False)
class VolumeHeader:
    """The header facts of an image file.

    Attributes:
        shape: Array shape as stored: ``(I, J, K)`` or ``(I, J, K, T…)`` (an MGH file
            with one frame is ``(I, J, K)``), as ``load_volume`` records in
            ``metadata["shape_on_disk"]``.
        affine: (4, 4) float64 voxel→world (RAS+, mm) matrix, read-only: the affine
            ``load_volume`` gives.
        dtype: Voxel dtype on disk in native byte order, e.g. ``"int16"``.
        format: ``"nifti1"``, ``"nifti2"`` or ``"mgh"`` (MGZ included).
        file_bytes: Size of the file in bytes (compressed, for ``.nii.gz``/``.mgz``).
    """

    shape: tuple[int, ...]
    affine: np.ndarray
    dtype: str
    format: Literal["nifti1", "nifti2", "mgh"]
    file_bytes: int

    def __post_init__(self) -> None:
        affine = np.array(self.affine, dtype=np.float64)
        affine.setflags(write=False)
        object.__setattr__(self, "affine", affine)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``(I, J, K)`` (from the affine)."""
        from brrrr.core.geometry import spacing

        s = spacing(self.affine)
        return (float(s[0]), float(s[1]), float(s[2]))

    @property
    def axcodes(self) -> str:
        """Orientation code such as ``"RAS"`` (closest axes for oblique grids)."""
        from brrrr.core.geometry import axcodes

        return axcodes(self.affine)

    def __repr__(self) -> str:
        spacing = ", ".join(f"{s:.3g}" for s in self.spacing)
        return (
            f"VolumeHeader(format={self.format!r}, shape={self.shape}, dtype={self.dtype}, "
            f"spacing=({spacing}) mm, axcodes={self.axcodes!r}, file_bytes={self.file_bytes})"
        )


def _head_source(path: Path) -> tuple[RawSource, int]:
    """The first stored bytes of ``path`` (enough for its header) and the file's size.

    Raises:
        VolumeReadError: Missing, a folder, unreadable, or empty; as ``open_source``.
    """
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            raw = file.read(_FIRST_READ)
            src = RawSource(raw=raw, name=str(path), path=path)
            if src.is_gzip and len(raw) < size and len(src.head(_HEADER_CONTENT)) < _HEADER_CONTENT:
                raw += file.read()
                src = RawSource(raw=raw, name=str(path), path=path)
    except FileNotFoundError:
        raise VolumeReadError("no such file", path=path) from None
    except IsADirectoryError:
        raise VolumeReadError("is a folder, expected a file", path=path) from None
    except OSError as exc:
        raise VolumeReadError(f"cannot read file: {exc.strerror or exc}", path=path) from None
    if not raw:
        raise VolumeReadError("file is empty (0 bytes)", path=path)
    return src, size


def read_header(path: str | os.PathLike[str]) -> VolumeHeader:
    """Read the header of a NIfTI-1/2 or MGH/MGZ file without decoding its voxels.

    Args:
        path: A ``.nii``, ``.nii.gz``, ``.mgh`` or ``.mgz`` file (recognised from its
            content, not its name).

    Returns:
        The :class:`VolumeHeader`.

    Raises:
        VolumeReadError: Missing, empty or unreadable file; a truncated or corrupt
            header; a zero-length axis; an invalid (singular, non-finite) affine.
        UnsupportedFormatError: Not a single-file NIfTI or an MGH/MGZ file (DICOM and
            nibabel's other formats are read by :func:`~brrrr.core.io.load_volume`),
            or a voxel type ``load_volume`` refuses (RGB, complex).
    """
    # The header parsers use nibabel: imported here, not with the module.
    from brrrr.core.io import mgh, nifti

    path = Path(path)
    src, size = _head_source(path)
    head = src.head(_HEADER_CONTENT)
    if nifti.is_nifti_header(head):
        layout = nifti._layout(src, max_voxels=None, dtype=None)
        return VolumeHeader(
            shape=layout.shape,
            affine=layout.affine,
            dtype=str(layout.disk_dtype.newbyteorder("=")),
            format=layout.format,
            file_bytes=size,
        )
    if mgh.is_mgh_header(head):
        found = mgh._layout(src)
        return VolumeHeader(
            shape=found.shape,
            affine=found.affine,
            dtype=str(found.disk_dtype.newbyteorder("=")),
            format="mgh",
            file_bytes=size,
        )
    raise UnsupportedFormatError(
        f"not a NIfTI-1/2 or MGH/MGZ file (first bytes {head[:8]!r}); read_header reads "
        "those headers only, load_volume reads DICOM and nibabel's other formats",
        path=path,
    )
