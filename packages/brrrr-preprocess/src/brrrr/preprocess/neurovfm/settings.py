"""The settings and the output view of the NeuroVFM-style preparation, and its slice-axis rule.

Example:
    >>> from brrrr.preprocess.neurovfm.settings import PrepareSettings, find_slice_axis
    >>> PrepareSettings(fit="pad").through_plane_mm
    4.0
    >>> find_slice_axis((1.0, 1.0, 5.0))
    2
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from brrrr.preprocess.errors import PreparationError

__all__ = [
    "BACKGROUND",
    "CT_WINDOWS",
    "LAYOUTS",
    "PLANES",
    "PREPARE_VERSION",
    "SLICE_AXES",
    "Fit",
    "Mode",
    "Plane",
    "PrepareSettings",
    "View",
    "find_slice_axis",
]

#: Version of the preparation's arithmetic; bumped whenever outputs for the same settings change,
#: so content-addressed caches rebuild.
PREPARE_VERSION = 1

Mode = Literal["mri", "ct"]
Plane = Literal["axial", "coronal", "sagittal"]
Fit = Literal["crop", "pad"]

#: CT windows in output channel order: name → (width, level) in HU.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (80.0, 40.0),
    "blood": (200.0, 80.0),
    "bone": (2800.0, 600.0),
}

# RPI axis that each plane slices along (0: L-R, 1: A-P, 2: S-I), and NeuroVFM's (D, H, W) order.
SLICE_AXES: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
PLANES: tuple[Plane, Plane, Plane] = ("sagittal", "coronal", "axial")
LAYOUTS: dict[int, tuple[int, int, int]] = {2: (2, 1, 0), 1: (1, 2, 0), 0: (0, 1, 2)}
BACKGROUND = {"mri": 0.0, "ct": -1024.0}


@dataclass(frozen=True)
class PrepareSettings:
    """Every knob of the preparation; ``as_dict()`` is stable JSON for cache keys.

    Attributes:
        fit: ``"crop"`` (NeuroVFM: the largest centred multiple that fits) or ``"pad"``
            (the smallest centred multiple that holds the whole field of view).
        in_plane_mm: Output voxel size within a slice.
        through_plane_mm: Output voxel size across slices.
        divisible_by: Multiples for ``(D, H, W)``; the token patch.
        isotropic_tolerance: Spacings with ``max ≤ (1 + tol) · min`` count as isotropic.
        isotropic_plane: The plane isotropic volumes are sliced in. ``"sagittal"`` is what
            NeuroVFM does (its first ITK axis) and what its model saw in training.
        mri_percentiles: Clip range of MRI intensities, in percent.
        foreground_percentile: MRI foreground is strictly above this percentile.
        foreground_hu: CT foreground is strictly above this many HU.
    """

    fit: Fit = "crop"
    in_plane_mm: float = 1.0
    through_plane_mm: float = 4.0
    divisible_by: tuple[int, int, int] = (4, 16, 16)
    isotropic_tolerance: float = 0.2
    isotropic_plane: Plane = "sagittal"
    mri_percentiles: tuple[float, float] = (0.5, 99.5)
    foreground_percentile: float = 10.0
    foreground_hu: float = -500.0

    def __post_init__(self) -> None:
        problems = []
        if self.fit not in ("crop", "pad"):
            problems.append(f"fit must be 'crop' or 'pad', got {self.fit!r}")
        if not (self.in_plane_mm > 0 and self.through_plane_mm > 0):
            problems.append("in_plane_mm and through_plane_mm must be positive")
        if len(self.divisible_by) != 3 or min(self.divisible_by) < 1:
            problems.append(f"divisible_by must be 3 positive sizes, got {self.divisible_by}")
        if self.isotropic_plane not in SLICE_AXES:
            problems.append(
                f"isotropic_plane must be one of {PLANES}, got {self.isotropic_plane!r}"
            )
        low, high = self.mri_percentiles
        if not 0 <= low <= high <= 100 or not 0 <= self.foreground_percentile <= 100:
            problems.append("percentiles must lie in [0, 100] with low ≤ high")
        if problems:
            raise PreparationError("; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON types (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class View:
    """Which plane a prepared volume is sliced in, and its grid.

    Attributes:
        plane: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
        slice_axis: The RPI axis that became ``D`` (0: L→R, 1: A→P, 2: S→I).
        axes: The RPI axes that became ``(D, H, W)``.
        affine: (4, 4) voxel→world (RAS+ mm) matrix of the output ``(d, h, w)`` grid,
            padding included.
        shape: ``(D, H, W)``.
    """

    plane: Plane
    slice_axis: int
    axes: tuple[int, int, int]
    affine: np.ndarray = field(compare=False, repr=False)
    shape: tuple[int, int, int]

    @property
    def index(self) -> int:
        """NeuroVFM's ``view`` number: 0 axial, 1 coronal, 2 sagittal."""
        return 2 - self.slice_axis

    def __str__(self) -> str:
        return self.plane


def find_slice_axis(
    spacing_mm: Sequence[float], *, tolerance: float = 0.2, isotropic_plane: Plane = "sagittal"
) -> int:
    """The through-plane axis of an RPI-oriented grid, from its voxel sizes.

    The axis with the largest spacing. When ``max ≤ (1 + tolerance) · min`` the volume is
    (near-)isotropic and ``isotropic_plane`` decides. Exact ties between the two largest
    spacings go to axial, then coronal, then sagittal.

    Args:
        spacing_mm: (3,) voxel sizes of the RPI axes (L-R, A-P, S-I).
        tolerance: Relative tolerance for isotropy.
        isotropic_plane: Plane used for isotropic volumes.

    Returns:
        0 (sagittal), 1 (coronal) or 2 (axial).
    """
    s = np.asarray(spacing_mm, dtype=np.float64)
    if s.max() <= (1.0 + tolerance) * s.min():
        return SLICE_AXES[isotropic_plane]
    # Reversed so that argmax picks the highest axis index (axial) among equal spacings.
    return 2 - int(np.argmax(s[::-1]))
