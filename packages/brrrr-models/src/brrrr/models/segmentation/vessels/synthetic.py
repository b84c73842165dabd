"""Synthetic two-photon vessel volumes, written in the MiniVess layout.

**Synthetic data, for tests, CI and the docs.** A volume is a field of view in µm (default
96 × 96 × 120 µm) sampled at an anisotropic voxel size like MiniVess's (0.99 or 0.62 µm
in-plane, 5 µm between slices). Vessels are grown as trees of tubes in µm: three to five
trunks enter from the lateral faces (radius 3–7 µm), walk inwards with a little curvature,
branch (each child thinner, ×0.6–0.8) and taper until they leave the field or are thinner than
a capillary (1.2 µm); crossing branches make loops, as anastomoses do in cortex. The label is
the union of the tubes. The image mimics two-photon angiography: bright dye in the lumen (each
tree a little brighter or dimmer), blurred by an anisotropic point-spread function (σ 0.5 µm
in-plane, 2 µm along the optical axis), weak autofluorescent background, signal fading with
depth, Poisson photon noise and Gaussian read noise, stored as uint16.

:func:`write_synthetic_vessels` writes ``OUT/imagesTr/mvNN.nii.gz``,
``OUT/labelsTr/mvNN.nii.gz`` (uint8, 0/1) and ``OUT/metadata/mvNN.json`` (the voxel size
under the OME names the MiniVess converter writes, ``PixelsPhysicalSizeX/Y/Z`` in µm, plus the
seed and the label's Betti numbers); the NIfTI headers state µm. This is the layout of
``brrrr fetch minivess``, so everything that reads MiniVess reads these.

Example:
    >>> volume = synthetic_vessel_volume(0, field_um=(40, 40, 20))
    >>> volume.image.shape, volume.image.dtype.name, volume.label.dtype.name
    ((40, 40, 4), 'uint16', 'uint8')
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brrrr.models.segmentation.errors import SegmentationError

__all__ = [
    "MINIVESS_SPACINGS_UM",
    "SyntheticVesselVolume",
    "synthetic_vessel_volume",
    "write_synthetic_vessels",
]

#: Voxel sizes (µm) of MiniVess's two common acquisitions; the writer alternates them.
MINIVESS_SPACINGS_UM: tuple[tuple[float, float, float], ...] = (
    (0.99, 0.99, 5.0),
    (0.62, 0.62, 5.0),
)

_CAPILLARY_UM = 1.2
_STEP_UM = 6.0


@dataclass(frozen=True)
class SyntheticVesselVolume:
    """One synthetic volume.

    Attributes:
        image: ``(I, J, K)`` uint16 two-photon-like intensities.
        label: ``(I, J, K)`` uint8 vessel mask (0/1).
        spacing_um: Voxel size in µm along ``(I, J, K)``.
        seed: The seed it was drawn from.
    """

    image: np.ndarray
    label: np.ndarray
    spacing_um: tuple[float, float, float]
    seed: int


def _rotate(direction: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """``direction`` turned by ``angle`` radians about a random perpendicular axis."""
    other = rng.normal(size=3)
    other -= other.dot(direction) * direction
    other /= np.linalg.norm(other) + 1e-12
    turned = np.cos(angle) * direction + np.sin(angle) * other
    return turned / np.linalg.norm(turned)


def _flatten(direction: np.ndarray, limit: float) -> np.ndarray:
    """Keep the direction's axial part below ``limit``: cortical vessels run mostly in-plane
    over a stack this thin."""
    d = direction.copy()
    d[2] = float(np.clip(d[2], -limit, limit))
    return d / np.linalg.norm(d)


def _grow_tree(
    start: np.ndarray,
    direction: np.ndarray,
    radius: float,
    field: np.ndarray,
    rng: np.random.Generator,
) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
    """Segments ``(a, b, radius_a, radius_b)`` in µm of one vessel tree."""
    segments: list[tuple[np.ndarray, np.ndarray, float, float]] = []
    stack = [(start, direction, radius, 0)]
    margin = 2.0 * radius
    while stack and len(segments) < 400:
        point, heading, r, depth = stack.pop()
        for _ in range(60):
            heading = _flatten(_rotate(heading, rng.normal(0.0, 0.18), rng), 0.35)
            r_next = max(r * rng.uniform(0.95, 0.995), 0.0)
            nxt = point + _STEP_UM * heading
            segments.append((point, nxt, r, r_next))
            point, r = nxt, r_next
            if r < _CAPILLARY_UM or np.any(point < -margin) or np.any(point > field + margin):
                break
            if depth < 4 and rng.random() < 0.14:
                child = r * rng.uniform(0.6, 0.8)
                if child >= _CAPILLARY_UM:
                    angle = rng.uniform(0.5, 1.2)
                    stack.append(
                        (point, _flatten(_rotate(heading, angle, rng), 0.35), child, depth + 1)
                    )
    return segments


def _entry(field: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A start point on a lateral face and a heading into the field."""
    axis = int(rng.integers(2))
    side = int(rng.integers(2))
    point = rng.uniform(0.15, 0.85, size=3) * field
    point[2] = rng.uniform(0.2, 0.8) * field[2]
    point[axis] = side * field[axis]
    heading = np.zeros(3)
    heading[axis] = 1.0 if side == 0 else -1.0
    heading = _flatten(_rotate(heading, rng.uniform(0.0, 0.5), rng), 0.2)
    return point, heading


