"""The separable plan: how each output axis samples one input axis.

A grid whose voxel→voxel map ``inv(affine) @ target_affine`` sends each output axis along
exactly one input axis — any change of spacing, flips, axis permutations (reorienting), crops and
shifts — is resampled by three 1-D passes, one per output axis. Each pass is planned here once,
in float64: a strided view (``"slice"``), a gather (``"take"``) or a two-tap blend
(``"linear"``) with its weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from brrrr.core.errors import GeometryError
from brrrr.core.resample._backend import regular_steps

__all__ = [
    "AxisOp",
    "Boundary",
    "ResamplePlan",
    "blend_weights",
    "is_separable",
    "plan_resample",
    "snap",
]

Boundary = Literal["blend", "extent"]

# Entries of the voxel→voxel map this close to an integer are taken as that integer.
_SNAP_MATRIX = 1e-9
# Sample positions this close to a whole voxel are taken as that voxel.
_SNAP_POSITION = 1e-6


def snap(vox2vox: np.ndarray) -> np.ndarray:
    """Round entries within 1e-9 of an integer to it.

    ``inv(affine) @ target_affine`` carries round-off (``1 ± 1e-16``), which would make
    resampling onto the same grid, a flip or a whole-voxel shift blend neighbours at the 1e-12
    level instead of copying voxels exactly.
    """
    rounded = np.round(vox2vox)
    return np.where(np.abs(vox2vox - rounded) <= _SNAP_MATRIX, rounded, vox2vox)


def _sources(vox2vox: np.ndarray) -> list[int]:
    linear = vox2vox[:3, :3]
    return [int(np.argmax(np.abs(linear[:, a]))) for a in range(3)]


def is_separable(vox2vox: np.ndarray) -> bool:
    """Whether each output axis moves along exactly one input axis (a permuted diagonal)."""
    linear = vox2vox[:3, :3]
    src = _sources(vox2vox)
    off_axis = np.abs(linear).sum(axis=0) - np.abs(linear[src, range(3)])
    scale = max(1.0, float(np.abs(linear).max()))
    return sorted(src) == [0, 1, 2] and bool(off_axis.max() <= 1e-9 * scale)


@dataclass(frozen=True)
class AxisOp:
    """How one output axis samples its input axis.

    ``"slice"``: output ``o`` is input ``start + step · o``. ``"take"``: input ``lo[o]``, and
    ``fill`` where ``outside[o]``. ``"linear"``: ``w_lo[o] · in[lo[o]] + w_hi[o] · in[hi[o]] +
    w_fill[o] · fill``. Weights are float64 until :meth:`astype`.
    """

    kind: Literal["slice", "take", "linear"]
    n_in: int
    n_out: int
    start: int = 0
    step: int = 1
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    w_lo: np.ndarray | None = None
    w_hi: np.ndarray | None = None
    w_fill: np.ndarray | None = None
    outside: np.ndarray | None = None

    def as_take(self) -> AxisOp:
        """A ``"slice"`` as the equivalent gather (torch has no negative-step views)."""
        if self.kind != "slice":
            return self
        index = self.start + self.step * np.arange(self.n_out, dtype=np.int64)
        return AxisOp("take", self.n_in, self.n_out, lo=index)

    def astype(self, dtype: np.dtype) -> AxisOp:
        """The same operation with its weights in ``dtype`` (the dtype the pass computes in)."""
        if self.kind != "linear":
            return self
        assert self.w_lo is not None
        assert self.w_hi is not None
        return replace(
            self,
            w_lo=self.w_lo.astype(dtype),
            w_hi=self.w_hi.astype(dtype),
            w_fill=None if self.w_fill is None else self.w_fill.astype(dtype),
        )


def _copy_op(index: np.ndarray, n_in: int, n_out: int, scale: float) -> AxisOp:
    """Whole-voxel samples, all inside: a strided view when regular, else a gather."""
    if index.size == 1:
        return AxisOp("slice", n_in, n_out, start=int(index[0]), step=1 if scale >= 0 else -1)
    regular = regular_steps(index)
    if regular is not None:
        return AxisOp("slice", n_in, n_out, start=regular[0], step=regular[1])
    return AxisOp("take", n_in, n_out, lo=index)


def blend_weights(
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


def axis_op(
    scale: float,
    offset: float,
    n_in: int,
    n_out: int,
    *,
    interpolation: Literal["nearest", "linear"],
    boundary: Boundary,
) -> AxisOp:
    """Plan one axis: output ``o`` samples input position ``scale · o + offset``.

    Args:
        scale: Input voxels per output voxel (negative for a flip).
        offset: Input position of output voxel 0.
        n_in: Input length.
        n_out: Output length.
        interpolation: ``"nearest"`` (ties round up) or ``"linear"``.
        boundary: ``"blend"``: a neighbour outside the input counts as ``fill``, so linear
            values blend towards ``fill`` within one voxel of the edge (scipy's
            ``mode="grid-constant"``, torch's ``padding_mode="zeros"``). ``"extent"``: each voxel
            fills its extent, half a voxel beyond its centre; samples there take the edge value,
            samples further out take ``fill`` (ITK; MONAI's ``"border"`` within the field of
            view). Nearest is the same in both.
    """
    pos = scale * np.arange(n_out, dtype=np.float64) + offset
    rounded = np.round(pos)
    pos = np.where(np.abs(pos - rounded) <= _SNAP_POSITION, rounded, pos)
    if interpolation == "nearest":
        index = np.floor(pos + 0.5).astype(np.int64)
        inside = (index >= 0) & (index < n_in)
        if inside.all():
            return _copy_op(index, n_in, n_out, scale)
        return AxisOp("take", n_in, n_out, lo=np.clip(index, 0, n_in - 1), outside=~inside)
    if boundary == "extent":
        inside = (pos >= -0.5) & (pos <= n_in - 0.5)
        pos = np.clip(pos, 0.0, n_in - 1.0)
        if inside.all() and np.all(pos == np.round(pos)):
            return _copy_op(pos.astype(np.int64), n_in, n_out, scale)
        lo = np.clip(np.floor(pos).astype(np.int64), 0, max(n_in - 2, 0))
        frac = pos - lo if n_in > 1 else np.zeros_like(pos)
        return AxisOp(
            "linear",
            n_in,
            n_out,
            lo=lo,
            hi=np.minimum(lo + 1, n_in - 1),
            w_lo=np.where(inside, 1.0 - frac, 0.0),
            w_hi=np.where(inside, frac, 0.0),
            w_fill=None if inside.all() else (~inside).astype(np.float64),
        )
    if np.all(pos == np.round(pos)) and pos.min() >= 0 and pos.max() <= n_in - 1:
        return _copy_op(pos.astype(np.int64), n_in, n_out, scale)
    lo, w_lo, w_hi, w_fill = blend_weights(pos, n_in)
    return AxisOp(
        "linear",
        n_in,
        n_out,
        lo=np.clip(lo, 0, n_in - 1),
        hi=np.clip(lo + 1, 0, n_in - 1),
        w_lo=w_lo,
        w_hi=w_hi,
        w_fill=w_fill if w_fill.any() else None,
    )


@dataclass(frozen=True)
class ResamplePlan:
    """A separable resample, planned once and applied to any array on that grid.

    Attributes:
        in_shape: Input spatial shape ``(I, J, K)``.
        out_shape: Output spatial shape ``(I', J', K')``.
        src: The input axis each output axis moves along (a permutation of 0, 1, 2).
        ops: The 1-D operation of each output axis.
        order: Output axes in the order their passes run: the passes that shrink the volume
            most first, so later ones touch fewer voxels. Strided views run before any pass.
        interpolation: ``"nearest"`` or ``"linear"``.
        fill: Value of samples outside the input.
        dtype: What linear passes compute in and return; ``None`` picks float64 for float64
            input and float32 otherwise. Nearest keeps the input's dtype.
    """

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    src: tuple[int, int, int]
    ops: tuple[AxisOp, AxisOp, AxisOp]
    order: tuple[int, int, int]
    interpolation: Literal["nearest", "linear"]
    fill: float
    dtype: np.dtype | None = None

    def compute_dtype(self, input_dtype: np.dtype) -> np.dtype:
        """The dtype the passes compute in and the output has, for input of ``input_dtype``."""
        if self.interpolation == "nearest":
            return np.dtype(input_dtype)
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float64 if input_dtype == np.float64 else np.float32)

    def apply(self, array: Any, *, device: Any = None) -> Any:
        """Resample ``array`` (``(I, J, K)`` or ``(C, I, J, K)``, numpy or torch).

        Returns:
            A new C-contiguous array of the same kind (never a view of ``array``).
        """
        from brrrr.core.resample._separable import run

        return run(self, array, device=device)


def plan_resample(
    affine: np.ndarray,
    *,
    in_shape: Sequence[int],
    target_affine: np.ndarray,
    target_shape: Sequence[int],
    interpolation: Literal["nearest", "linear"] = "linear",
    boundary: Boundary = "blend",
    fill: float = 0.0,
    dtype: npt.DTypeLike | None = None,
) -> ResamplePlan:
    """Plan the separable resample from the grid ``(in_shape, affine)`` onto another.

    Args:
        affine: (4, 4) voxel→world matrix of the input.
        in_shape: Spatial shape ``(I, J, K)`` of the input.
        target_affine: (4, 4) voxel→world matrix of the output.
        target_shape: Spatial shape ``(I', J', K')`` of the output.
        interpolation: ``"nearest"`` or ``"linear"``.
        boundary: ``"blend"`` or ``"extent"`` (see :func:`axis_op`).
        fill: Value of samples outside the input.
        dtype: See :attr:`ResamplePlan.dtype`.

    Raises:
        GeometryError: The grids are oblique to each other (see :func:`is_separable`), or a
            shape is not three positive sizes.
    """
    in_shape_t = tuple(int(n) for n in in_shape[-3:])
    out_shape_t = tuple(int(n) for n in target_shape)
    if len(out_shape_t) != 3 or min(out_shape_t) < 1 or len(in_shape_t) != 3:
        raise GeometryError(f"shapes must be 3 positive sizes, got {in_shape_t} → {out_shape_t}")
    vox2vox = snap(np.linalg.inv(np.asarray(affine, np.float64)) @ target_affine)
    if not is_separable(vox2vox):
        raise GeometryError(f"the output grid is oblique to the input grid:\n{vox2vox}")
    src = _sources(vox2vox)
    ops = tuple(
        axis_op(
            float(vox2vox[src[a], a]),
            float(vox2vox[src[a], 3]),
            in_shape_t[src[a]],
            out_shape_t[a],
            interpolation=interpolation,
            boundary=boundary,
        )
        for a in range(3)
    )
    order = sorted(range(3), key=lambda a: ops[a].n_out / ops[a].n_in)
    return ResamplePlan(
        in_shape=(in_shape_t[0], in_shape_t[1], in_shape_t[2]),
        out_shape=(out_shape_t[0], out_shape_t[1], out_shape_t[2]),
        src=(src[0], src[1], src[2]),
        ops=(ops[0], ops[1], ops[2]),
        order=(order[0], order[1], order[2]),
        interpolation=interpolation,
        fill=float(fill),
        dtype=None if dtype is None else np.dtype(dtype),
    )
