"""Resampling under a memory budget: refuse, or tile the output in slabs.

The output of a resample is projected from its shape and dtype before anything is
allocated (:func:`plan_output`). Above ``memory_budget_bytes`` it is refused
(:class:`MemoryBudgetError`, naming the shape and size) or tiled: computed in slabs
along K, the slowest axis of a NIfTI file, into a preallocated or memory-mapped
array, so only one slab is held in memory. Resampling a 512×512×61 two-photon stack
at 4.97 µm to 1 µm isotropic makes a ≈ 7.9 GB float32 array; tiled, it streams to disk.

The values are :mod:`brrrr.core.resample`'s (trilinear with zero fill outside, or
nearest with ties rounding up), bit for bit: one slab is the whole-volume call, and
tiles come from :class:`brrrr.core.resample.SlabResampler`, which runs the same passes
in the same order on just the input slices each output slice reads.

Example:
    >>> import numpy as np
    >>> from brrrr.core import Volume
    >>> from brrrr.preprocess.microscopy.budget import plan_output, resample_to_spacing
    >>> vol = Volume(np.ones((64, 64, 8), "f4"), np.diag([0.00497, 0.00497, 0.005, 1]))
    >>> plan_output(vol, 1.0, interpolation="linear").shape
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
from brrrr.core.files import atomic_open
from brrrr.core.resample import SlabResampler, grid_for_spacing, plan_resample, resample
from brrrr.preprocess.errors import MemoryBudgetError

__all__ = [
    "OutputPlan",
    "OverBudget",
    "WriteResult",
    "check_budget",
    "format_bytes",
    "nifti_memmap",
    "plan_output",
    "resample_into",
    "resample_to_spacing",
    "slab_depth_for_budget",
    "write_resampled",
]

Interpolation = Literal["linear", "nearest"]
OverBudget = Literal["refuse", "tile"]

_NIFTI1_OFFSET = 352


@dataclass(frozen=True)
class OutputPlan:
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


def plan_output(
    volume: Volume, spacing_um: float | Sequence[float], *, interpolation: Interpolation
) -> OutputPlan:
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
    return OutputPlan(full, affine, dtype, interpolation)


def _slab_bytes(volume: Volume, plan: OutputPlan, depth: int) -> int:
    """Working memory of one slab of ``depth`` output slices: input crop + 3 pass buffers."""
    m = np.linalg.inv(volume.affine) @ plan.affine
    step = max(1.0, float(np.abs(m[:3, 2]).max()))
    (i, j, _), (oi, oj, _) = volume.shape, plan.shape[-3:]
    item = plan.dtype.itemsize * volume.channels
    crop = item * i * j * (int(np.ceil(depth * step)) + 2)
    return crop + 3 * item * max(i, oi) * max(j, oj) * depth


def slab_depth_for_budget(volume: Volume, plan: OutputPlan, budget: int | None) -> int:
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


def resample_into(
    volume: Volume, plan: OutputPlan, *, out: np.ndarray, slab_depth: int | None = None
) -> int:
    """Resample ``volume`` onto ``plan``'s grid, writing slab by slab into ``out``.

    The resample is :mod:`brrrr.core.resample`'s. In one slab it is the whole-volume call; in
    several, :class:`brrrr.core.resample.SlabResampler` makes each output K slice from just the
    input slices it reads, so tiled and untiled outputs are equal bit for bit.

    Args:
        volume: Input, ``(I, J, K)`` or ``(C, I, J, K)``.
        plan: Output grid from :func:`plan_output`.
        out: Preallocated array or ``np.memmap`` of ``plan.shape``.
        slab_depth: Output K slices per slab; ``None`` does it in one slab.

    Returns:
        The number of slabs.

    Raises:
        GeometryError: ``out`` has the wrong shape, or the output grid is oblique to the input
            (its axes do not follow the input's) and more than one slab was asked for.
    """
    if tuple(out.shape) != plan.shape:
        raise GeometryError(f"out has shape {out.shape}, the plan needs {plan.shape}")
    n_k = plan.shape[-1]
    depth = n_k if slab_depth is None else max(1, int(slab_depth))
    data = volume.data if volume.data.ndim == 4 else volume.data[None]
    target = out if out.ndim == 4 else out[None]
    try:
        separable = plan_resample(
            volume.affine,
            in_shape=volume.shape,
            target_affine=plan.affine,
            target_shape=plan.shape[-3:],
            interpolation=plan.interpolation,
        )
    except GeometryError:
        if depth < n_k:
            raise GeometryError(
                "tiling needs an output grid whose axes follow the input's", path=volume.source
            ) from None
        target[...] = resample(
            data,
            volume.affine,
            target_shape=plan.shape[-3:],
            target_affine=plan.affine,
            interpolation=plan.interpolation,
        )
        return 1
    if depth >= n_k:
        target[...] = separable.apply(data)
        return 1
    slabs = SlabResampler(data, separable)
    lead = (slice(None),) * (slabs.axis + 1)
    count = 0
    for start in range(0, n_k, depth):
        for o in range(start, min(start + depth, n_k)):
            slabs.slab(o, out=target[(*lead, slice(o, o + 1))])
        count += 1
    return count


def _refusal(volume: Volume, plan: OutputPlan, budget: int, hint: str) -> MemoryBudgetError:
    return MemoryBudgetError(
        f"resampling makes {plan.describe()}, over the memory budget of "
        f"{format_bytes(budget)}; {hint}",
        path=volume.source,
    )


def check_budget(
    volume: Volume,
    plan: OutputPlan,
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
            :func:`plan_output`). When given, the output is written into it in
            slabs whose working memory fits ``memory_budget_bytes``.

    Returns:
        The resampled volume (its data is ``out`` when given).

    Raises:
        MemoryBudgetError: The output would exceed the budget and no ``out`` was
            given (the message names the projected shape and size), or not even one
            slab fits.
    """
    plan = plan_output(volume, spacing_um, interpolation=interpolation)
    budget = memory_budget_bytes
    if out is None:
        if budget is not None and plan.nbytes > budget:
            raise _refusal(volume, plan, budget, "pass out= (a memory-mapped array) to tile it")
        out, budget = np.empty(plan.shape, dtype=plan.dtype), None
    resample_into(volume, plan, out=out, slab_depth=slab_depth_for_budget(volume, plan, budget))
    return Volume(out, plan.affine, source=volume.source)


@contextlib.contextmanager
def nifti_memmap(path: str | os.PathLike[str], plan: OutputPlan) -> Iterator[np.ndarray]:
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
    with (
        atomic_open(path) as sink,
        open(raw, "rb") as source,
        gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=1, mtime=0) as stream,
    ):
        shutil.copyfileobj(source, stream, length=1 << 22)


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
    plan: OutputPlan,
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
