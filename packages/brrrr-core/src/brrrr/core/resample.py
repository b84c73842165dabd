"""Resampling onto a new voxel grid, preserving world position.

Convention: every output voxel centre ``o`` lies at world position
``target_affine @ o``; its value is the input sampled at the voxel position
``inv(affine) @ target_affine @ o``. Samples that fall outside the input take
``fill``; linear interpolation blends towards ``fill`` within one voxel of the
edge (scipy's ``mode="grid-constant"``, torch's ``padding_mode="zeros"``).
Cubic B-splines ring: samples up to about a dozen voxels outside the input
approach ``fill`` rather than equal it, as in scipy.

Interpolation:

* ``"nearest"``: exact for any dtype (labels stay labels); ties round up.
* ``"linear"``: trilinear. Axis-aligned grids (any change of spacing, or
  grids that only differ by scale and shift) use three separable 1-D passes,
  which are exact and fast; oblique grids use ``torch.grid_sample`` or scipy.
* ``"cubic"``: cubic B-spline through :func:`scipy.ndimage.affine_transform`
  (CPU; a torch input is moved to the CPU and back).

Arrays hold the spatial axes last, ``(I, J, K)`` or ``(C, I, J, K)``. Numpy in,
numpy out; torch in, torch out. Passing ``device=`` runs the numpy input on that
torch device and brings the result back.

Example:
    >>> import numpy as np
    >>> from brrrr.core.resample import grid_for_spacing, resample
    >>> data, affine = np.random.rand(8, 8, 8).astype("f4"), np.eye(4)
    >>> shape, target = grid_for_spacing((8, 8, 8), affine, (2.0, 2.0, 2.0))
    >>> resample(data, affine, target_shape=shape, target_affine=target).shape
    (4, 4, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from brrrr.core.errors import GeometryError, MissingDependencyError
from brrrr.core.geometry import check_affine, direction_cosines, spacing

__all__ = ["Interpolation", "grid_for_spacing", "resample"]

Interpolation = Literal["nearest", "linear", "cubic"]

# Oblique resampling builds a coordinate grid; it is done in slabs of this many
# output voxels so memory stays bounded for large volumes.
_SLAB_VOXELS = 1 << 22
# Entries of the voxel→voxel map this close to an integer are taken as that integer.
_SNAP = 1e-9


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
    fill: float = 0.0,
    device: Any = None,
) -> Any:
    """Resample ``array`` onto the grid ``(target_shape, target_affine)``.

    Args:
        array: ``(I, J, K)`` or ``(C, I, J, K)`` numpy array or torch tensor.
        affine: (4, 4) voxel→world matrix of ``array``.
        target_shape: Spatial shape ``(I', J', K')`` of the output.
        target_affine: (4, 4) voxel→world matrix of the output.
        interpolation: ``"nearest"``, ``"linear"`` or ``"cubic"``.
        fill: Value of samples outside the input.
        device: Torch device to compute on (``"cuda"``, ``"cpu"``); ``None`` keeps
            numpy input on numpy and torch input on its own device.

    Returns:
        ``(I', J', K')`` or ``(C, I', J', K')``, same kind (numpy/torch) as the
        input. ``nearest`` keeps the dtype; otherwise float inputs keep theirs
        (float16 becomes float32) and integer inputs become float32.
    """
    if array.ndim not in (3, 4):
        raise GeometryError(
            f"expected a (I, J, K) or (C, I, J, K) array, got shape {tuple(array.shape)}"
        )
    if interpolation not in ("nearest", "linear", "cubic"):
        raise GeometryError(
            f"interpolation must be nearest, linear or cubic, got {interpolation!r}"
        )
    affine = check_affine(affine)
    target_affine = check_affine(target_affine)
    out_shape = tuple(int(n) for n in target_shape)
    if len(out_shape) != 3 or min(out_shape) < 1:
        raise GeometryError(f"target_shape must be 3 positive sizes, got {tuple(target_shape)}")
    vox2vox = _snap_to_integers(np.linalg.inv(affine) @ target_affine)

    is_torch = type(array).__module__.startswith("torch")
    if interpolation == "cubic":
        return _cubic(array, vox2vox, out_shape, fill, is_torch)
    if device is not None and not is_torch:
        torch = _torch()
        # torch.from_numpy refuses byte-swapped arrays (big-endian NIfTI files).
        host = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
        tensor = torch.from_numpy(host).to(device)
        out = resample(
            tensor,
            affine,
            target_shape=out_shape,
            target_affine=target_affine,
            interpolation=interpolation,
            fill=fill,
        )
        return out.cpu().numpy()
    if is_torch and device is not None:
        array = array.to(device)
    xp = _TorchOps() if is_torch else _NumpyOps()
    squeeze = array.ndim == 3
    data = array[None] if squeeze else array
    if _is_axis_aligned(vox2vox):
        if interpolation == "nearest":
            out = _separable_nearest(xp, data, vox2vox, out_shape, fill)
        else:
            out = _separable_linear(xp, xp.as_float(data), vox2vox, out_shape, fill)
    elif interpolation == "nearest":
        out = _oblique_nearest(xp, data, vox2vox, out_shape, fill)
    elif is_torch:
        out = _oblique_linear_torch(data, vox2vox, out_shape, fill)
    else:
        out = _oblique_linear_scipy(data, vox2vox, out_shape, fill)
    return out[0] if squeeze else out


def _snap_to_integers(vox2vox: np.ndarray) -> np.ndarray:
    """Round entries within ``_SNAP`` voxels of an integer to it.

    ``inv(affine) @ target_affine`` carries round-off (``1 ± 1e-16``), which would
    make resampling onto the same grid, a flip or a whole-voxel shift blend
    neighbours at the 1e-12 level instead of copying voxels exactly.
    """
    rounded = np.round(vox2vox)
    return np.where(np.abs(vox2vox - rounded) <= _SNAP, rounded, vox2vox)


def _is_axis_aligned(vox2vox: np.ndarray) -> bool:
    linear = vox2vox[:3, :3]
    off_diagonal = linear - np.diag(np.diag(linear))
    return bool(np.abs(off_diagonal).max() <= 1e-9 * max(1.0, float(np.abs(linear).max())))


def _torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - exercised only without torch
        raise MissingDependencyError(
            'this call needs torch: pip install "brrrr-core[torch]"'
        ) from None
    return torch


class _NumpyOps:
    """The handful of array operations the separable paths need, for numpy."""

    def as_float(self, a: np.ndarray) -> np.ndarray:
        if a.dtype in (np.float32, np.float64):
            return a
        return a.astype(np.float32)

    def index(self, values: np.ndarray, like: np.ndarray) -> np.ndarray:
        return values

    def take(self, a: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
        return np.take(a, idx, axis=axis)

    def copy(self, a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a).copy() if a.flags.c_contiguous else np.ascontiguousarray(a)

    def select(self, a: np.ndarray, start: int, step: int, n: int, axis: int) -> np.ndarray:
        index = [slice(None)] * a.ndim
        stop = start + step * n
        index[axis] = slice(start, None if stop < 0 else stop, step)
        return a[tuple(index)]

    def weights(self, values: np.ndarray, like: np.ndarray) -> np.ndarray:
        return values.astype(like.dtype)

    def full(self, shape: tuple[int, ...], fill: float, like: np.ndarray) -> np.ndarray:
        return np.full(shape, fill, dtype=like.dtype)

    def where(self, mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.where(mask, a, b)


class _TorchOps:
    """The same operations for torch tensors, on the tensor's device."""

    def __init__(self) -> None:
        self.torch = _torch()

    def as_float(self, a: Any) -> Any:
        if a.dtype in (self.torch.float32, self.torch.float64):
            return a
        return a.to(self.torch.float32)

    def index(self, values: np.ndarray, like: Any) -> Any:
        return self.torch.from_numpy(values).to(like.device)

    def take(self, a: Any, idx: Any, axis: int) -> Any:
        return self.torch.index_select(a, axis, idx)

    def copy(self, a: Any) -> Any:
        return a.contiguous().clone() if a.is_contiguous() else a.contiguous()

    def select(self, a: Any, start: int, step: int, n: int, axis: int) -> Any:
        if step < 0:  # torch has no negative-step views
            index = np.arange(start, start + step * n, step, dtype=np.int64)
            return self.take(a, self.index(index, a), axis)
        return a.narrow(axis, start, step * (n - 1) + 1)[
            (slice(None),) * axis + (slice(None, None, step),)
        ]

    def weights(self, values: np.ndarray, like: Any) -> Any:
        return self.torch.from_numpy(values).to(device=like.device, dtype=like.dtype)

    def full(self, shape: tuple[int, ...], fill: float, like: Any) -> Any:
        return self.torch.full(shape, fill, dtype=like.dtype, device=like.device)

    def where(self, mask: Any, a: Any, b: Any) -> Any:
        return self.torch.where(mask, a, b)


def _axis_positions(vox2vox: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """Input positions (float64) sampled along one axis of an axis-aligned map."""
    return vox2vox[axis, axis] * np.arange(n_out, dtype=np.float64) + vox2vox[axis, 3]


def _whole_voxels(pos: np.ndarray, n_in: int) -> tuple[int, int] | None:
    """``(start, step)`` when every sample is an input voxel at a regular step, else None.

    Such an axis needs no interpolation: it is a strided view of the input (no copy on
    numpy), which makes an unchanged axis — the in-plane axes of a 1×1×4 mm resample of a
    1 mm scan, a flip, a whole-voxel crop — free.
    """
    if not np.array_equal(pos, np.round(pos)) or pos.min() < 0 or pos.max() > n_in - 1:
        return None
    index = pos.astype(np.int64)
    step = int(index[1] - index[0]) if index.size > 1 else 1
    if step == 0 or not np.array_equal(index, index[0] + step * np.arange(index.size)):
        return None
    return int(index[0]), step


def _broadcast(values: Any, axis: int, ndim: int) -> Any:
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def _separable_nearest(
    xp: Any, data: Any, vox2vox: np.ndarray, out_shape: tuple[int, ...], fill: float
) -> Any:
    out = data
    valid = None
    owned = False
    for axis in range(3):
        n_in = data.shape[axis + 1]
        idx = np.floor(_axis_positions(vox2vox, axis, out_shape[axis]) + 0.5).astype(np.int64)
        regular = _whole_voxels(idx.astype(np.float64), n_in)
        if regular is not None:
            out = xp.select(out, regular[0], regular[1], out_shape[axis], axis + 1)
            continue
        inside = (idx >= 0) & (idx < n_in)
        out = xp.take(out, xp.index(np.clip(idx, 0, n_in - 1), out), axis + 1)
        owned = True
        if not inside.all():
            mask = xp.index(_broadcast(inside, axis + 1, 4), out)
            valid = mask if valid is None else valid & mask
    if valid is not None:
        return xp.where(valid, out, xp.full((1,), fill, out))
    return out if owned else xp.copy(out)


def _linear_weights(
    pos: np.ndarray, n_in: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour indices and weights for 1-D linear interpolation at float64 ``pos``.

    Returns ``(lo, w_lo, w_hi, w_fill)``: the lower neighbour, the weights of the two
    neighbours (zero where a neighbour lies outside ``0 … n_in - 1``) and the weight
    left over for ``fill``, which is exactly 0 where both neighbours are inside.
    """
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    lo_in = (lo >= 0) & (lo < n_in)
    hi_in = (lo + 1 >= 0) & (lo + 1 < n_in)
    w_lo = np.where(lo_in, 1.0 - frac, 0.0)
    w_hi = np.where(hi_in, frac, 0.0)
    w_fill = np.where(lo_in & hi_in, 0.0, 1.0 - w_lo - w_hi)
    return lo, w_lo, w_hi, w_fill


def _separable_linear(
    xp: Any, data: Any, vox2vox: np.ndarray, out_shape: tuple[int, ...], fill: float
) -> Any:
    # ``fill`` enters as its own weighted term rather than by shifting the data
    # (``data - fill`` … ``+ fill``): the shift loses every digit of small values
    # when ``fill`` is large, and breaks exactness on the same grid.
    out = data
    positions = [_axis_positions(vox2vox, a, out_shape[a]) for a in range(3)]
    whole = [_whole_voxels(positions[a], data.shape[a + 1]) for a in range(3)]
    # Whole-voxel axes first (strided views, free), then the passes that shrink the
    # volume most, so later passes touch fewer voxels.
    for axis in range(3):
        plan = whole[axis]
        if plan is not None:
            out = xp.select(out, plan[0], plan[1], out_shape[axis], axis + 1)
    ratios = [out_shape[a] / data.shape[a + 1] for a in range(3)]
    passes = sorted((a for a in range(3) if whole[a] is None), key=lambda a: ratios[a])
    if not passes:
        return xp.copy(out)  # never hand back a view of the caller's array
    for axis in passes:
        n_in = data.shape[axis + 1]
        lo, w_lo, w_hi, w_fill = _linear_weights(positions[axis], n_in)
        lo_values = xp.take(out, xp.index(np.clip(lo, 0, n_in - 1), out), axis + 1)
        hi_values = xp.take(out, xp.index(np.clip(lo + 1, 0, n_in - 1), out), axis + 1)
        out = lo_values * _broadcast(xp.weights(w_lo, out), axis + 1, 4)
        out += hi_values * _broadcast(xp.weights(w_hi, out), axis + 1, 4)
        if fill and w_fill.any():
            out += fill * _broadcast(xp.weights(w_fill, out), axis + 1, 4)
    return out


def _slabs(out_shape: tuple[int, ...]) -> list[tuple[int, int]]:
    per_slice = out_shape[1] * out_shape[2]
    step = max(1, _SLAB_VOXELS // max(1, per_slice))
    return [(s, min(s + step, out_shape[0])) for s in range(0, out_shape[0], step)]


def _slab_positions(
    vox2vox: np.ndarray, out_shape: tuple[int, ...], start: int, stop: int
) -> np.ndarray:
    """(3, n) float64 input positions of the output voxels in slices start:stop."""
    grid = (
        np.mgrid[start:stop, 0 : out_shape[1], 0 : out_shape[2]].reshape(3, -1).astype(np.float64)
    )
    return vox2vox[:3, :3] @ grid + vox2vox[:3, 3:4]


def _oblique_nearest(
    xp: Any, data: Any, vox2vox: np.ndarray, out_shape: tuple[int, ...], fill: float
) -> Any:
    in_shape = np.asarray(data.shape[1:])
    flat = data.reshape(data.shape[0], -1)
    pieces = []
    for start, stop in _slabs(out_shape):
        idx = np.floor(_slab_positions(vox2vox, out_shape, start, stop) + 0.5).astype(np.int64)
        inside = np.asarray(((idx >= 0) & (idx < in_shape[:, None])).all(axis=0))
        idx = np.clip(idx, 0, in_shape[:, None] - 1)
        linear = np.ravel_multi_index(tuple(idx), tuple(in_shape))
        values = xp.take(flat, xp.index(linear, flat), 1)
        pieces.append(xp.where(xp.index(inside[None], values), values, xp.full((1,), fill, values)))
    joined = (
        np.concatenate(pieces, axis=1) if isinstance(flat, np.ndarray) else _torch().cat(pieces, 1)
    )
    return joined.reshape(data.shape[0], *out_shape)


def _oblique_linear_torch(
    data: Any, vox2vox: np.ndarray, out_shape: tuple[int, ...], fill: float
) -> Any:
    torch = _torch()
    values = data.to(torch.float32) if data.dtype not in (torch.float32, torch.float64) else data
    sizes = np.asarray(values.shape[1:], dtype=np.float64)
    pieces = []
    for start, stop in _slabs(out_shape):
        pos = _slab_positions(vox2vox, out_shape, start, stop)
        # align_corners=False: index p of a size-n axis sits at (2p + 1) / n - 1;
        # grid_sample reads (x, y, z) as (K, J, I), so the axes are reversed.
        norm = ((2.0 * pos + 1.0) / sizes[:, None] - 1.0)[::-1].T
        grid = torch.from_numpy(np.ascontiguousarray(norm)).to(values.device, values.dtype)
        grid = grid.reshape(1, stop - start, out_shape[1], out_shape[2], 3)
        sampled = torch.nn.functional.grid_sample(
            values[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        piece = sampled[0]
        if fill:
            # grid_sample pads with zeros; add fill times the weight that fell outside,
            # computed in float64 (exactly 0 in the interior) as in the separable path.
            inside = np.ones(pos.shape[1])
            for axis in range(3):
                w_fill = _linear_weights(pos[axis], int(sizes[axis]))[3]
                inside *= 1.0 - w_fill
            outside = (1.0 - inside).reshape(1, stop - start, out_shape[1], out_shape[2])
            piece = piece + fill * torch.from_numpy(outside).to(piece.device, piece.dtype)
        pieces.append(piece)
    return torch.cat(pieces, dim=1)


def _oblique_linear_scipy(
    data: np.ndarray, vox2vox: np.ndarray, out_shape: tuple[int, ...], fill: float
) -> np.ndarray:
    from scipy import ndimage

    dtype = np.float64 if data.dtype == np.float64 else np.float32
    if data.dtype.kind == "f" and data.dtype not in (np.float32, np.float64):
        # scipy.ndimage rejects float16 (and other non-native float types).
        data = data.astype(dtype)
    out = np.empty((data.shape[0], *out_shape), dtype=dtype)
    for c in range(data.shape[0]):
        ndimage.affine_transform(
            data[c],
            vox2vox[:3, :3],
            offset=vox2vox[:3, 3],
            output_shape=out_shape,
            output=out[c],
            order=1,
            mode="grid-constant",
            cval=fill,
        )
    return out


def _cubic(
    array: Any, vox2vox: np.ndarray, out_shape: tuple[int, ...], fill: float, is_torch: bool
) -> Any:
    from scipy import ndimage

    host = array.detach().cpu().numpy() if is_torch else np.asarray(array)
    data = host[None] if host.ndim == 3 else host
    dtype = np.float64 if data.dtype == np.float64 else np.float32
    out = np.empty((data.shape[0], *out_shape), dtype=dtype)
    for c in range(data.shape[0]):
        ndimage.affine_transform(
            data[c].astype(np.float64, copy=False),
            vox2vox[:3, :3],
            offset=vox2vox[:3, 3],
            output_shape=out_shape,
            output=out[c],
            order=3,
            mode="grid-constant",
            cval=fill,
        )
    result = out[0] if host.ndim == 3 else out
    if is_torch:
        return _torch().from_numpy(result).to(array.device)
    return result
