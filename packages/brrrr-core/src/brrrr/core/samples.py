"""Built-in sample data: deterministic head-like phantoms and the real MNI T1.

The phantom is drawn in world millimetres (RAS+, centred on the origin), so
the same anatomy appears whatever the shape, voxel size or orientation asked
for: a phantom at 1 mm RAS and one at 2 mm LPS describe the same head. Tissue
classes (scalp, skull, CSF, grey matter, white matter, two ventricles and an
optional lesion) get MRI-T1-like intensities or CT Hounsfield units, with
Rician (MRI) or Gaussian (CT) noise from a seeded generator.

Example:
    >>> from brrrr.core import samples
    >>> image, lesion = samples.lesion_phantom(shape=(40, 48, 40), spacing=4.0)
    >>> image.shape, int(lesion.data.max())
    ((40, 48, 40), 1)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from brrrr.core.errors import MissingDependencyError
from brrrr.core.geometry import ALL_AXCODES
from brrrr.core.volume import Volume

__all__ = ["lesion_phantom", "mni_t1", "phantom", "phantom_affine"]

Modality = Literal["t1", "ct"]

# (semi-axes in mm along x, y, z; centre in mm) of each nested structure.
_SCALP = ((74.0, 94.0, 84.0), (0.0, 0.0, 0.0))
_SKULL = ((70.0, 90.0, 80.0), (0.0, 0.0, 0.0))
_BRAIN = ((64.0, 84.0, 72.0), (0.0, 0.0, 2.0))
_WHITE = ((50.0, 68.0, 56.0), (0.0, 2.0, 6.0))
_VENTRICLES = (((8.0, 24.0, 10.0), (-10.0, 4.0, 10.0)), ((8.0, 24.0, 10.0), (10.0, 4.0, 10.0)))
_LESION = ((12.0, 10.0, 12.0), (-30.0, 12.0, 16.0))

_T1 = {
    "air": 0.0,
    "scalp": 700.0,
    "skull": 120.0,
    "csf": 250.0,
    "grey": 560.0,
    "white": 820.0,
    "lesion": 330.0,
}
_CT = {
    "air": -1000.0,
    "scalp": 30.0,
    "skull": 1100.0,
    "csf": 8.0,
    "grey": 38.0,
    "white": 28.0,
    "lesion": 65.0,
}


def phantom_affine(
    shape: Sequence[int], spacing: float | Sequence[float], axcodes: str = "RAS"
) -> np.ndarray:
    """The (4, 4) affine of a grid with the given orientation, centred on world (0, 0, 0)."""
    code = axcodes.upper()
    if code not in ALL_AXCODES:
        from brrrr.core.errors import GeometryError

        raise GeometryError(f"invalid orientation code {axcodes!r}")
    sizes = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    affine = np.eye(4)
    for axis, letter in enumerate(code):
        world = "LRPAIS".index(letter) // 2
        sign = 1.0 if letter in "RAS" else -1.0
        affine[:3, axis] = 0.0
        affine[world, axis] = sign * sizes[axis]
    centre = (np.asarray(shape[:3], dtype=np.float64) - 1) / 2
    affine[:3, 3] = -affine[:3, :3] @ centre
    return affine


def _inside(
    world: np.ndarray, ellipsoid: tuple[tuple[float, float, float], tuple[float, float, float]]
) -> np.ndarray:
    axes, centre = ellipsoid
    total = np.zeros(world.shape[1:], dtype=np.float32)
    for d in range(3):
        total += ((world[d] - centre[d]) / axes[d]) ** 2
    return total <= 1.0


def _labels(
    shape: tuple[int, int, int], affine: np.ndarray, *, lesion: bool
) -> dict[str, np.ndarray]:
    index = np.indices(shape, dtype=np.float32)
    world = np.tensordot(affine[:3, :3].astype(np.float32), index, axes=1)
    world += affine[:3, 3].astype(np.float32)[:, None, None, None]
    masks = {
        "scalp": _inside(world, _SCALP),
        "skull": _inside(world, _SKULL),
        "brain": _inside(world, _BRAIN),
        "white": _inside(world, _WHITE),
        "ventricles": _inside(world, _VENTRICLES[0]) | _inside(world, _VENTRICLES[1]),
    }
    masks["lesion"] = (
        _inside(world, _LESION) & masks["brain"] if lesion else np.zeros(shape, dtype=bool)
    )
    return masks


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) != 3 or min(int(s) for s in shape) < 1:
        from brrrr.core.errors import GeometryError

        raise GeometryError(f"phantom shape must be 3 positive sizes, got {tuple(shape)}")
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def _render(
    shape: Sequence[int],
    spacing: float | Sequence[float],
    axcodes: str,
    *,
    modality: Modality,
    lesion: bool,
    noise: float,
    seed: int,
) -> tuple[Volume, np.ndarray]:
    dims = _check_shape(shape)
    affine = phantom_affine(dims, spacing, axcodes)
    masks = _labels(dims, affine, lesion=lesion)
    values = _T1 if modality == "t1" else _CT
    image = np.full(dims, values["air"], dtype=np.float32)
    image[masks["scalp"]] = values["scalp"]
    image[masks["skull"]] = values["skull"]
    image[masks["brain"]] = values["csf"]
    image[_inside_shrunk(masks["brain"])] = values["grey"]
    image[masks["white"]] = values["white"]
    image[masks["ventricles"]] = values["csf"]
    image[masks["lesion"]] = values["lesion"]
    rng = np.random.default_rng(seed)
    if noise > 0:
        if modality == "t1":
            sigma = noise * values["white"]
            real = image + rng.normal(0.0, sigma, dims).astype(np.float32)
            imag = rng.normal(0.0, sigma, dims).astype(np.float32)
            image = np.sqrt(real * real + imag * imag)
        else:
            image += rng.normal(0.0, noise * 100.0, dims).astype(np.float32)
    metadata = {"format": "phantom", "modality": modality, "seed": seed, "noise": noise}
    volume = Volume(np.round(image).astype(np.int16), affine, metadata=metadata)
    return volume, masks["lesion"]


def _inside_shrunk(brain: np.ndarray) -> np.ndarray:
    # Grey matter is the brain minus a one-voxel CSF rim: erode once.
    from scipy import ndimage

    return ndimage.binary_erosion(brain, iterations=1)


def phantom(
    *,
    shape: Sequence[int] = (96, 114, 96),
    spacing: float | Sequence[float] = 2.0,
    axcodes: str = "RAS",
    modality: Modality = "t1",
    lesion: bool = False,
    noise: float = 0.03,
    seed: int = 0,
) -> Volume:
    """A synthetic head (int16), identical for identical arguments.

    Args:
        shape: Spatial shape ``(I, J, K)``.
        spacing: Voxel size in mm (one number or three).
        axcodes: Orientation of the array axes, any of the 48 codes.
        modality: ``"t1"`` (T1-like intensities, Rician noise) or ``"ct"`` (HU).
        lesion: Add a hypointense (T1) / hyperdense (CT) lesion in the left hemisphere.
        noise: Noise level relative to white matter (T1) or in units of 100 HU (CT).
        seed: Seed of the noise generator.

    Returns:
        The image volume.
    """
    return _render(
        shape, spacing, axcodes, modality=modality, lesion=lesion, noise=noise, seed=seed
    )[0]


def lesion_phantom(
    *,
    shape: Sequence[int] = (96, 114, 96),
    spacing: float | Sequence[float] = 2.0,
    axcodes: str = "RAS",
    modality: Modality = "t1",
    noise: float = 0.03,
    seed: int = 0,
) -> tuple[Volume, Volume]:
    """A phantom with a lesion and its binary mask (uint8, same grid).

    Arguments as in :func:`phantom`. Returns ``(image, lesion_mask)``.
    """
    image, mask = _render(
        shape, spacing, axcodes, modality=modality, lesion=True, noise=noise, seed=seed
    )
    return image, Volume(
        mask.astype(np.uint8), image.affine, metadata={"format": "phantom", "label": "lesion"}
    )


_MNI_CANDIDATES = (
    ("nimare", "resources/templates/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz"),
    ("nimare", "resources/templates/tpl-MNI152NLin6Asym_res-02_T1w.nii.gz"),
    ("nilearn", "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"),
)


def mni_t1(*, resolution_mm: Literal[1, 2] = 1) -> Volume:
    """The real MNI152 T1 template, from a dependency that ships it (NiMARE or nilearn).

    Args:
        resolution_mm: 1 or 2 (NiMARE ships both; nilearn's file is 1 mm).

    Raises:
        MissingDependencyError: Neither NiMARE nor nilearn is installed.
    """
    from brrrr.core.io import load_volume

    for package, relative in _MNI_CANDIDATES:
        if f"res-0{3 - resolution_mm}" in relative:
            continue
        if package == "nilearn" and resolution_mm != 1:
            continue
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(next(iter(spec.submodule_search_locations))) / relative
        if path.is_file():
            volume = load_volume(path)
            volume.metadata["template"] = "MNI152"
            return volume
    raise MissingDependencyError(
        "the MNI T1 template ships with NiMARE or nilearn: pip install nimare (or nilearn)"
    )
