"""Kernel settings (MKDA, KDA, ALE, Gaussian) and the voxel stencils they stamp at each peak.

A stencil is a list of voxel offsets with a value each; a map is the stencil stamped at every
peak of a study, overlapping stamps combined by maximum (MKDA, ALE, Gaussian) or sum (KDA).
The MKDA/KDA sphere and the ALE Gaussian are built with NiMARE's own arithmetic
(``nimare.meta.utils.sphere_kernel_offsets``, ``get_ale_kernel`` and
``_kernel_to_sparse_support``), so the maps equal NiMARE's to the bit:

* sphere: offsets from ``-r // zoom`` to ``r // zoom + 0.01`` per axis, kept where the offset
  in mm is within ``r`` (``<=``).
* ALE: ``FWHM = sqrt(s_subjects² + s_templates²)`` with Eickhoff et al. (2012)'s 11.6 mm and
  5.7 mm uncertainties (``s_subjects`` scaled by ``1/sqrt(sample size)``), converted to voxels
  by dividing by ``sqrt(prod(zooms))`` (NiMARE's convention: on a 2 mm grid that is 2.83,
  not 2), blurred from a 31³ delta with ``scipy.ndimage.gaussian_filter`` (truncate 4),
  cropped where the kernel exceeds machine epsilon, cast to float32.

:class:`Gaussian` has no NiMARE counterpart: an FWHM in mm on each axis (per-axis voxel
sizes), sampled analytically, peak value 1 (or unit sum), within ``truncate`` sigmas.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import ClassVar, Literal

import numpy as np

from brrrr.preprocess.errors import KernelError
from brrrr.preprocess.kernels._peaks import PeakTable

__all__ = [
    "ALE",
    "KDA",
    "MKDA",
    "Gaussian",
    "Kernel",
    "Stencil",
    "ale_fwhm_mm",
    "ale_stencil",
    "gaussian_stencil",
    "sphere_offsets",
]

LOGGER = logging.getLogger("brrrr.preprocess.kernels")

Combine = Literal["max", "sum"]


@dataclass(frozen=True, eq=False)
class Stencil:
    """Voxel offsets around a peak and the value stamped at each.

    Attributes:
        offsets: (K, 3) int64 voxel offsets.
        values: (K,) float32 values.
    """

    offsets: np.ndarray
    values: np.ndarray

    @property
    def reach(self) -> np.ndarray:
        """(3,) int64 largest absolute offset along each axis."""
        return np.abs(self.offsets).max(axis=0) if self.offsets.size else np.zeros(3, np.int64)

    @property
    def constant(self) -> bool:
        """Whether every value is the same (a sphere)."""
        return bool(self.values.size == 0 or (self.values == self.values[0]).all())


def sphere_offsets(radius_mm: float, zooms: np.ndarray) -> np.ndarray:
    """Offsets of a sphere of ``radius_mm`` on a grid with voxel sizes ``zooms``.

    NiMARE's ``sphere_kernel_offsets``, operation for operation.

    Args:
        radius_mm: Radius in mm.
        zooms: (3,) voxel sizes in mm.

    Returns:
        (K, 3) int64 offsets.
    """
    vox = np.asarray(zooms, dtype=np.float64)
    r = float(radius_mm)
    slices = [slice(-r // vox[i], r // vox[i] + 0.01, 1) for i in range(3)]
    cube = np.vstack([row.ravel() for row in np.mgrid[tuple(slices)].astype(np.int32)])
    inside = np.sum(np.dot(np.diag(vox), cube) ** 2, axis=0) ** 0.5 <= r
    return np.ascontiguousarray(cube[:, inside].T, dtype=np.int64)


def ale_fwhm_mm(sample_size: float) -> float:
    """The ALE kernel's FWHM in mm for a sample size (Eickhoff et al., 2012; NiMARE's formula).

    Example:
        >>> round(ale_fwhm_mm(20), 3)
        9.241
    """
    templates = 5.7 / (2.0 * np.sqrt(2.0 / np.pi)) * np.sqrt(8.0 * np.log(2.0))
    subjects = (11.6 / (2 * np.sqrt(2 / np.pi)) * np.sqrt(8 * np.log(2))) / np.sqrt(sample_size)
    return float(np.sqrt(subjects**2 + templates**2))


@lru_cache(maxsize=1024)
def _ale_stencil_cached(
    zooms_bytes: bytes, fwhm_mm: float | None, sample_size: float | None
) -> Stencil:
    from scipy import ndimage

    zooms = np.frombuffer(zooms_bytes, dtype=np.float32)
    if sample_size is not None:
        templates = 5.7 / (2.0 * np.sqrt(2.0 / np.pi)) * np.sqrt(8.0 * np.log(2.0))
        subjects = (11.6 / (2 * np.sqrt(2 / np.pi)) * np.sqrt(8 * np.log(2))) / np.sqrt(sample_size)
        fwhm: float | np.floating = np.sqrt(subjects**2 + templates**2)
    else:
        assert fwhm_mm is not None
        # A Python float here, as NiMARE's users pass one: NumPy then divides in float32,
        # and so must we for identical kernels.
        fwhm = fwhm_mm
    fwhm_vox = fwhm / np.sqrt(np.prod(zooms))
    sigma_vox = fwhm_vox * np.sqrt(2.0) / (np.sqrt(2.0 * np.log(2.0)) * 2.0)
    delta = np.zeros((31, 31, 31))
    delta[15, 15, 15] = 1.0
    kernel = ndimage.gaussian_filter(delta, sigma_vox, mode="constant")
    support = np.where(kernel > np.spacing(1))[0]
    low, high = int(support.min()), int(support.max())
    kernel = kernel[low : high + 1, low : high + 1, low : high + 1]
    nonzero = np.array(np.where(kernel > 0), dtype=np.int64)
    centre = np.floor(np.array(kernel.shape) / 2.0).astype(np.int64)[:, None]
    offsets = np.ascontiguousarray((nonzero - centre).T)
    values = kernel[tuple(nonzero)].astype(np.float32)
    offsets.flags.writeable = False
    values.flags.writeable = False
    return Stencil(offsets=offsets, values=values)


def ale_stencil(
    zooms: np.ndarray, *, fwhm_mm: float | None = None, sample_size: float | None = None
) -> Stencil:
    """NiMARE's ALE kernel as a stencil, from a sample size or an FWHM (exactly one).

    Args:
        zooms: (3,) voxel sizes (float32, as a header stores them).
        fwhm_mm: Kernel FWHM in mm.
        sample_size: Participants; the FWHM follows :func:`ale_fwhm_mm`.

    Raises:
        KernelError: Neither or both given, or a value that is not positive and finite.
    """
    if (fwhm_mm is None) == (sample_size is None):
        raise KernelError("give exactly one of fwhm_mm and sample_size for an ALE kernel")
    value = fwhm_mm if sample_size is None else sample_size
    if not (value is not None and math.isfinite(value) and value > 0):
        raise KernelError(f"ALE kernel needs a positive finite FWHM or sample size, got {value}")
    zooms_bytes = np.asarray(zooms, dtype=np.float32).reshape(3).tobytes()
    return _ale_stencil_cached(
        zooms_bytes,
        None if fwhm_mm is None else float(fwhm_mm),
        None if sample_size is None else float(sample_size),
    )


def gaussian_stencil(
    fwhm_mm: float,
    zooms: np.ndarray,
    *,
    normalize: Literal["peak", "sum"] = "peak",
    truncate: float = 4.0,
) -> Stencil:
    """An analytic 3D Gaussian with an FWHM in mm, on voxels of size ``zooms``.

    Args:
        fwhm_mm: Full width at half maximum, mm (the same along every world axis).
        zooms: (3,) voxel sizes in mm.
        normalize: ``"peak"``: value 1 at the peak voxel; ``"sum"``: values sum to 1.
        truncate: Keep offsets within this many sigmas (an ellipsoid in voxels).

    Returns:
        The stencil (float32 values).
    """
    if not (math.isfinite(fwhm_mm) and fwhm_mm > 0):
        raise KernelError(f"Gaussian FWHM must be positive and finite, got {fwhm_mm}")
    sigma_mm = fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    vox = np.asarray(zooms, dtype=np.float64)
    reach = np.floor(truncate * sigma_mm / vox + 0.5).astype(np.int64)
    grids = np.meshgrid(*[np.arange(-n, n + 1) for n in reach], indexing="ij")
    offsets = np.stack([g.reshape(-1) for g in grids], axis=1)
    dist2 = ((offsets * vox) ** 2).sum(axis=1)
    inside = dist2 <= (truncate * sigma_mm) ** 2
    offsets, dist2 = offsets[inside], dist2[inside]
    values = np.exp(-0.5 * dist2 / sigma_mm**2)
    if normalize == "sum":
        values = values / values.sum()
    return Stencil(offsets=np.ascontiguousarray(offsets), values=values.astype(np.float32))


class Kernel:
    """Base of the kernel settings: which stencil each study gets, and how stamps combine."""

    combine: ClassVar[Combine] = "max"
    #: Whether maps may be stored exactly as uint8.
    integer_valued: ClassVar[bool] = False

    def stencil_groups(
        self, peaks: PeakTable, zooms: np.ndarray
    ) -> list[tuple[Stencil, np.ndarray]]:
        """Studies sharing a stencil: ``[(stencil, rows), ...]``, rows as (n,) int64."""
        raise NotImplementedError

    def study_settings(self, peaks: PeakTable) -> list[dict[str, object]]:
        """(S,) per-study facts each map depends on beyond its coordinates (for cache keys)."""
        return [{} for _ in range(peaks.n_studies)]

    def settings(self) -> dict[str, object]:
        """Name and parameters, JSON-ready."""
        return {"kernel": type(self).__name__, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class MKDA(Kernel):
    """Binary sphere: a voxel is ``value`` if within ``radius_mm`` of any peak (NiMARE MKDAKernel).

    Args:
        radius_mm: Sphere radius in mm.
        value: Value inside spheres.
    """

    radius_mm: float = 10.0
    value: float = 1.0

    integer_valued: ClassVar[bool] = True

    def stencil_groups(
        self, peaks: PeakTable, zooms: np.ndarray
    ) -> list[tuple[Stencil, np.ndarray]]:
        offsets = sphere_offsets(self.radius_mm, zooms)
        values = np.full(offsets.shape[0], self.value, dtype=np.float32)
        return [(Stencil(offsets, values), np.arange(peaks.n_studies, dtype=np.int64))]


@dataclass(frozen=True)
class KDA(MKDA):
    """Sphere count: a voxel is ``value`` × the number of peaks within ``radius_mm`` (NiMARE KDAKernel).

    Repeated peaks count each time; see :func:`deduplicate_peaks`.
    """

    combine: ClassVar[Combine] = "sum"


@dataclass(frozen=True)
class ALE(Kernel):
    """ALE Gaussian whose width follows each study's sample size (NiMARE ALEKernel).

    Exactly one way to set the width applies, in this order:

    * ``fwhm_mm``: one FWHM for every study (NiMARE ``ALEKernel(fwhm=...)``);
    * ``sample_size``: one sample size for every study (NiMARE ``ALEKernel(sample_size=...)``);
    * otherwise each study's own sample size (NiMARE ``ALEKernel()``); a study without one
      gets ``fwhm_if_unknown_mm`` (logged with the study ids), or, if that is not set, is an
      error. NiMARE itself silently gives such studies a one-voxel kernel; we do not.

    Args:
        fwhm_mm: Constant FWHM in mm.
        sample_size: Constant sample size.
        fwhm_if_unknown_mm: FWHM for studies whose sample size is unknown.
    """

    fwhm_mm: float | None = None
    sample_size: float | None = None
    fwhm_if_unknown_mm: float | None = None

    def __post_init__(self) -> None:
        if self.fwhm_mm is not None and self.sample_size is not None:
            raise KernelError("ALE: give fwhm_mm or sample_size, not both")
        if self.fwhm_if_unknown_mm is not None and (
            self.fwhm_mm is not None or self.sample_size is not None
        ):
            raise KernelError(
                "ALE: fwhm_if_unknown_mm applies only to per-study sample sizes; "
                "drop it or drop fwhm_mm/sample_size"
            )

    def _study_width(self, peaks: PeakTable, *, log: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(S,) sample size (NaN: use FWHM) and (S,) FWHM (NaN: use sample size)."""
        n = peaks.n_studies
        if self.fwhm_mm is not None:
            return np.full(n, np.nan), np.full(n, float(self.fwhm_mm))
        if self.sample_size is not None:
            return np.full(n, float(self.sample_size)), np.full(n, np.nan)
        sizes = peaks.sample_sizes.copy()
        unknown = ~np.isfinite(sizes)
        fwhm = np.full(n, np.nan)
        if unknown.any():
            named = [str(s) for s in peaks.study_ids[unknown][:5]]
            more = "..." if unknown.sum() > 5 else ""
            if self.fwhm_if_unknown_mm is None:
                raise KernelError(
                    f"ALE: {int(unknown.sum())} of {n} studies have no sample size "
                    f"({named}{more}); set ALE(fwhm_if_unknown_mm=...) or a constant "
                    "fwhm_mm/sample_size"
                )
            if log:
                LOGGER.warning(
                    "ALE: %d of %d studies have no sample size (%s%s); using FWHM %.4g mm for them",
                    int(unknown.sum()),
                    n,
                    ", ".join(named),
                    more,
                    self.fwhm_if_unknown_mm,
                )
            fwhm[unknown] = float(self.fwhm_if_unknown_mm)
        return sizes, fwhm

    def stencil_groups(
        self, peaks: PeakTable, zooms: np.ndarray
    ) -> list[tuple[Stencil, np.ndarray]]:
        sizes, fwhm = self._study_width(peaks)
        groups: list[tuple[Stencil, np.ndarray]] = []
        for values, kind in ((sizes, "sample_size"), (fwhm, "fwhm_mm")):
            finite = np.isfinite(values)
            for value in np.unique(values[finite]):
                rows = np.flatnonzero(finite & (values == value)).astype(np.int64)
                stencil = ale_stencil(zooms, **{kind: float(value)})
                groups.append((stencil, rows))
        return groups

    def study_settings(self, peaks: PeakTable) -> list[dict[str, object]]:
        sizes, fwhm = self._study_width(peaks, log=False)
        return [
            {"sample_size": float(n)} if np.isfinite(n) else {"fwhm_mm": float(f)}
            for n, f in zip(sizes, fwhm, strict=True)
        ]


@dataclass(frozen=True)
class Gaussian(Kernel):
    """A plain Gaussian of ``fwhm_mm`` at each peak, overlapping blobs combined by maximum.

    Args:
        fwhm_mm: Full width at half maximum in mm (the atlas uses 6 and 12).
        normalize: ``"peak"`` (1 at a peak) or ``"sum"`` (each blob sums to 1).
        truncate: Blob radius in sigmas.
    """

    fwhm_mm: float = 6.0
    normalize: Literal["peak", "sum"] = "peak"
    truncate: float = 4.0

    def stencil_groups(
        self, peaks: PeakTable, zooms: np.ndarray
    ) -> list[tuple[Stencil, np.ndarray]]:
        stencil = gaussian_stencil(
            self.fwhm_mm, zooms, normalize=self.normalize, truncate=self.truncate
        )
        return [(stencil, np.arange(peaks.n_studies, dtype=np.int64))]
