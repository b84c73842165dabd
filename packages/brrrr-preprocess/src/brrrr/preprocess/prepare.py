"""NeuroVFM-style preparation of a head MRI or CT: the same steps on numpy, torch CPU and CUDA.

NeuroVFM (a neuroimaging foundation model) reads a scan with ``load_image`` and hands it to
``prepare_for_inference(image, mode=...)``; this module keeps that API and its outputs, and fixes
how the slice axis is found. For one volume, or a batch of volumes on one grid:

1. **Reorient to RPI** (nibabel's convention: ``i`` grows to the Right, ``j`` to Posterior, ``k``
   to Inferior), exactly. The flips and the permutation are folded into the indices of step 3, so
   the input is never copied to reorient it.
2. **Find the slice axis** from the geometry (:func:`find_slice_axis`): the axis with the largest
   spacing; near-isotropic volumes get ``isotropic_plane``; ``slice_axis=`` overrides.
3. **Resample** (trilinear, separable) to ``in_plane_mm`` in-plane and ``through_plane_mm`` across
   slices, on the grid of :func:`brrrr.core.resample.grid_for_spacing` (same axis directions, same
   field-of-view centre), then centre-crop (``fit="crop"``, NeuroVFM's choice) or centre-pad
   (``fit="pad"``) every axis to a multiple of ``divisible_by`` = (4, 16, 16) for (D, H, W). A
   crop is folded into the grid, so cropped voxels are never computed. Samples within half a voxel
   outside the input take the edge value (as ITK, which NeuroVFM uses, and MONAI's ``"border"``).
4. **Lay out** as ``(D, H, W)``, ``D`` the slice axis, in NeuroVFM's order: axial
   ``(I→S … , P, R)`` = RPI axes ``(k, j, i)``; coronal ``(j, k, i)``; sagittal ``(i, j, k)``.
5. **Intensities.** MRI: clip to the 0.5 and 99.5 percentiles and scale to [0, 1]; foreground =
   above the 10th percentile (``numpy.percentile``'s linear rule, exact, per volume, over the
   cropped volume). CT (Hounsfield units): three windows, brain (width 80, level 40), blood
   (200, 80) and bone (2800, 600), each clipped and scaled to [0, 1]; foreground = HU > −500.
   Non-finite voxels count as background (0 for MRI, −1024 HU for CT).
6. With ``fit="pad"``, padding is added last: image 0, mask ``False``, so it does not shift the
   percentiles.

Why not :func:`brrrr.core.resample.resample`: its separable path needs a grid with the same axis
order as the input, and the RPI layout permutes axes, which sends it to the oblique path. On the
256×256×180 int16 benchmark volume (2 shared cores) core's call took 323 ms; the permuted separable
path here (:mod:`brrrr.preprocess._prepare_ops`), which also skips identity axes, reads regular
samples as strided views and never computes cropped voxels, takes about 5 ms. Exact percentiles use
a bracketed selection on the float32 bits (about 5 ms instead of 15 ms for ``numpy.percentile``);
CUDA sorts. The whole MRI preparation of that volume takes 11–16 ms on the CPU.

Reading the ``.nii.gz`` takes about three times as long as preparing it, so
:func:`load_and_prepare` overlaps the two: a background thread inflates the file
(:func:`brrrr.core.io.nifti.stream_nifti`) while each output slab is resampled as soon as the input
slices it reads are in, and a sorted copy of it is kept, from which the exact percentiles of the
whole volume follow in well under a millisecond (:mod:`brrrr.preprocess._prepare_stream`). The
slab-by-slab arithmetic is the whole-volume arithmetic, so the outputs are identical.

Example:
    >>> from brrrr.core import samples
    >>> from brrrr.preprocess.prepare import prepare_for_inference
    >>> volume = samples.phantom(shape=(64, 64, 20), spacing=(3.0, 3.0, 6.0))
    >>> img, mask, view = prepare_for_inference(volume, mode="mri")
    >>> img.shape, mask.shape, view.plane
    ((1, 28, 192, 192), (28, 192, 192), 'axial')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from brrrr.core import geometry, load_volume
from brrrr.core.errors import BrrrrError
from brrrr.core.resample import grid_for_spacing
from brrrr.core.volume import Volume
from brrrr.preprocess._prepare_ops import NumpyOps, Ops, TorchOps, resample_permuted

if TYPE_CHECKING:
    import torch

__all__ = [
    "CT_WINDOWS",
    "PREPARE_VERSION",
    "Fit",
    "Mode",
    "Plane",
    "PreparationError",
    "PrepareSettings",
    "View",
    "find_slice_axis",
    "load_and_prepare",
    "load_image",
    "prepare_array",
    "prepare_for_inference",
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
_SLICE_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
_PLANES: tuple[Plane, Plane, Plane] = ("sagittal", "coronal", "axial")
_LAYOUT: dict[int, tuple[int, int, int]] = {2: (2, 1, 0), 1: (1, 2, 0), 0: (0, 1, 2)}
_BACKGROUND = {"mri": 0.0, "ct": -1024.0}


class PreparationError(BrrrrError):
    """A volume cannot be prepared: unknown mode, too small to crop, bad settings."""


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
        if self.isotropic_plane not in _SLICE_AXIS:
            problems.append(
                f"isotropic_plane must be one of {_PLANES}, got {self.isotropic_plane!r}"
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


def load_image(path: str | os.PathLike[str], *, dtype: np.dtype | str | None = None) -> Volume:
    """Read a NIfTI, MGZ or DICOM file, or a DICOM folder, through :func:`brrrr.core.load_volume`.

    Args:
        path: The file or DICOM folder.
        dtype: Convert voxels while reading (``None`` keeps the stored type; CT keeps HU).

    Returns:
        The :class:`~brrrr.core.Volume`, ``(I, J, K)`` or ``(C, I, J, K)``.
    """
    return load_volume(path, dtype=dtype)


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
        return _SLICE_AXIS[isotropic_plane]
    # Reversed so that argmax picks the highest axis index (axial) among equal spacings.
    return 2 - int(np.argmax(s[::-1]))


def prepare_for_inference(
    volume: Volume | Sequence[Volume],
    *,
    mode: Mode,
    slice_axis: int | Plane | None = None,
    device: str | torch.device | None = None,
    settings: PrepareSettings | None = None,
) -> tuple[Any, Any, View]:
    """Reorient, resample, crop/pad and normalise a volume for NeuroVFM-style models.

    Args:
        volume: A :class:`~brrrr.core.Volume` ``(I, J, K)``; a ``(B, I, J, K)`` volume or a
            sequence of volumes on one grid is a batch (each item prepared on its own).
        mode: ``"mri"`` or ``"ct"`` (voxels in HU).
        slice_axis: Override of the slice axis: an axis (0, 1, 2) of ``volume``'s array, or a
            plane name. ``None`` finds it from the spacing (:func:`find_slice_axis`).
        device: Torch device (``"cpu"``, ``"cuda"``) to compute on; the results are torch
            tensors there. ``None`` computes with numpy and returns numpy arrays.
        settings: Sizes, fit and thresholds; default :class:`PrepareSettings`.

    Returns:
        ``(img_arrs, mask, view)``. ``img_arrs`` is float32 in [0, 1], ``(C, D, H, W)``
        (``(B, C, D, H, W)`` for a batch), ``C = 1`` for MRI and ``C = 3`` for CT (the brain,
        blood and bone windows in that order); ``D`` is the slice axis at
        ``through_plane_mm``, ``H, W`` are in-plane at ``in_plane_mm``. ``mask`` is bool
        ``(D, H, W)`` (``(B, D, H, W)``), ``True`` = foreground. ``view`` is the
        :class:`View` (plane, axes, output affine); ``view.index`` is NeuroVFM's integer.

    Raises:
        PreparationError: Unknown mode, volumes on different grids, or a volume smaller than
            one multiple of ``divisible_by`` with ``fit="crop"``.
    """
    if isinstance(volume, Volume):
        return prepare_array(
            volume.data,
            volume.affine,
            mode=mode,
            slice_axis=slice_axis,
            device=device,
            settings=settings,
            source=volume.source,
        )
    volumes = list(volume)
    if not volumes:
        raise PreparationError("an empty batch: give at least one volume")
    first = volumes[0]
    for other in volumes[1:]:
        if other.shape != first.shape or not np.allclose(other.affine, first.affine, atol=1e-5):
            raise PreparationError(
                f"a batch must share one grid: {first.shape} vs {other.shape}; prepare the "
                "volumes one at a time instead",
                path=other.source,
            )
    if any(v.data.ndim != 3 for v in volumes):
        raise PreparationError("a batch given as a sequence holds (I, J, K) volumes only")
    return prepare_array(
        np.stack([v.data for v in volumes]),
        first.affine,
        mode=mode,
        slice_axis=slice_axis,
        device=device,
        settings=settings,
        source=first.source,
    )


def load_and_prepare(
    path: str | os.PathLike[str],
    *,
    mode: Mode,
    slice_axis: int | Plane | None = None,
    device: str | torch.device | None = None,
    settings: PrepareSettings | None = None,
) -> tuple[Any, Any, View]:
    """``prepare_for_inference(load_image(path), ...)`` in one call, overlapping the two.

    For a 3-D NIfTI file prepared with numpy (``device=None``), a background thread inflates
    the voxels (:func:`brrrr.core.io.nifti.stream_nifti`) while this one resamples each output
    slab as soon as the input slices it reads have arrived, and sorts a copy of it for the
    percentiles. When the last byte is in, what is left is the intensity scaling, so on two
    cores the whole call takes little more than decompressing the file. The arithmetic is the
    same, slab by slab, so the results are identical to the two-step call. Other inputs (MGZ,
    DICOM, 4-D images, a torch ``device``) take the two-step path.

    Args:
        path: The file or DICOM folder, as :func:`load_image`.
        mode: As :func:`prepare_for_inference`.
        slice_axis: As :func:`prepare_for_inference`.
        device: As :func:`prepare_for_inference`.
        settings: As :func:`prepare_for_inference`.

    Returns:
        ``(img_arrs, mask, view)``, as :func:`prepare_for_inference`.

    Raises:
        VolumeReadError: The file is missing, corrupt or truncated (also when the fault is
            found only at the end of the gzip stream).
        PreparationError: As :func:`prepare_for_inference`.

    Example:
        >>> from brrrr.preprocess.prepare import load_and_prepare
        >>> img, mask, view = load_and_prepare("sub-01_T1w.nii.gz", mode="mri")  # doctest: +SKIP
    """
    settings = settings or PrepareSettings()
    if mode not in _BACKGROUND:
        raise PreparationError(f"mode must be 'mri' or 'ct', got {mode!r}", path=path)
    if device is None and not Path(path).is_dir():
        # Imported here: the streaming driver builds on this module's planning and arithmetic.
        from brrrr.preprocess._prepare_stream import prepare_nifti

        prepared = prepare_nifti(path, mode=mode, slice_axis=slice_axis, settings=settings)
        if prepared is not None:
            return prepared
    return prepare_for_inference(
        load_image(path), mode=mode, slice_axis=slice_axis, device=device, settings=settings
    )


def prepare_array(
    array: Any,
    affine: np.ndarray,
    *,
    mode: Mode,
    slice_axis: int | Plane | None = None,
    device: str | torch.device | None = None,
    settings: PrepareSettings | None = None,
    source: str | os.PathLike[str] | None = None,
) -> tuple[Any, Any, View]:
    """:func:`prepare_for_inference` on a bare array: numpy or torch, any device.

    Args:
        array: ``(I, J, K)`` or ``(B, I, J, K)`` numpy array or torch tensor.
        affine: (4, 4) voxel→world matrix of the spatial axes.
        mode: As in :func:`prepare_for_inference`.
        slice_axis: As in :func:`prepare_for_inference`.
        settings: As in :func:`prepare_for_inference`.
        device: Torch device; ``None`` keeps numpy on numpy and a tensor on its device.
        source: File named in error messages.

    Returns:
        As :func:`prepare_for_inference`; torch tensors for torch input or a ``device``.
    """
    settings = settings or PrepareSettings()
    if mode not in _BACKGROUND:
        raise PreparationError(f"mode must be 'mri' or 'ct', got {mode!r}", path=source)
    if array.ndim not in (3, 4):
        raise PreparationError(
            f"expected an (I, J, K) or (B, I, J, K) array, got shape {tuple(array.shape)}",
            path=source,
        )
    ops: Ops
    if device is not None or not isinstance(array, np.ndarray):
        array, affine = _positive_strides(array, np.asarray(affine, dtype=np.float64))
        torch_ops = TorchOps(device if device is not None else array.device)
        array, ops = torch_ops.asarray(array), torch_ops
    else:
        ops = NumpyOps()
    batched = array.ndim == 4
    data = array if batched else array[None]
    view, vox2vox, fit_offset, grid_shape = _plan(
        tuple(int(n) for n in data.shape[1:]), affine, slice_axis, settings, source
    )
    x = resample_permuted(ops, data, vox2vox, grid_shape, _BACKGROUND[mode])
    x = ops.nan_to_num(x, _BACKGROUND[mode]) if ops.is_float(data) else x
    channels = 1 if mode == "mri" else len(CT_WINDOWS)
    if grid_shape == view.shape:
        img = (
            x[:, None] if mode == "mri" else ops.empty((x.shape[0], channels, *x.shape[1:]), like=x)
        )
        mask = ops.empty(tuple(x.shape), like=x, dtype="bool")
        img_inside, mask_inside = img, mask
    else:
        # Padding: results are written straight into the interior of zeroed buffers.
        img = ops.zeros((x.shape[0], channels, *view.shape), like=x)
        mask = ops.zeros((x.shape[0], *view.shape), like=x, dtype="bool")
        inside = tuple(slice(o, o + n) for o, n in zip(fit_offset, grid_shape, strict=True))
        img_inside, mask_inside = (
            img[(slice(None), slice(None), *inside)],
            mask[(slice(None), *inside)],
        )
    if mode == "mri":
        _mri(ops, x, settings, img_inside[:, 0], mask_inside)
    else:
        _ct(ops, x, settings, img_inside, mask_inside)
    return (img, mask, view) if batched else (img[0], mask[0], view)


def _positive_strides(array: Any, affine: np.ndarray) -> tuple[Any, np.ndarray]:
    """Flip numpy axes with negative strides back (a view) and fix the affine, for torch."""
    if not isinstance(array, np.ndarray):
        return array, affine
    lead = array.ndim - 3
    for axis in range(3):
        if array.strides[lead + axis] < 0:
            index = [slice(None)] * array.ndim
            index[lead + axis] = slice(None, None, -1)
            array = array[tuple(index)]
            flip = np.eye(4)
            flip[axis, axis] = -1.0
            flip[axis, 3] = array.shape[lead + axis] - 1
            affine = affine @ flip
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array, affine


def _plan(
    shape: tuple[int, ...],
    affine: np.ndarray,
    slice_axis: int | Plane | None,
    settings: PrepareSettings,
    source: str | os.PathLike[str] | None,
) -> tuple[View, np.ndarray, tuple[int, int, int], tuple[int, int, int]]:
    """The output grid and the map from its ``(d, h, w)`` indices to input voxel indices.

    Returns:
        ``(view, vox2vox (4, 4), pad_offset (D, H, W), computed_shape (D, H, W))``.
    """
    affine = geometry.check_affine(affine, path=source)
    plan = geometry.reorientation(affine, "RPI", shape=shape)
    rpi_affine = plan.transform_affine(affine)
    if slice_axis is None:
        axis = find_slice_axis(
            tuple(float(s) for s in geometry.spacing(rpi_affine)),
            tolerance=settings.isotropic_tolerance,
            isotropic_plane=settings.isotropic_plane,
        )
    elif isinstance(slice_axis, str):
        if slice_axis not in _SLICE_AXIS:
            raise PreparationError(
                f"slice_axis must be 0, 1, 2 or one of {_PLANES}, got {slice_axis!r}", path=source
            )
        axis = _SLICE_AXIS[slice_axis]
    else:
        if int(slice_axis) not in (0, 1, 2):
            raise PreparationError(f"slice_axis must be 0, 1 or 2, got {slice_axis}", path=source)
        axis = plan.permutation.index(int(slice_axis))
    spacing = [settings.in_plane_mm] * 3
    spacing[axis] = settings.through_plane_mm
    grid_shape, grid_affine = grid_for_spacing(plan.output_shape, rpi_affine, spacing)
    axes = _LAYOUT[axis]
    full = [grid_shape[a] for a in axes]
    computed, out_shape, start, pad = [], [], [], []
    for n, m in zip(full, settings.divisible_by, strict=True):
        if settings.fit == "crop":
            fit = (n // m) * m
            if fit == 0:
                raise PreparationError(
                    f"too small to crop: {n} voxels along an axis after resampling to "
                    f"{spacing} mm, fewer than one multiple of {m}; use fit='pad'",
                    path=source,
                )
            computed.append(fit)
            start.append((n - fit) // 2)
            pad.append(0)
        else:
            fit = -(-n // m) * m
            computed.append(n)
            start.append(0)
            pad.append((fit - n) // 2)
        out_shape.append(fit)
    # (d, h, w, 1) → RPI grid index of the computed (cropped, unpadded) block.
    to_grid = np.zeros((4, 4))
    to_grid[3, 3] = 1.0
    for out_axis, rpi_axis in enumerate(axes):
        to_grid[rpi_axis, out_axis] = 1.0
        to_grid[rpi_axis, 3] = start[out_axis]
    computed_affine = grid_affine @ to_grid
    vox2vox = np.linalg.inv(affine) @ computed_affine
    shift = np.eye(4)
    shift[:3, 3] = -np.asarray(pad, dtype=np.float64)
    view = View(
        plane=_PLANES[axis],
        slice_axis=axis,
        axes=axes,
        affine=computed_affine @ shift,
        shape=(out_shape[0], out_shape[1], out_shape[2]),
    )
    return view, vox2vox, (pad[0], pad[1], pad[2]), (computed[0], computed[1], computed[2])


def _floor32(values: np.ndarray) -> np.ndarray:
    """The largest float32 ≤ each float64 value, so ``x32 > t32`` ⟺ ``x32 > t64`` exactly."""
    values = np.asarray(values, dtype=np.float64)
    t32 = values.astype(np.float32)
    return np.where(t32 > values, np.nextafter(t32, np.float32(-np.inf)), t32)


def _unit_range(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``(low, width)`` with ``(clip(x, low, low + width) - low) / width`` in [0, 1].

    Dividing (not multiplying by ``1 / width``) keeps the top exactly 1: IEEE division rounds
    correctly and monotonically. A flat volume (``high == low``) gets width ∞, so 0 everywhere.
    """
    low32 = np.asarray(low, dtype=np.float64).astype(np.float32)
    width32 = np.asarray(high, dtype=np.float64).astype(np.float32) - low32
    return low32, np.where(width32 > 0, width32, np.float32(np.inf)).astype(np.float32)


