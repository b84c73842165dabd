"""The steps of the preparation on a whole array, numpy or torch: grid planning, resampling,
intensity scaling. :mod:`brrrr.preprocess.neurovfm.prepare` is the public API over them, and
:mod:`brrrr.preprocess.neurovfm._stream` runs the same steps slab by slab.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from brrrr.core import geometry
from brrrr.core.resample import ResamplePlan, grid_for_spacing, plan_resample
from brrrr.preprocess.errors import PreparationError
from brrrr.preprocess.neurovfm._ops import NumpyOps, Ops, TorchOps
from brrrr.preprocess.neurovfm.settings import (
    BACKGROUND,
    CT_WINDOWS,
    LAYOUTS,
    PLANES,
    SLICE_AXES,
    Mode,
    Plane,
    PrepareSettings,
    View,
    find_slice_axis,
)

if TYPE_CHECKING:
    import torch

__all__ = ["normalise_mri", "plan_grid", "prepare_array", "scale_mri", "window_ct"]


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
    if mode not in BACKGROUND:
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
    view, plan, fit_offset, grid_shape = plan_grid(
        tuple(int(n) for n in data.shape[1:]),
        affine,
        slice_axis,
        settings,
        source,
        fill=BACKGROUND[mode],
    )
    x = plan.apply(data)
    x = ops.nan_to_num(x, BACKGROUND[mode]) if ops.is_float(data) else x
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
        normalise_mri(ops, x, settings, img_inside[:, 0], mask_inside)
    else:
        window_ct(ops, x, settings, img_inside, mask_inside)
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


def plan_grid(
    shape: tuple[int, ...],
    affine: np.ndarray,
    slice_axis: int | Plane | None,
    settings: PrepareSettings,
    source: str | os.PathLike[str] | None,
    *,
    fill: float,
) -> tuple[View, ResamplePlan, tuple[int, int, int], tuple[int, int, int]]:
    """The output grid, and the resample from the input onto its computed (cropped, unpadded)
    block: trilinear, each voxel filling its extent (``boundary="extent"``), float32.

    Returns:
        ``(view, plan, pad_offset (D, H, W), computed_shape (D, H, W))``.
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
        if slice_axis not in SLICE_AXES:
            raise PreparationError(
                f"slice_axis must be 0, 1, 2 or one of {PLANES}, got {slice_axis!r}", path=source
            )
        axis = SLICE_AXES[slice_axis]
    else:
        if int(slice_axis) not in (0, 1, 2):
            raise PreparationError(f"slice_axis must be 0, 1 or 2, got {slice_axis}", path=source)
        axis = plan.permutation.index(int(slice_axis))
    spacing = [settings.in_plane_mm] * 3
    spacing[axis] = settings.through_plane_mm
    grid_shape, grid_affine = grid_for_spacing(plan.output_shape, rpi_affine, spacing)
    axes = LAYOUTS[axis]
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
    resample_plan = plan_resample(
        affine,
        in_shape=shape,
        target_affine=computed_affine,
        target_shape=computed,
        interpolation="linear",
        boundary="extent",
        fill=fill,
        dtype=np.float32,
    )
    shift = np.eye(4)
    shift[:3, 3] = -np.asarray(pad, dtype=np.float64)
    view = View(
        plane=PLANES[axis],
        slice_axis=axis,
        axes=axes,
        affine=computed_affine @ shift,
        shape=(out_shape[0], out_shape[1], out_shape[2]),
    )
    return view, resample_plan, (pad[0], pad[1], pad[2]), (computed[0], computed[1], computed[2])


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


def normalise_mri(ops: Ops, x: Any, settings: PrepareSettings, out: Any, mask: Any) -> None:
    """Clip to the percentiles and scale into ``out`` (may be ``x`` itself); foreground → ``mask``."""
    low, high = settings.mri_percentiles
    stats = ops.percentiles(x, (low, high, settings.foreground_percentile))  # (B, 3) float64
    scale_mri(ops, x, stats, out, mask)


def scale_mri(ops: Ops, x: Any, stats: np.ndarray, out: Any, mask: Any) -> None:
    """``normalise_mri`` once the ``(B, 3)`` percentiles (low, high, foreground) are known."""
    ops.greater_into(x, ops.per_item(_floor32(stats[:, 2]), x), mask)
    low32, width32 = _unit_range(stats[:, 0], stats[:, 1])
    high32 = stats[:, 1].astype(np.float32)
    ops.clip_into(x, ops.per_item(low32, x), ops.per_item(high32, x), out)
    ops.isub(out, ops.per_item(low32, x))
    ops.idiv(out, ops.per_item(width32, x))


def window_ct(ops: Ops, x: Any, settings: PrepareSettings, out: Any, mask: Any) -> None:
    """The three windows into ``out`` (B, 3, D, H, W); HU above the threshold → ``mask``."""
    ops.greater_into(x, float(_floor32(np.asarray([settings.foreground_hu]))[0]), mask)
    for c, (width, level) in enumerate(CT_WINDOWS.values()):
        lower = level - width / 2.0
        channel = out[:, c]
        ops.clip_into(x, lower, lower + width, channel)
        ops.isub(channel, lower)
        ops.idiv(channel, width)