def _rasterise(
    segments: list[tuple[np.ndarray, np.ndarray, float, float]],
    shape: tuple[int, int, int],
    spacing: np.ndarray,
    out: np.ndarray,
) -> None:
    """Set the voxels whose centres lie inside any tapered tube (``out`` is boolean)."""
    for a, b, ra, rb in segments:
        reach = max(ra, rb, 0.55 * float(spacing.max()))
        low = np.floor((np.minimum(a, b) - reach) / spacing).astype(int)
        high = np.ceil((np.maximum(a, b) + reach) / spacing).astype(int) + 1
        low = np.clip(low, 0, shape)
        high = np.clip(high, 0, shape)
        if np.any(high <= low):
            continue
        axes = [(np.arange(lo, hi) + 0.5) * s for lo, hi, s in zip(low, high, spacing, strict=True)]
        x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
        ab = b - a
        length2 = float(ab.dot(ab)) or 1e-12
        t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / length2, 0, 1)
        r = ra + t * (rb - ra)
        # A tube thinner than a voxel still marks the voxels it passes through, as an annotator
        # labels a vessel visible in a slice: each axis's radius is at least half a voxel.
        reach2 = [np.maximum(r, 0.55 * s) ** 2 for s in spacing]
        d2 = (
            (x - a[0] - t * ab[0]) ** 2 / reach2[0]
            + (y - a[1] - t * ab[1]) ** 2 / reach2[1]
            + (z - a[2] - t * ab[2]) ** 2 / reach2[2]
        )
        box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
        out[box] |= d2 <= 1.0


