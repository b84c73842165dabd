"""Resampling under a memory budget: refuse, or tile the output in slabs.

The output of a resample is projected from its shape and dtype before anything is
allocated (:func:`plan_resample`). Above ``memory_budget_bytes`` it is refused
(:class:`MemoryBudgetError`, naming the shape and size) or tiled: computed in slabs
along K, the slowest axis of a NIfTI file, into a preallocated or memory-mapped
array, so only one slab is held in memory. Resampling a 512×512×61 two-photon stack
at 4.97 µm to 1 µm isotropic makes a ≈ 7.9 GB float32 array; tiled, it streams to disk.

Each output voxel depends only on its own index: per-axis sample positions and
weights are computed once for the whole grid, and the passes run in a fixed order
(K, then I, then J), so tiled and untiled outputs are equal bit for bit. The values
follow :mod:`brrrr.core.resample` (trilinear with zero fill outside, or nearest with
ties rounding up) up to float rounding.

Example:
    >>> import numpy as np
    >>> from brrrr.core import Volume
    >>> from brrrr.preprocess.microscopy.budget import plan_resample, resample_to_spacing
    >>> vol = Volume(np.ones((64, 64, 8), "f4"), np.diag([0.00497, 0.00497, 0.005, 1]))
    >>> plan_resample(vol, 1.0, interpolation="linear").shape
    (318, 318, 40)
    >>> out = np.lib.format.open_memmap("out.npy", "w+", "f4", (318, 318, 40))  # doctest: +SKIP
    >>> resample_to_spacing(vol, 1.0, memory_budget_bytes=2**21, out=out)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from brrrr.core import Volume, save_volume
from brrrr.core.errors import GeometryError
from brrrr.core.resample import grid_for_spacing, resample
from brrrr.preprocess.errors import MemoryBudgetError

__all__ = [
    "OverBudget",
    "ResamplePlan",
    "WriteResult",
    "check_budget",
    "format_bytes",
    "nifti_memmap",
    "plan_resample",
    "resample_into",
    "resample_to_spacing",
    "slab_depth_for_budget",
    "write_resampled",
]

Interpolation = Literal["linear", "nearest"]
OverBudget = Literal["refuse", "tile"]

_NIFTI1_OFFSET = 352
# Entries of the output→input voxel map this close to an integer are that integer.
_SNAP = 1e-9


@dataclass(frozen=True)
class ResamplePlan:
    """The output grid of a resample and what it costs, computed before allocating.

    Attributes:
        shape: Output array shape, ``(I', J', K')`` or ``(C, I', J', K')``.
        affine: (4, 4) output voxel→world matrix (mm).
        dtype: Output dtype: float32 (float64 for float64 input) for linear, the
            input's for nearest.
        interpolation: ``"linear"`` or ``"nearest"``.
    """

    shape: tuple[int, ...]
    affine: np.ndarray = field(repr=False)
    dtype: np.dtype
    interpolation: Interpolation

    @property
    def nbytes(self) -> int:
        """Projected size of the output array in bytes."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def spacing_um(self) -> tuple[float, float, float]:
        """Output voxel size in µm."""
        s = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)) * 1e3
        return (float(s[0]), float(s[1]), float(s[2]))

    def describe(self) -> str:
        """``"a (318, 318, 40) float32 array of 15.43 MiB at (1.0, 1.0, 1.0) µm"``."""
        spacing = tuple(round(s, 4) for s in self.spacing_um)
        return f"a {self.shape} {self.dtype} array of {format_bytes(self.nbytes)} at {spacing} µm"


