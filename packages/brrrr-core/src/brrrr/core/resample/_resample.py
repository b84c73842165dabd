"""The entry points: :func:`resample` and :func:`grid_for_spacing`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from brrrr.core.errors import GeometryError
from brrrr.core.geometry import check_affine, direction_cosines, spacing
from brrrr.core.resample._backend import torch_module
from brrrr.core.resample._oblique import (
    cubic,
    oblique_linear_scipy,
    oblique_linear_torch,
    oblique_nearest,
)
from brrrr.core.resample._plan import Boundary, is_separable, plan_resample, snap

__all__ = ["Interpolation", "grid_for_spacing", "resample"]

Interpolation = Literal["nearest", "linear", "cubic"]


def grid_for_spacing(
    shape: Sequence[int], affine: np.ndarray, spacing_mm: float | Sequence[float]
) -> tuple[tuple[int, int, int], np.ndarray]:
    """The grid with voxel size ``spacing_mm`` covering the same field of view.

    The axis directions are kept; the number of voxels along each axis is
    ``max(1, round(n * old / new))``; the grid is centred on the same world point
    as the input (the centre of the field of view does not move).

    Args:
        shape: Spatial shape ``(I, J, K)`` of the input.
        affine: (4, 4) voxel→world matrix of the input.
        spacing_mm: New voxel size, one number or one per axis (mm).

    Returns:
        ``(target_shape, target_affine)``.
    """
    affine = check_affine(affine)
    new = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
    if not (np.isfinite(new).all() and (new > 0).all()):
        raise GeometryError(f"spacing must be positive and finite, got {spacing_mm!r}")
    old_shape = np.asarray(shape[-3:], dtype=np.float64)
    new_shape = np.maximum(1, np.round(old_shape * spacing(affine) / new)).astype(int)
    target = np.eye(4)
    target[:3, :3] = direction_cosines(affine) * new
    centre = affine[:3, :3] @ ((old_shape - 1) / 2) + affine[:3, 3]
    target[:3, 3] = centre - target[:3, :3] @ ((new_shape - 1) / 2)
    return (int(new_shape[0]), int(new_shape[1]), int(new_shape[2])), target


def resample(
    array: Any,
    affine: np.ndarray,
    *,
    target_shape: Sequence[int],
    target_affine: np.ndarray,
    interpolation: Interpolation = "linear",
    boundary: Boundary = "blend",
    fill: float = 0.0,
    device: Any = None,
) -> Any:
    """Resample ``array`` onto the grid ``(target_shape, target_affine)``.

    Grids whose axes follow the input's axes — any spacing, flips, permutations (another
    orientation), crops, shifts — take three exact separable passes (whole-voxel axes are
    strided views); oblique grids sample every voxel with ``torch.grid_sample`` or scipy.

    Args:
        array: ``(I, J, K)`` or ``(C, I, J, K)`` numpy array or torch tensor.
        affine: (4, 4) voxel→world matrix of ``array``.
        target_shape: Spatial shape ``(I', J', K')`` of the output.
        target_affine: (4, 4) voxel→world matrix of the output.
        interpolation: ``"nearest"``, ``"linear"`` or ``"cubic"``.
        boundary: ``"blend"`` (linear values blend towards ``fill`` within one voxel of the
            edge, as scipy's ``grid-constant``) or ``"extent"`` (each voxel fills its extent to
            half a voxel beyond its centre, as ITK; separable grids only). Nearest and cubic
            ignore it.
        fill: Value of samples outside the input.
        device: Torch device to compute on (``"cuda"``, ``"cpu"``); ``None`` keeps numpy
            input on numpy and torch input on its own device.

    Returns:
        ``(I', J', K')`` or ``(C, I', J', K')``, same kind (numpy/torch) as the input, never a
        view of it. ``nearest`` keeps the dtype; otherwise float64 stays float64 and every
        other dtype becomes float32.

    Raises:
        GeometryError: Bad shapes, affines, interpolation or boundary, or ``"extent"`` on an
            oblique grid.
    """
    if array.ndim not in (3, 4):
        raise GeometryError(
            f"expected a (I, J, K) or (C, I, J, K) array, got shape {tuple(array.shape)}"
        )
    if interpolation not in ("nearest", "linear", "cubic"):
        raise GeometryError(
            f"interpolation must be nearest, linear or cubic, got {interpolation!r}"
        )
    if boundary not in ("blend", "extent"):
        raise GeometryError(f"boundary must be 'blend' or 'extent', got {boundary!r}")
    affine = check_affine(affine)
    target_affine = check_affine(target_affine)
    out_shape = tuple(int(n) for n in target_shape)
    if len(out_shape) != 3 or min(out_shape) < 1:
        raise GeometryError(f"target_shape must be 3 positive sizes, got {tuple(target_shape)}")
    vox2vox = snap(np.linalg.inv(affine) @ target_affine)
    is_torch = not isinstance(array, np.ndarray)
    if interpolation == "cubic":
        return cubic(array, vox2vox, out_shape, fill, is_torch)
    if is_separable(vox2vox):
        plan = plan_resample(
            affine,
            in_shape=tuple(int(n) for n in array.shape[-3:]),
            target_affine=target_affine,
            target_shape=out_shape,
            interpolation=interpolation,
            boundary=boundary,
            fill=fill,
        )
        return plan.apply(array, device=device)
    if boundary == "extent":
        raise GeometryError("boundary='extent' needs a grid whose axes follow the input's")
    if device is not None and not is_torch:
        torch = torch_module()
        # torch.from_numpy refuses byte-swapped arrays (big-endian NIfTI files).
        host = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
        out = resample(
            torch.from_numpy(host).to(device),
            affine,
            target_shape=out_shape,
            target_affine=target_affine,
            interpolation=interpolation,
            fill=fill,
        )
        return out.cpu().numpy()
    if is_torch and device is not None:
        array = array.to(device)
    squeeze = array.ndim == 3
    data = array[None] if squeeze else array
    if interpolation == "nearest":
        out = oblique_nearest(data, vox2vox, out_shape, fill)
    elif is_torch:
        out = oblique_linear_torch(data, vox2vox, out_shape, fill)
    else:
        out = oblique_linear_scipy(data, vox2vox, out_shape, fill)
    return out[0] if squeeze else out
