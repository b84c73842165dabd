"""Synthetic acute-stroke cases: DWI, ADC and FLAIR with lesions, drawn from a seed.

**Synthetic data, not patients.** These cases exist so that a lesion model can be trained,
tested and demonstrated offline; a model trained on them (such as the one shipped in
``brrrr.models.segmentation``, see :func:`~brrrr.models.segmentation.checkpoints.load_synthetic_lesion_model`)
has never seen a real scan and must not be used on one. Plug real checkpoints in with
:func:`~brrrr.models.segmentation.checkpoints.load_segmenter`.

Each case is an analytic head described in world millimetres (RAS+), so every channel can be
drawn on any grid and the anatomy stays put: ``flair_grid=`` draws the FLAIR on another grid
(another voxel size or orientation), exactly as a scanner would. The images are brain
extracted (zero outside the brain), as in ISLES'22. What a seed varies:

* **anatomy**: brain size (±10 %), position (±4 mm) and head rotation (±8°), ventricles,
  grey/white texture;
* **lesions**: 0–4 per case (about 1 case in 10 has none), 4–18 mm radius, irregular (unions
  of 1–3 rotated ellipsoids with a wobbly border), anywhere in the parenchyma;
* **contrast**: acute stroke — bright on DWI (1.5–3× the tissue), dark on ADC (45–70 % of
  the tissue), FLAIR from normal (FLAIR-negative, hyperacute) to bright; about a third of
  the cases hold a *mimic* (T2 shine-through: bright on DWI and FLAIR, normal-to-high ADC)
  that is not a lesion, so DWI alone is not enough;
* **scanner**: intensity scale per channel, a smooth bias field, Rician noise (2–8 %).

Example:
    >>> case = synthetic_stroke_case(3, shape=(40, 48, 40), spacing=4.0)
    >>> sorted(case.inputs()), case.mask.shape
    (['adc', 'dwi', 'flair'], (40, 48, 40))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from brrrr.core.samples import phantom_affine
from brrrr.core.volume import Volume

__all__ = [
    "DEFAULT_GRID",
    "Grid",
    "StrokeCase",
    "random_grid",
    "synthetic_lesion_mask",
    "synthetic_stroke_case",
]


@dataclass(frozen=True)
class Grid:
    """A voxel grid: spatial ``shape``, voxel ``spacing`` (mm) and orientation ``axcodes``.

    The grid is centred on world (0, 0, 0), like the samples of ``brrrr.core.samples``.
    """

    shape: tuple[int, int, int] = (56, 68, 56)
    spacing: float | tuple[float, ...] = 3.0
    axcodes: str = "RAS"

    def affine(self) -> np.ndarray:
        """The (4, 4) voxel→world matrix of the grid."""
        return phantom_affine(self.shape, self.spacing, self.axcodes)


#: The default grid of the cases (the shipped model's grid): 3 mm isotropic, 168×204×168 mm.
DEFAULT_GRID = Grid()

_FIELD_OF_VIEW_MM = (168.0, 204.0, 168.0)  # along world x, y, z
_ORIENTATIONS = ("RAS", "LPS", "LAS", "RPI", "LIP", "PIR", "ASL", "SRA")


def random_grid(seed: int) -> Grid:
    """A random acquisition grid covering the head, as scanners write them.

    Voxels of 2–4 mm, one axis in three cases a thick slice (4–6 mm), and one of several
    orientations (RAS, LPS, LAS, RPI, LIP, PIR, ASL, SRA); the field of view is about
    168×204×168 mm, centred on the head.
    """
    rng = np.random.default_rng([int(seed), 0x6121D])
    spacing = rng.uniform(2.0, 4.0, 3)
    if rng.random() < 1 / 3:
        spacing[int(rng.integers(3))] = rng.uniform(4.0, 6.0)
    axcodes = str(rng.choice(_ORIENTATIONS))
    shape = []
    for axis, letter in enumerate(axcodes):
        world = "LRPAIS".index(letter) // 2
        shape.append(max(1, int(np.ceil(_FIELD_OF_VIEW_MM[world] / spacing[axis]))))
    return Grid((shape[0], shape[1], shape[2]), tuple(float(round(s, 3)) for s in spacing), axcodes)


@dataclass(frozen=True)
class StrokeCase:
    """One synthetic case: three channels and the lesion mask on the DWI grid.

    Attributes:
        dwi: Diffusion-weighted image (b = 1000), float32.
        adc: Apparent diffusion coefficient (10⁻⁶ mm²/s, like ISLES'22), float32.
        flair: FLAIR, float32, on ``flair_grid`` when one was given, else the DWI grid.
        mask: Lesion mask, uint8, on the DWI grid.
        seed: The seed it was drawn from.
        n_lesions: Number of lesions drawn (some may be clipped away by the brain border).
    """

    dwi: Volume
    adc: Volume
    flair: Volume
    mask: Volume
    seed: int
    n_lesions: int

    def inputs(self, *, flair: bool = True) -> dict[str, Volume]:
        """The named input volumes of a segmenter: ``dwi``, ``adc`` (and ``flair``)."""
        named = {"dwi": self.dwi, "adc": self.adc}
        if flair:
            named["flair"] = self.flair
        return named


# -- the analytic head -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Ellipsoid:
    centre: np.ndarray  # (3,) mm
    axes: np.ndarray  # (3,) semi-axes, mm
    rotation: np.ndarray  # (3, 3): world offsets → ellipsoid frame

    def value(self, points: np.ndarray) -> np.ndarray:
        """Σ (x/a)² of points ``(3, N)``: ≤ 1 inside."""
        local = self.rotation @ (points - self.centre[:, None])
        return np.sum((local / self.axes[:, None]) ** 2, axis=0)


@dataclass(frozen=True)
class _Texture:
    """A smooth random field in world coordinates: a sum of plane waves, values in ~[-1, 1]."""

    frequencies: np.ndarray  # (K, 3) cycles per mm
    phases: np.ndarray  # (K,)

    def value(self, points: np.ndarray) -> np.ndarray:
        waves = np.cos(2 * np.pi * (self.frequencies @ points) + self.phases[:, None])
        return waves.sum(axis=0) * np.sqrt(2.0 / len(self.phases))


@dataclass(frozen=True)
class _Blob:
    parts: tuple[_Ellipsoid, ...]
    wobble: _Texture
    wobble_amplitude: float

    def inside(self, points: np.ndarray) -> np.ndarray:
        level = np.min(np.stack([part.value(points) for part in self.parts]), axis=0)
        return level <= 1.0 + self.wobble_amplitude * self.wobble.value(points)


@dataclass(frozen=True)
class _Contrast:
    dwi_scale: float
    adc_scale: float
    flair_scale: float
    dwi_lesion: float
    adc_lesion: float
    flair_lesion: float
    noise: float
    bias: tuple[_Texture, _Texture, _Texture]
    heterogeneity: _Texture


@dataclass(frozen=True)
class _Head:
    rotation: np.ndarray
    shift: np.ndarray
    brain: _Ellipsoid
    white: _Ellipsoid
    ventricles: tuple[_Ellipsoid, _Ellipsoid]
    folding: _Texture
    lesions: tuple[_Blob, ...]
    mimics: tuple[_Blob, ...]
    contrast: _Contrast = field(repr=False)


def _rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    angles = np.deg2rad(rng.uniform(-max_degrees, max_degrees, 3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _texture(
    rng: np.random.Generator, *, waves: int, wavelength_mm: tuple[float, float]
) -> _Texture:
    directions = rng.normal(size=(waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    lengths = rng.uniform(*wavelength_mm, size=(waves, 1))
    return _Texture(directions / lengths, rng.uniform(0, 2 * np.pi, waves))


def _blob(
    rng: np.random.Generator, centre: np.ndarray, radius: float, *, max_parts: int = 3
) -> _Blob:
    parts = []
    for index in range(int(rng.integers(1, max_parts + 1))):
        offset = np.zeros(3) if index == 0 else rng.normal(0, 0.45 * radius, 3)
        axes = radius * rng.uniform(0.55, 1.15, 3)
        parts.append(_Ellipsoid(centre + offset, axes, _random_rotation(rng)))
    wobble = _texture(rng, waves=6, wavelength_mm=(max(6.0, radius), max(12.0, 3 * radius)))
    return _Blob(tuple(parts), wobble, float(rng.uniform(0.1, 0.35)))


def _inside_parenchyma(
    brain: _Ellipsoid, ventricles: Sequence[_Ellipsoid], point: np.ndarray
) -> bool:
    p = point[:, None]
    return bool(brain.value(p)[0] < 0.72 and all(v.value(p)[0] > 1.6 for v in ventricles))


def _draw_centre(
    rng: np.random.Generator, brain: _Ellipsoid, ventricles: Sequence[_Ellipsoid]
) -> np.ndarray:
    for _ in range(1000):
        point = brain.centre + rng.uniform(-1, 1, 3) * brain.axes
        if _inside_parenchyma(brain, ventricles, point):
            return point
    return brain.centre + np.array([0.5 * brain.axes[0], 0.0, 0.0])


def _draw_head(seed: int) -> _Head:
    rng = np.random.default_rng([seed, 0x5EED])
    rotation = _rotation(rng, 8.0)
    shift = rng.uniform(-4, 4, 3)
    scale = rng.uniform(0.9, 1.1, 3)
    brain = _Ellipsoid(np.array([0.0, 0.0, 2.0]), np.array([64.0, 82.0, 68.0]) * scale, np.eye(3))
    white = _Ellipsoid(np.array([0.0, 2.0, 6.0]), np.array([51.0, 68.0, 54.0]) * scale, np.eye(3))
    size = rng.uniform(0.7, 1.3)
    ventricles = (
        _Ellipsoid(np.array([-10.0, 4.0, 10.0]), np.array([7.0, 22.0, 9.0]) * size, np.eye(3)),
        _Ellipsoid(np.array([10.0, 4.0, 10.0]), np.array([7.0, 22.0, 9.0]) * size, np.eye(3)),
    )
    folding = _texture(rng, waves=12, wavelength_mm=(10.0, 30.0))
    n_lesions = int(rng.choice([0, 1, 1, 1, 2, 2, 2, 3, 3, 4], p=[0.1] * 10))
    lesions = tuple(
        _blob(
            rng,
            _draw_centre(rng, brain, ventricles),
            float(np.exp(rng.uniform(np.log(4), np.log(18)))),
        )
        for _ in range(n_lesions)
    )
    n_mimics = int(rng.choice([0, 0, 1, 2]))
    mimics = tuple(
        _blob(rng, _draw_centre(rng, brain, ventricles), float(rng.uniform(4, 10)), max_parts=1)
        for _ in range(n_mimics)
    )
    bias = tuple(_texture(rng, waves=3, wavelength_mm=(150.0, 400.0)) for _ in range(3))
    contrast = _Contrast(
        dwi_scale=float(rng.uniform(200, 900)),
        adc_scale=float(rng.uniform(0.85, 1.15)),
        flair_scale=float(rng.uniform(200, 900)),
        dwi_lesion=float(rng.uniform(1.5, 3.0)),
        adc_lesion=float(rng.uniform(0.45, 0.7)),
        flair_lesion=float(rng.uniform(1.0, 1.5)),
        noise=float(rng.uniform(0.02, 0.08)),
        bias=(bias[0], bias[1], bias[2]),
        heterogeneity=_texture(rng, waves=8, wavelength_mm=(5.0, 15.0)),
    )
    return _Head(rotation, shift, brain, white, ventricles, folding, lesions, mimics, contrast)


# -- rendering -------------------------------------------------------------------------------
# Tissue values (white matter, grey matter, CSF) of each channel before scaling.
_DWI = (1.0, 1.15, 0.35)
_ADC = (750.0, 850.0, 3000.0)
_FLAIR = (0.85, 1.0, 0.15)


@dataclass(frozen=True)
class _Tissues:
    brain: np.ndarray
    white: np.ndarray
    csf: np.ndarray
    lesion: np.ndarray
    mimic: np.ndarray
    fold: np.ndarray


def _head_points(head: _Head, grid: Grid) -> tuple[np.ndarray, tuple[int, int, int]]:
    shape = (int(grid.shape[0]), int(grid.shape[1]), int(grid.shape[2]))
    affine = grid.affine()
    index = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ index + affine[:3, 3:4]
    # The head moved and turned in the scanner: anatomy lives in head coordinates.
    return head.rotation.T @ (world - head.shift[:, None]), shape


def _blobs_inside(blobs: Sequence[_Blob], points: np.ndarray) -> np.ndarray:
    inside = np.zeros(points.shape[1], dtype=bool)
    for blob in blobs:
        # Only points near the blob can be inside it: test those (fast on big grids).
        reach = max(2.0 * float(np.max(part.axes)) for part in blob.parts)
        centre = blob.parts[0].centre[:, None]
        near = np.flatnonzero(np.all(np.abs(points - centre) <= 2 * reach, axis=0))
        inside[near] |= blob.inside(points[:, near])
    return inside


def _tissues(head: _Head, points: np.ndarray) -> _Tissues:
    fold = head.folding.value(points)
    brain = head.brain.value(points) <= 1.0
    white = (head.white.value(points) <= 1.0 + 0.12 * fold) & brain
    csf = (head.ventricles[0].value(points) <= 1.0) | (head.ventricles[1].value(points) <= 1.0)
    # Sulcal CSF: thin ribbons of grey matter where the folding field peaks.
    csf |= brain & ~white & (fold > 1.25)
    csf &= brain
    lesion = _blobs_inside(head.lesions, points) & brain & ~csf
    mimic = _blobs_inside(head.mimics, points) & brain & ~csf & ~lesion
    return _Tissues(brain, white, csf, lesion, mimic, fold)


def _render(
    head: _Head,
    tissues: _Tissues,
    points: np.ndarray,
    name: str,
    rng: np.random.Generator,
) -> np.ndarray:
    c = head.contrast
    mimic_adc = 1.0 + 0.4 * (c.dwi_lesion - 1.5) / 1.5  # shine-through: ADC normal to high
    settings = {
        "dwi": (_DWI, c.dwi_scale, c.dwi_lesion, 1.0 + 0.8 * (c.dwi_lesion - 1.0), 0),
        "adc": (_ADC, c.adc_scale, c.adc_lesion, mimic_adc, 1),
        "flair": (_FLAIR, c.flair_scale, c.flair_lesion, 1.35, 2),
    }
    (white_value, grey_value, csf_value), scale, lesion, mimic, bias = settings[name]
    image = np.where(tissues.white, white_value, grey_value)
    image = np.where(tissues.csf, csf_value, image) * (1.0 + 0.03 * tissues.fold)
    where = np.flatnonzero(tissues.lesion)
    variation = 1.0 + 0.12 * c.heterogeneity.value(points[:, where])
    image[where] *= 1 + (lesion - 1) * variation
    image[tissues.mimic] *= mimic
    inside = np.flatnonzero(tissues.brain)
    image[inside] *= scale * np.exp(0.12 * c.bias[bias].value(points[:, inside]))
    sigma = c.noise * scale * grey_value
    real = image[inside] + rng.normal(0.0, sigma, inside.size)
    imaginary = rng.normal(0.0, sigma, inside.size)
    out = np.zeros(image.shape, dtype=np.float32)
    out[inside] = np.sqrt(real * real + imaginary * imaginary)
    return out


def synthetic_lesion_mask(seed: int, *, grid: Grid = DEFAULT_GRID) -> Volume:
    """The lesion mask of case ``seed`` drawn on ``grid`` (uint8), without the images."""
    head = _draw_head(int(seed))
    points, dims = _head_points(head, grid)
    lesion = _tissues(head, points).lesion.reshape(dims).astype(np.uint8)
    meta = {"format": "synthetic", "seed": int(seed), "synthetic": True, "label": "lesion"}
    return Volume(lesion, grid.affine(), metadata=meta)


def synthetic_stroke_case(
    seed: int,
    *,
    shape: Sequence[int] = DEFAULT_GRID.shape,
    spacing: float | Sequence[float] = DEFAULT_GRID.spacing,
    axcodes: str = DEFAULT_GRID.axcodes,
    flair_grid: Grid | None = None,
) -> StrokeCase:
    """Draw one synthetic acute-stroke case (see the module docstring for what varies).

    The same seed and grid always give the same voxels; the same seed on another grid gives
    the same anatomy, lesions and contrast (the noise is redrawn).

    Args:
        seed: Seed of the case (any non-negative integer).
        shape: Spatial shape of the DWI/ADC grid.
        spacing: Voxel size of the DWI/ADC grid, mm.
        axcodes: Orientation of the DWI/ADC grid.
        flair_grid: Draw the FLAIR on this grid instead of the DWI grid.

    Returns:
        The :class:`StrokeCase`.
    """
    head = _draw_head(int(seed))
    sizes = spacing if isinstance(spacing, float | int) else tuple(float(s) for s in spacing)
    dwi_grid = Grid((int(shape[0]), int(shape[1]), int(shape[2])), sizes, axcodes)
    rng = np.random.default_rng([int(seed), 0x401CE])
    points, dims = _head_points(head, dwi_grid)
    tissues = _tissues(head, points)
    dwi = _render(head, tissues, points, "dwi", rng).reshape(dims)
    adc = _render(head, tissues, points, "adc", rng).reshape(dims)
    if flair_grid is None:
        flair = _render(head, tissues, points, "flair", rng).reshape(dims)
        flair_affine = dwi_grid.affine()
    else:
        flair_points, flair_dims = _head_points(head, flair_grid)
        flair_tissues = _tissues(head, flair_points)
        flair = _render(head, flair_tissues, flair_points, "flair", rng).reshape(flair_dims)
        flair_affine = flair_grid.affine()
    affine = dwi_grid.affine()
    meta = {"format": "synthetic", "seed": int(seed), "synthetic": True}
    return StrokeCase(
        dwi=Volume(dwi, affine, metadata={**meta, "channel": "dwi"}),
        adc=Volume(adc, affine, metadata={**meta, "channel": "adc"}),
        flair=Volume(flair, flair_affine, metadata={**meta, "channel": "flair"}),
        mask=Volume(
            tissues.lesion.reshape(dims).astype(np.uint8),
            affine,
            metadata={**meta, "label": "lesion"},
        ),
        seed=int(seed),
        n_lesions=len(head.lesions),
    )