def _mri(ops: Ops, x: Any, settings: PrepareSettings, out: Any, mask: Any) -> None:
    """Clip to the percentiles and scale into ``out`` (may be ``x`` itself); foreground → ``mask``."""
    low, high = settings.mri_percentiles
    stats = ops.percentiles(x, (low, high, settings.foreground_percentile))  # (B, 3) float64
    _scale_mri(ops, x, stats, out, mask)


def _scale_mri(ops: Ops, x: Any, stats: np.ndarray, out: Any, mask: Any) -> None:
    """``_mri`` once the ``(B, 3)`` percentiles (low, high, foreground) are known."""
    ops.greater_into(x, ops.per_item(_floor32(stats[:, 2]), x), mask)
    low32, width32 = _unit_range(stats[:, 0], stats[:, 1])
    high32 = stats[:, 1].astype(np.float32)
    ops.clip_into(x, ops.per_item(low32, x), ops.per_item(high32, x), out)
    ops.isub(out, ops.per_item(low32, x))
    ops.idiv(out, ops.per_item(width32, x))


def _ct(ops: Ops, x: Any, settings: PrepareSettings, out: Any, mask: Any) -> None:
    """The three windows into ``out`` (B, 3, D, H, W); HU above the threshold → ``mask``."""
    ops.greater_into(x, float(_floor32(np.asarray([settings.foreground_hu]))[0]), mask)
    for c, (width, level) in enumerate(CT_WINDOWS.values()):
        lower = level - width / 2.0
        channel = out[:, c]
        ops.clip_into(x, lower, lower + width, channel)
        ops.isub(channel, lower)
        ops.idiv(channel, width)
