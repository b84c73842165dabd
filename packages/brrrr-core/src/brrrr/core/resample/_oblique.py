"""Oblique grids (rotations, shears) and cubic B-splines: scipy on numpy, ``grid_sample`` on torch.

The separable passes (:mod:`brrrr.core.resample._separable`) cover every grid whose axes follow
the input's; these paths build a coordinate per output voxel, in slabs of about 4 M voxels so
memory stays bounded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brrrr.core.resample._backend import torch_module
from brrrr.core.resample._plan import blend_weights

__all__ = ["cubic", "oblique_linear_scipy", "oblique_linear_torch", "oblique_nearest"]

# Oblique resampling builds a coordinate grid; it is done in slabs of this many
# output voxels so memory stays bounded for large volumes.
_SLAB_VOXELS = 1 << 22


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


def oblique_nearest(data: Any, vox2vox: np.ndarray, out_shape: tuple[int, ...], fill: float) -> Any:
    """Nearest-neighbour samples of ``(C, I, J, K)`` ``data`` (numpy or torch), any dtype."""
    is_numpy = isinstance(data, np.ndarray)
    torch = None if is_numpy else torch_module()
    in_shape = np.asarray(data.shape[1:])
    flat = data.reshape(data.shape[0], -1)
    pieces = []
    for start, stop in _slabs(out_shape):
        idx = np.floor(_slab_positions(vox2vox, out_shape, start, stop) + 0.5).astype(np.int64)
        inside = np.asarray(((idx >= 0) & (idx < in_shape[:, None])).all(axis=0))
        idx = np.clip(idx, 0, in_shape[:, None] - 1)
        linear = np.ravel_multi_index(tuple(idx), tuple(in_shape))
        if torch is None:
            values = np.take(flat, linear, axis=1)
            values[:, ~inside] = fill
        else:
            values = torch.index_select(flat, 1, torch.from_numpy(linear).to(flat.device))
            values[:, torch.from_numpy(~inside).to(flat.device)] = fill
        pieces.append(values)
    joined = np.concatenate(pieces, axis=1) if torch is None else torch.cat(pieces, 1)
    return joined.reshape(data.shape[0], *out_shape)


def oblique_linear_torch(
    data: Any, vox2vox: np.ndarray, out_shape: tuple[int, ...], fill: float
) -> Any:
    torch = torch_module()
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
                w_fill = blend_weights(pos[axis], int(sizes[axis]))[3]
                inside *= 1.0 - w_fill
            outside = (1.0 - inside).reshape(1, stop - start, out_shape[1], out_shape[2])
            piece = piece + fill * torch.from_numpy(outside).to(piece.device, piece.dtype)
        pieces.append(piece)
    return torch.cat(pieces, dim=1)


def oblique_linear_scipy(
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


def cubic(
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
        return torch_module().from_numpy(result).to(array.device)
    return result