def format_bytes(n: float) -> str:
    """``1536`` → ``"1.50 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def plan_resample(
    volume: Volume, spacing_um: float | Sequence[float], *, interpolation: Interpolation
) -> ResamplePlan:
    """The grid with voxel size ``spacing_um`` over the same field of view (no allocation).

    Args:
        volume: Input, affine in mm.
        spacing_um: Target voxel size in µm, one number or ``(si, sj, sk)``.
        interpolation: ``"linear"`` (images) or ``"nearest"`` (labels).

    Returns:
        The plan; see :func:`brrrr.core.resample.grid_for_spacing` for the grid.
    """
    spacing_mm = np.broadcast_to(np.asarray(spacing_um, dtype=np.float64) / 1e3, (3,))
    shape, affine = grid_for_spacing(volume.shape, volume.affine, spacing_mm.tolist())
    full = shape if volume.data.ndim == 3 else (volume.channels, *shape)
    if interpolation == "nearest":
        dtype = np.dtype(volume.dtype)
    else:
        dtype = np.dtype(np.float64 if volume.dtype == np.float64 else np.float32)
    return ResamplePlan(full, affine, dtype, interpolation)


def _vox2vox(volume: Volume, plan: ResamplePlan) -> np.ndarray | None:
    """The output→input voxel map if it is axis-aligned (scale and shift), else None."""
    m = np.linalg.inv(volume.affine) @ plan.affine
    rounded = np.round(m)
    m = np.where(np.abs(m - rounded) <= _SNAP, rounded, m)
    off = m[:3, :3] - np.diag(np.diag(m[:3, :3]))
    return m if np.abs(off).max() <= _SNAP * max(1.0, float(np.abs(m[:3, :3]).max())) else None


def _slab_bytes(volume: Volume, plan: ResamplePlan, depth: int) -> int:
    """Working memory of one slab of ``depth`` output slices: input crop + 3 pass buffers."""
    m = _vox2vox(volume, plan)
    step = 1.0 if m is None else abs(float(m[2, 2]))
    (i, j, _), (oi, oj, _) = volume.shape, plan.shape[-3:]
    item = plan.dtype.itemsize * volume.channels
    crop = item * i * j * (int(np.ceil(depth * step)) + 2)
    return crop + 3 * item * max(i, oi) * max(j, oj) * depth


def slab_depth_for_budget(volume: Volume, plan: ResamplePlan, budget: int | None) -> int:
    """The most output K slices per slab whose working memory fits ``budget``.

    Raises:
        MemoryBudgetError: Not even one slice fits.
    """
    depth = plan.shape[-1]
    if budget is None:
        return depth
    while depth > 1 and _slab_bytes(volume, plan, depth) > budget:
        depth = max(1, min(depth // 2, depth * budget // _slab_bytes(volume, plan, depth)))
    if _slab_bytes(volume, plan, depth) > budget:
        need = format_bytes(_slab_bytes(volume, plan, 1))
        raise MemoryBudgetError(
            f"one output slice of {plan.describe()} needs about {need} of working memory, "
            f"over the budget of {format_bytes(budget)}; raise the budget or coarsen the spacing",
            path=volume.source,
        )
    return depth


def _axis_map(
    m: np.ndarray, axis: int, n_out: int, n_in: int, interpolation: Interpolation
) -> tuple[np.ndarray, ...]:
    """Clipped source indices and weights along one axis, for the whole output grid.

    Returns ``(index, inside)`` for nearest, ``(lo, hi, w_lo, w_hi)`` for linear; a
    neighbour outside the input has weight 0 (zero fill, as in ``brrrr.core``).
    """
    pos = m[axis, axis] * np.arange(n_out, dtype=np.float64) + m[axis, 3]
    if interpolation == "nearest":
        idx = np.floor(pos + 0.5).astype(np.int64)
        return np.clip(idx, 0, n_in - 1), (idx >= 0) & (idx < n_in)
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    w_lo = np.where((lo >= 0) & (lo < n_in), 1.0 - frac, 0.0)
    w_hi = np.where((lo + 1 >= 0) & (lo + 1 < n_in), frac, 0.0)
    return np.clip(lo, 0, n_in - 1), np.clip(lo + 1, 0, n_in - 1), w_lo, w_hi


def _pass(
    values: np.ndarray, axis: int, parts: tuple[np.ndarray, ...], offset: int, dtype: np.dtype
) -> np.ndarray:
    """One separable pass along ``axis`` of ``values`` (whose index 0 is ``offset``)."""
    shape = [1] * values.ndim
    shape[axis] = -1
    if len(parts) == 2:
        idx, inside = parts
        out = np.take(values, idx - offset, axis=axis)
        if not inside.all():
            out *= inside.reshape(shape).astype(out.dtype)
        return out
    lo, hi, w_lo, w_hi = parts
    out = np.take(values, lo - offset, axis=axis).astype(dtype, copy=False)
    out *= w_lo.astype(dtype).reshape(shape)
    high = np.take(values, hi - offset, axis=axis).astype(dtype, copy=False)
    high *= w_hi.astype(dtype).reshape(shape)
    out += high
    return out


def resample_into(
    volume: Volume, plan: ResamplePlan, *, out: np.ndarray, slab_depth: int | None = None
) -> int:
    """Resample ``volume`` onto ``plan``'s grid, writing slab by slab into ``out``.

    Args:
        volume: Input, ``(I, J, K)`` or ``(C, I, J, K)``.
        plan: Output grid from :func:`plan_resample`.
        out: Preallocated array or ``np.memmap`` of ``plan.shape``.
        slab_depth: Output K slices per slab; ``None`` does it in one slab.

    Returns:
        The number of slabs.

    Raises:
        GeometryError: ``out`` has the wrong shape, or the input grid is sheared
            (not axis-aligned with the output) and more than one slab was asked for.
    """
    if tuple(out.shape) != plan.shape:
        raise GeometryError(f"out has shape {out.shape}, the plan needs {plan.shape}")
    m = _vox2vox(volume, plan)
    n_k = plan.shape[-1]
    depth = n_k if slab_depth is None else max(1, int(slab_depth))
    if m is None:
        if depth < n_k:
            raise GeometryError("tiling needs an axis-aligned grid", path=volume.source)
        out[...] = resample(
            volume.data,
            volume.affine,
            target_shape=plan.shape[-3:],
            target_affine=plan.affine,
            interpolation=plan.interpolation,
        )
        return 1
    data = volume.data if volume.data.ndim == 4 else volume.data[None]
    target = out if out.ndim == 4 else out[None]
    maps = [
        _axis_map(m, axis, plan.shape[-3 + axis], data.shape[1 + axis], plan.interpolation)
        for axis in range(3)
    ]
    count = 0
    for start in range(0, n_k, depth):
        stop = min(start + depth, n_k)
        k_parts = tuple(part[start:stop] for part in maps[2])
        # Input K slices this slab reads: from the lowest index to the highest neighbour.
        highest = k_parts[0] if plan.interpolation == "nearest" else k_parts[1]
        first, last = int(k_parts[0].min()), int(highest.max())
        slab = _pass(data[..., first : last + 1], 3, k_parts, first, plan.dtype)
        slab = _pass(slab, 1, maps[0], 0, plan.dtype)
        target[..., start:stop] = _pass(slab, 2, maps[1], 0, plan.dtype)
        count += 1
    return count


def _refusal(volume: Volume, plan: ResamplePlan, budget: int, hint: str) -> MemoryBudgetError:
    return MemoryBudgetError(
        f"resampling makes {plan.describe()}, over the memory budget of "
        f"{format_bytes(budget)}; {hint}",
        path=volume.source,
    )


def check_budget(
    volume: Volume,
    plan: ResamplePlan,
    *,
    memory_budget_bytes: int | None,
    over_budget: OverBudget = "refuse",
) -> None:
    """Raise before any work when :func:`write_resampled` would refuse this plan.

    Raises:
        MemoryBudgetError: The output exceeds the budget and ``over_budget`` is
            ``"refuse"``, or it would be tiled and not even one slab fits.
    """
    budget = memory_budget_bytes
    if budget is None or plan.nbytes <= budget:
        return
    if over_budget != "tile":
        raise _refusal(
            volume, plan, budget, "use over_budget='tile', a larger budget or a coarser spacing"
        )
    slab_depth_for_budget(volume, plan, budget)


def resample_to_spacing(
    volume: Volume,
    spacing_um: float | Sequence[float],
    *,
    interpolation: Interpolation = "linear",
    memory_budget_bytes: int | None = None,
    out: np.ndarray | None = None,
) -> Volume:
    """Resample to a voxel size in µm, refusing or tiling when over a memory budget.

    Args:
        volume: Input volume (affine in mm).
        spacing_um: Target voxel size in µm, one number or ``(si, sj, sk)``.
        interpolation: ``"linear"`` for images, ``"nearest"`` for labels.
        memory_budget_bytes: Largest output allowed in memory; ``None`` for no limit.
        out: A preallocated or memory-mapped array of the output shape (see
            :func:`plan_resample`). When given, the output is written into it in
            slabs whose working memory fits ``memory_budget_bytes``.

    Returns:
        The resampled volume (its data is ``out`` when given).

    Raises:
        MemoryBudgetError: The output would exceed the budget and no ``out`` was
            given (the message names the projected shape and size), or not even one
            slab fits.
    """
    plan = plan_resample(volume, spacing_um, interpolation=interpolation)
    budget = memory_budget_bytes
    if out is None:
        if budget is not None and plan.nbytes > budget:
            raise _refusal(volume, plan, budget, "pass out= (a memory-mapped array) to tile it")
        out, budget = np.empty(plan.shape, dtype=plan.dtype), None
    resample_into(volume, plan, out=out, slab_depth=slab_depth_for_budget(volume, plan, budget))
    return Volume(out, plan.affine, source=volume.source)


@contextlib.contextmanager
def nifti_memmap(path: str | os.PathLike[str], plan: ResamplePlan) -> Iterator[np.ndarray]:
    """A NIfTI-1 file whose voxels are a writable memory map of ``plan.shape``.

    Use as ``with nifti_memmap(path, plan) as out: ...``. The file is built under a
    temporary name in the destination folder and put in place only when the block
    exits cleanly (gzip-compressed in a stream when ``path`` ends in ``.gz``), so
    ``path`` is never left half-written. Channels go to the 4th NIfTI axis.
    """
    import nibabel as nib

    path = Path(path)
    disk_shape = plan.shape if len(plan.shape) == 3 else (*plan.shape[1:], plan.shape[0])
    header = nib.Nifti1Header()
    header.set_data_shape(disk_shape)
    header.set_data_dtype(plan.dtype)
    header.set_xyzt_units("mm", "sec")
    header.set_sform(plan.affine, code=2)
    header.set_qform(plan.affine, code=1)
    header["vox_offset"] = _NIFTI1_OFFSET
    fd, raw_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    raw = Path(raw_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(header.binaryblock.ljust(_NIFTI1_OFFSET, b"\0"))
            handle.truncate(_NIFTI1_OFFSET + plan.nbytes)
        disk = np.memmap(
            raw, dtype=plan.dtype, mode="r+", offset=_NIFTI1_OFFSET, shape=disk_shape, order="F"
        )
        yield disk if len(plan.shape) == 3 else np.moveaxis(disk, -1, 0)
        disk.flush()
        del disk
        if path.name.lower().endswith(".gz"):
            _gzip_into_place(raw, path)
        else:
            os.replace(raw, path)
    finally:
        with contextlib.suppress(OSError):
            raw.unlink()


def _gzip_into_place(raw: Path, path: Path) -> None:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as sink, open(raw, "rb") as source:
            with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=1, mtime=0) as stream:
                shutil.copyfileobj(source, stream, length=1 << 22)
            sink.flush()
            os.fsync(sink.fileno())
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


@dataclass(frozen=True)
class WriteResult:
    """How :func:`write_resampled` produced a file.

    Attributes:
        mode: ``"in_memory"`` or ``"tiled"`` (through a memory map).
        slabs: Number of slabs computed.
        nonzero_voxels: Nonzero output voxels (a label's foreground), counted per slab.
    """

    mode: Literal["in_memory", "tiled"]
    slabs: int
    nonzero_voxels: int


def write_resampled(
    volume: Volume,
    plan: ResamplePlan,
    path: str | os.PathLike[str],
    *,
    memory_budget_bytes: int | None,
    over_budget: OverBudget = "refuse",
) -> WriteResult:
    """Resample ``volume`` onto ``plan`` and save it as NIfTI at ``path``, within a budget.

    Under budget the output is computed in memory and saved with ``save_volume``.
    Over budget it is refused, or (``over_budget="tile"``) written slab by slab into
    a memory-mapped NIfTI (:func:`nifti_memmap`); both give identical voxels.

    Raises:
        MemoryBudgetError: Over budget with ``"refuse"``, or not even one slab fits.
    """
    budget = memory_budget_bytes
    if budget is None or plan.nbytes <= budget:
        out = np.empty(plan.shape, dtype=plan.dtype)
        slabs = resample_into(volume, plan, out=out)
        save_volume(Volume(out, plan.affine, source=volume.source), path)
        return WriteResult("in_memory", slabs, int(np.count_nonzero(out)))
    check_budget(volume, plan, memory_budget_bytes=budget, over_budget=over_budget)
    depth = slab_depth_for_budget(volume, plan, budget)
    nonzero = 0
    with nifti_memmap(path, plan) as out:
        slabs = resample_into(volume, plan, out=out, slab_depth=depth)
        for start in range(0, plan.shape[-1], depth):
            nonzero += int(np.count_nonzero(out[..., start : start + depth]))
    return WriteResult("tiled", slabs, nonzero)