def synthetic_vessel_volume(
    seed: int,
    *,
    spacing_um: Sequence[float] = MINIVESS_SPACINGS_UM[0],
    field_um: Sequence[float] = (96.0, 96.0, 120.0),
    trees: int | None = None,
) -> SyntheticVesselVolume:
    """Draw one two-photon-like vessel volume and its mask from a seed.

    Args:
        seed: Seed of everything random (same seed, same volume).
        spacing_um: Voxel size in µm along ``(I, J, K)``.
        field_um: Field of view in µm; the shape is ``round(field / spacing)``.
        trees: Vessel trees; ``None`` draws 3 to 5.

    Returns:
        The :class:`SyntheticVesselVolume`.

    Raises:
        SegmentationError: Non-positive voxel sizes or field, or a field under 4 voxels.
    """
    spacing = np.asarray(spacing_um, dtype=np.float64).reshape(-1)
    field = np.asarray(field_um, dtype=np.float64).reshape(-1)
    if spacing.size != 3 or field.size != 3 or not ((spacing > 0).all() and (field > 0).all()):
        raise SegmentationError(
            f"spacing_um and field_um need 3 positive numbers, got {list(spacing)}, {list(field)}"
        )
    shape_array = np.maximum(np.round(field / spacing).astype(int), 1)
    if np.any(shape_array < 4):
        raise SegmentationError(
            f"a {list(field)} µm field at {list(spacing)} µm is {list(shape_array)} voxels; "
            "each axis needs at least 4"
        )
    shape = (int(shape_array[0]), int(shape_array[1]), int(shape_array[2]))
    field = shape_array * spacing
    rng = np.random.default_rng([int(seed), 0x5E55E1])
    label = np.zeros(shape, dtype=bool)
    dye = np.zeros(shape, dtype=np.float32)
    for _ in range(int(trees) if trees is not None else int(rng.integers(3, 6))):
        start, heading = _entry(field, rng)
        tree = np.zeros(shape, dtype=bool)
        _rasterise(
            _grow_tree(start, heading, rng.uniform(3.0, 7.0), field, rng), shape, spacing, tree
        )
        label |= tree
        dye = np.maximum(dye, tree * np.float32(rng.uniform(0.6, 1.0)))
    from scipy import ndimage

    psf_sigma = np.asarray([0.5, 0.5, 2.0]) / spacing
    signal = ndimage.gaussian_filter(dye, sigma=psf_sigma, mode="nearest")
    background = ndimage.gaussian_filter(rng.random(shape).astype(np.float32), sigma=4.0)
    background = 0.06 + 0.08 * (background - background.min()) / (np.ptp(background) + 1e-6)
    depth = np.exp(-((np.arange(shape[2]) + 0.5) * spacing[2]) / 400.0)[None, None, :]
    photons = 300.0 * (signal + background) * depth
    counts = rng.poisson(photons).astype(np.float64) + rng.normal(0.0, 3.0, size=shape)
    image = np.clip(np.round(counts * 8.0 + 100.0), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    return SyntheticVesselVolume(
        image,
        label.astype(np.uint8),
        (float(spacing[0]), float(spacing[1]), float(spacing[2])),
        int(seed),
    )


def _save_nifti(path: Path, data: np.ndarray, spacing_um: Sequence[float]) -> None:
    import nibabel as nib

    image = nib.Nifti1Image(data, np.diag([*spacing_um, 1.0]))
    image.header.set_xyzt_units(xyz="micron")
    image.set_sform(np.diag([*spacing_um, 1.0]), code=2)
    image.set_qform(np.diag([*spacing_um, 1.0]), code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)


def write_synthetic_vessels(
    out: str | os.PathLike[str],
    *,
    volumes: int = 4,
    seed: int = 0,
    spacings_um: Sequence[Sequence[float]] = MINIVESS_SPACINGS_UM,
    field_um: Sequence[float] = (96.0, 96.0, 120.0),
) -> list[str]:
    """Write ``volumes`` synthetic volumes to ``out`` in the MiniVess layout.

    Volume ``n`` (named ``mv{n+1:02d}``) is drawn from seed ``seed + n`` at voxel size
    ``spacings_um[n % len(spacings_um)]``; see the module docstring for the files.

    Args:
        out: Output folder (created).
        volumes: Number of volumes (≥ 1).
        seed: Seed of the first volume.
        spacings_um: Voxel sizes in µm, used in turn.
        field_um: Field of view in µm of every volume.

    Returns:
        The ids written (``["mv01", ...]``).

    Raises:
        SegmentationError: ``volumes`` < 1, or a bad voxel size or field.
    """
    if volumes < 1:
        raise SegmentationError(f"volumes must be at least 1, got {volumes}")
    if not spacings_um:
        raise SegmentationError("spacings_um needs at least one voxel size")
    from brrrr.models.segmentation.vessels.metrics import betti_numbers

    root = Path(out)
    ids = []
    for n in range(volumes):
        name = f"mv{n + 1:02d}"
        volume = synthetic_vessel_volume(
            seed + n, spacing_um=spacings_um[n % len(spacings_um)], field_um=field_um
        )
        _save_nifti(root / "imagesTr" / f"{name}.nii.gz", volume.image, volume.spacing_um)
        _save_nifti(root / "labelsTr" / f"{name}.nii.gz", volume.label, volume.spacing_um)
        sx, sy, sz = volume.spacing_um
        sidecar = {
            "PixelsPhysicalSizeX": sx,
            "PixelsPhysicalSizeY": sy,
            "PixelsPhysicalSizeZ": sz,
            "PhysicalSizeXUnit": "µm",
            "synthetic": True,
            "generator": "brrrr.models.segmentation.vessels.synthetic",
            "seed": volume.seed,
            "label_betti_numbers": list(betti_numbers(volume.label)),
        }
        (root / "metadata").mkdir(parents=True, exist_ok=True)
        text = json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n"
        (root / "metadata" / f"{name}.json").write_text(text, encoding="utf-8")
        ids.append(name)
    return ids
