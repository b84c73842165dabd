"""Siemens private headers: the CSA image header, and mosaics (many slices in one image).

Siemens EPI (fMRI, DWI) stores a whole volume in one 2D image, the slices tiled in a
square grid of ``ceil(sqrt(n))`` tiles a side (``n`` = ``NumberOfImagesInMosaic``
of the CSA image header, (0029,1010)); unused tiles at the end are blank. Tile ``t``
sits in tile row ``t // grid`` and tile column ``t % grid``.

``ImagePositionPatient`` of a mosaic is the corner of the *whole* mosaic as if it
were one slice of ``Rows × Columns`` pixels; the first tile's corner lies half the
difference between mosaic and tile size further along both in-plane axes (the
mosaic position correction, as nibabel's ``MosaicWrapper`` and dcm2niix apply it).
Tiles follow one another along the CSA ``SliceNormalVector`` by one slice step
(``SpacingBetweenSlices``, else ``SliceThickness``); the reader then sorts them along
DICOM's own normal like any other slices.

The CSA header is parsed with nibabel's ``nibabel.nicom.csareader``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from brrrr.core.errors import VolumeReadError

__all__ = [
    "MosaicLayout",
    "csa_image_header",
    "csa_value",
    "is_mosaic",
    "mosaic_layout",
    "mosaic_tile",
]


def is_mosaic(ds: Dataset) -> bool:
    """Whether a header describes a Siemens mosaic (``MOSAIC`` in ``ImageType``)."""
    return "MOSAIC" in [str(v).upper() for v in (ds.get("ImageType") or [])]


def csa_image_header(ds: Dataset) -> dict[str, Any] | None:
    """The parsed CSA image header (0029,xx10), or ``None`` when there is none."""
    if (0x0029, 0x0010) not in ds:
        return None
    with warnings.catch_warnings():
        # nibabel.nicom warns on import that its DICOM *readers* are experimental;
        # we use only its CSA parser.
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom import csareader

    try:
        header = csareader.get_csa_header(ds, "image")
    except Exception:  # a private block that is not CSA, or a damaged one
        return None
    return header if isinstance(header, dict) else None


def csa_value(csa: dict[str, Any] | None, name: str, n: int | None = None) -> Any:
    """A CSA tag's value: a scalar (``n=None``) or a vector of ``n`` values; ``None`` if absent."""
    if not csa:
        return None
    item = csa.get("tags", {}).get(name)
    if not item or not item.get("items"):
        return None
    values = item["items"]
    if n is None:
        return values[0]
    return list(values[:n]) if len(values) >= n else None


@dataclass(frozen=True)
class MosaicLayout:
    """How the tiles of one mosaic image are laid out, and where they sit in space.

    Attributes:
        n_tiles: Number of slices in the mosaic (``NumberOfImagesInMosaic``).
        grid: Tiles per side of the square grid.
        shape: ``(rows, cols)`` of one tile.
        positions: ``(n_tiles, 3)`` LPS positions of each tile's first pixel.
        step_mm: Distance between consecutive tiles along the slice normal.
        step_source: The attribute ``step_mm`` came from.
        slice_times_s: Acquisition time of each tile relative to the first
            (``MosaicRefAcqTimes``), or ``None``.
    """

    n_tiles: int
    grid: int
    shape: tuple[int, int]
    positions: np.ndarray
    step_mm: float
    step_source: str
    slice_times_s: list[float] | None


def _slice_step(ds: Dataset) -> tuple[float, str]:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            step = float(ds.get(keyword) or 0)
        except (TypeError, ValueError):
            step = 0.0
        if step > 0 and math.isfinite(step):
            return step, keyword
    return 1.0, "default 1 mm"


def mosaic_layout(
    ds: Dataset,
    csa: dict[str, Any] | None,
    *,
    position: np.ndarray,
    orientation: np.ndarray,
    spacing: np.ndarray,
    name: str,
) -> MosaicLayout:
    """Tile the mosaic described by ``ds`` (positions in LPS mm).

    Args:
        ds: The mosaic file's header.
        csa: Its parsed CSA image header.
        position: ``(3,)`` ``ImagePositionPatient`` of the whole mosaic.
        orientation: ``(6,)`` ``ImageOrientationPatient``.
        spacing: ``(2,)`` ``PixelSpacing`` (between rows, between columns).
        name: The file, for error messages.

    Raises:
        VolumeReadError: No CSA header or no ``NumberOfImagesInMosaic``, or a tile
            grid that does not divide the image.
    """
    n = csa_value(csa, "NumberOfImagesInMosaic")
    if not n:
        raise VolumeReadError(
            "Siemens mosaic (ImageType MOSAIC) without NumberOfImagesInMosaic in its CSA image "
            "header (0029,1010): the number of slices tiled in the image is unknown",
            path=name,
        )
    n = int(n)
    grid = math.ceil(math.sqrt(n))
    rows, cols = int(ds.Rows), int(ds.Columns)
    if rows % grid or cols % grid:
        raise VolumeReadError(
            f"Siemens mosaic of {n} slices ({grid}×{grid} tiles) cannot tile its {cols}×{rows} "
            "pixels evenly: the image or its CSA header is damaged",
            path=name,
        )
    tile = (rows // grid, cols // grid)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    csa_normal = csa_value(csa, "SliceNormalVector", 3)
    if csa_normal is not None:
        given = np.asarray(csa_normal, dtype=np.float64)
        # Siemens writes the normal as the acquisition saw it; DICOM's cross product is
        # the better-conditioned direction, the CSA vector gives the sign.
        if np.linalg.norm(given) > 0 and float(given @ normal) < 0:
            normal = -normal
    first = (
        position
        + row_dir * spacing[1] * (cols - tile[1]) / 2
        + col_dir * spacing[0] * (rows - tile[0]) / 2
    )
    step, source = _slice_step(ds)
    positions = first + np.arange(n)[:, None] * (normal * step)
    times = csa_value(csa, "MosaicRefAcqTimes", n)
    slice_times = None if times is None else [float(t) / 1000.0 for t in times]
    return MosaicLayout(n, grid, tile, positions, step, source, slice_times)


def mosaic_tile(pixels: np.ndarray, layout: MosaicLayout, tile: int) -> np.ndarray:
    """Tile number ``tile`` (``(rows, cols)``) of a decoded mosaic image."""
    rows, cols = layout.shape
    r, c = divmod(tile, layout.grid)
    return pixels[r * rows : (r + 1) * rows, c * cols : (c + 1) * cols]
