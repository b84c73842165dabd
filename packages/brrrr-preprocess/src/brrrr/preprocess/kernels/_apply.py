"""Stamp kernels at peaks: many studies at once, on CPU (compiled loops) or CUDA (torch).

Shared plan: every peak's voxel index is computed once (NiMARE's rounding), the stencil is
flattened once into offsets on a zero-padded copy of the grid (so no bounds checks), and a
lookup table maps each padded-grid position to its output column (or to nothing when it falls
outside the grid or the mask).

CPU: numba loops (:mod:`._stamp_cpu`) walk each peak's stencil as runs of consecutive voxels,
each stamped where it overlaps the mask's intervals on its grid row (a small table per grid
row stands for the lookup table), one Python thread per part of the study rows (parts never
share an output row). Sparse output is built study by study in a cache-resident scratch row.

CUDA: a chunk of peaks becomes one index array ``lut[peak + offsets] + row * V`` and one
scatter (fill for spheres, max for Gaussians, add for KDA) into the output, allocated once;
sparse output goes through a dense block and ``nonzero``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

from brrrr.preprocess.errors import KernelError
from brrrr.preprocess.kernels._peaks import PeakTable
from brrrr.preprocess.kernels._specs import Kernel, Stencil
from brrrr.preprocess.kernels._template import Template

if TYPE_CHECKING:
    import scipy.sparse
    import torch

__all__ = ["MapBatch", "iter_maps", "peaks_to_maps"]

Layout = Literal["masked", "grid"]
MapDType = Literal["float32", "uint8"]

#: Entries (peaks × stencil voxels) per op on CPU: under torch's parallel grain (32768), so
#: each op runs on the thread that calls it, and its index arrays stay in L2.
_CHUNK_ENTRIES_CPU = 1 << 15
#: On CUDA, big launches: 16 M entries (128 MB of int64 indices) per op.
_CHUNK_ENTRIES_CUDA = 1 << 24
#: Added to a lookup entry that has no output column; stays negative after adding any row
#: offset, so a clamp at 0 sends it to the dump slot.
_OUTSIDE = -(1 << 50)


class MapBatch(NamedTuple):
    """Maps of studies ``start:stop`` (rows of the peak table).

    Attributes:
        start: First study row.
        stop: One past the last study row.
        maps: (stop - start, V) masked or (stop - start, I, J, K) grid tensor.
    """

    start: int
    stop: int
    maps: torch.Tensor


@dataclass(frozen=True, eq=False)
class _Group:
    """Peaks of the studies that share one stencil, on the device."""

    base: torch.Tensor  # (n,) int64 padded-grid flat position of each kept peak
    rows: np.ndarray  # (n,) int64 study row of each kept peak, ascending
    offsets: torch.Tensor  # (K,) int64 flat offsets on the padded grid
    values: torch.Tensor  # (K * peaks_per_chunk,) stencil values tiled for a full chunk
    constant: float | None  # the value, when every stencil value is the same


@dataclass(frozen=True, eq=False)
class _Plan:
    lut: torch.Tensor  # (padded voxels,) int64: output column, or _OUTSIDE
    groups: list[_Group]
    n_columns: int
    grid_shape: tuple[int, int, int] | None  # set for the "grid" layout
    combine: Literal["max", "sum"]
    scale: float | None  # KDA's value, applied after counting
    dtype: torch.dtype
    device: torch.device
    n_peaks: int
    cpu: _CpuPlan | None = None  # set on the CPU


@dataclass(frozen=True, eq=False)
class _CpuPlan:
    """Every group's peaks merged in study-row order, stencils as runs, for the CPU loops."""

    table: np.ndarray  # (padded rows + 1, 4) int64: each row's first mask interval, extras
    extra: np.ndarray  # (I, 3) int64: rows' further mask intervals (start, stop, column + 1)
    peak_row: np.ndarray  # (n,) int64 padded-grid row (first two axes) of each peak
    peak_k: np.ndarray  # (n,) int64 position of each peak along the last axis
    rows: np.ndarray  # (n,) int64 study row, ascending
    stencil: np.ndarray  # (n,) int64 stencil of each peak
    run_ptr: np.ndarray  # (G + 1,) int64: stencil g is runs run_ptr[g]:run_ptr[g + 1]
    run_drow: np.ndarray  # (R,) int64 padded-grid rows from the peak to each run
    run_dk: np.ndarray  # (R,) int64 offset of each run's first voxel along the last axis
    run_length: np.ndarray  # (R,) int64
    run_value: np.ndarray  # (R,) int64 index of each run's first value in ``values``
    values: np.ndarray  # (sum K,) float32 or uint8
    modes: np.ndarray  # (G,) int64 fill / max / sum, per stencil
    entries: np.ndarray  # (S,) int64 stamped entries per study row (upper bound of nonzeros)

    def loop_args(self, start: int, stop: int, row0: int) -> tuple[tuple[np.ndarray, ...], int]:
        """The peaks of study rows ``start:stop`` (row ``r`` numbered ``r - row0``) and the
        stencils, as the leading arguments of the :mod:`._stamp_cpu` loops (up to ``values``,
        ``modes``), and how many peaks that is."""
        first, last = np.searchsorted(self.rows, [start, stop])
        peaks = (
            self.table,
            self.extra,
            self.peak_row[first:last],
            self.peak_k[first:last],
            self.rows[first:last] - row0,
            self.stencil[first:last],
        )
        runs = (self.run_ptr, self.run_drow, self.run_dk, self.run_length, self.run_value)
        return (*peaks, *runs), int(last - first)


def _cpu_plan(
    groups: list[_Group], lut: np.ndarray, row_length: int, combine: str, n_rows: int
) -> _CpuPlan:
    from brrrr.preprocess.kernels import _stamp_cpu

    rows = np.concatenate([g.rows for g in groups]) if groups else np.zeros(0, np.int64)
    order = np.argsort(rows, kind="stable")
    entries = np.zeros(n_rows, dtype=np.int64)
    runs = []
    values = []
    first_value = 0
    for g in groups:
        offsets = g.offsets.numpy()
        entries += offsets.size * np.bincount(g.rows, minlength=n_rows)
        start, length, value = _stamp_cpu.stencil_runs(offsets)
        runs.append((start, length, value + first_value))
        values.append(g.values.numpy()[: offsets.size])
        first_value += offsets.size
    modes = [
        _stamp_cpu.SUM
        if combine == "sum"
        else _stamp_cpu.FILL
        if g.constant is not None
        else _stamp_cpu.MAX
        for g in groups
    ]
    run_counts = [r[0].size for r in runs]

    def joined(i: int) -> np.ndarray:
        return np.concatenate([r[i] for r in runs]) if runs else np.zeros(0, np.int64)

    table, extra = _stamp_cpu.row_table(lut, row_length)
    bases = np.concatenate([g.base.numpy() for g in groups])[order] if groups else rows
    run_drow, run_dk = _stamp_cpu.split_offsets(joined(0), row_length)
    return _CpuPlan(
        table=table,
        extra=extra,
        peak_row=bases // row_length,
        peak_k=bases % row_length,
        rows=rows[order],
        stencil=np.repeat(np.arange(len(groups), dtype=np.int64), [g.rows.size for g in groups])[
            order
        ],
        run_ptr=np.concatenate([[0], np.cumsum(run_counts)]).astype(np.int64),
        run_drow=run_drow,
        run_dk=run_dk,
        run_length=joined(1),
        run_value=joined(2),
        values=np.concatenate(values) if values else np.zeros(0, np.float32),
        modes=np.asarray(modes, dtype=np.int64),
        entries=entries,
    )


def _plan(
    peaks: PeakTable,
    kernel: Kernel,
    template: Template,
    *,
    layout: Layout,
    dtype: MapDType,
    device: str | torch.device,
) -> _Plan:
    import torch

    if layout not in ("masked", "grid"):
        raise KernelError(f"layout must be 'masked' or 'grid', got {layout!r}")
    if dtype not in ("float32", "uint8"):
        raise KernelError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
    groups = kernel.stencil_groups(peaks, template.zooms)
    _check_dtype(kernel, peaks, groups, dtype)
    shape = np.asarray(template.shape, dtype=np.int64)
    reach = np.max([g.reach for g, _ in groups], axis=0) if groups else np.zeros(3, np.int64)
    # A peak up to `reach` outside the grid still touches it, and its stencil reaches
    # another `reach` further: pad by twice the reach so every index stays in bounds.
    pad = 2 * reach
    padded = shape + 2 * pad
    kept = template.flat_index
    columns = np.full(int(np.prod(shape)), _OUTSIDE, dtype=np.int64)
    if layout == "masked":
        columns[kept] = np.arange(kept.size, dtype=np.int64) + 1
        n_columns = int(kept.size)
    else:
        columns[kept] = kept + 1
        n_columns = int(np.prod(shape))
    lut = np.full(padded, _OUTSIDE, dtype=np.int64)
    lut[tuple(slice(p, p + n) for p, n in zip(pad, shape, strict=True))] = columns.reshape(shape)
    torch_device = torch.device(device)
    ijk = template.to_voxels(peaks.coords_mm)
    strides = np.array([padded[1] * padded[2], padded[2], 1], dtype=np.int64)
    plans: list[_Group] = []
    combine = kernel.combine
    scale = None
    for stencil, rows in groups:
        stencil_reach = stencil.reach
        in_group = np.isin(peaks.study_index, rows)
        near = np.all((ijk >= -stencil_reach) & (ijk < shape + stencil_reach), axis=1)
        take = np.flatnonzero(in_group & near)
        base = (ijk[take] + pad) @ strides
        offsets = stencil.offsets @ strides
        constant = float(stencil.values[0]) if stencil.constant and stencil.values.size else None
        values = stencil.values
        if combine == "sum" and constant is not None and constant != 1.0:
            # NiMARE multiplies the count by the value; counting ones then scaling matches it.
            scale, values = constant, np.ones_like(values)
        per_chunk = max(1, _CHUNK_ENTRIES_CPU // max(1, offsets.size))
        plans.append(
            _Group(
                base=torch.from_numpy(base).to(torch_device),
                rows=peaks.study_index[take],
                offsets=torch.from_numpy(np.ascontiguousarray(offsets)).to(torch_device),
                values=torch.from_numpy(np.tile(values, per_chunk))
                .to(torch_device)
                .to(torch.uint8 if dtype == "uint8" else torch.float32),
                constant=constant,
            )
        )
    flat_lut = lut.reshape(-1)
    return _Plan(
        lut=torch.from_numpy(flat_lut).to(torch_device),
        groups=plans,
        n_columns=n_columns,
        grid_shape=template.shape if layout == "grid" else None,
        combine=combine,
        scale=scale,
        dtype=torch.uint8 if dtype == "uint8" else torch.float32,
        device=torch_device,
        n_peaks=sum(int(g.base.numel()) for g in plans),
        cpu=_cpu_plan(plans, flat_lut, int(padded[2]), combine, peaks.n_studies)
        if torch_device.type == "cpu"
        else None,
    )


def _check_dtype(
    kernel: Kernel, peaks: PeakTable, groups: list[tuple[Stencil, np.ndarray]], dtype: MapDType
) -> None:
    if dtype != "uint8":
        return
    name = type(kernel).__name__
    if not kernel.integer_valued:
        raise KernelError(
            f"{name} maps are fractional; uint8 would round them. Use dtype='float32'"
        )
    value = float(groups[0][0].values[0]) if groups and groups[0][0].values.size else 1.0
    most = value * (
        max(1, int(peaks.peaks_per_study.max(initial=1))) if kernel.combine == "sum" else 1
    )
    if value != round(value) or not 0 <= most <= 255:
        worst = str(peaks.study_ids[int(np.argmax(peaks.peaks_per_study))]) if len(peaks) else ""
        raise KernelError(
            f"{name}(value={value}) maps can reach {most:g} (study {worst!r}), "
            "which uint8 cannot hold exactly; use dtype='float32'"
        )


def _allocate(plan: _Plan, n_rows: int) -> torch.Tensor:
    """Zeroed flat storage for ``n_rows`` maps plus one leading dump slot."""
    import torch

    size = n_rows * plan.n_columns + 1
    if plan.device.type == "cpu":
        # calloc'd pages are zeroed lazily by the kernel: much cheaper than torch.zeros'
        # explicit memset for the hundreds of MB a dense map stack takes.
        np_dtype = np.uint8 if plan.dtype == torch.uint8 else np.float32
        return torch.from_numpy(np.zeros(size, dtype=np_dtype))
    return torch.zeros(size, dtype=plan.dtype, device=plan.device)


def _render(plan: _Plan, storage: torch.Tensor, start: int, stop: int, progress: object) -> None:
    """Stamp the peaks of study rows ``start:stop`` into ``storage`` (row ``start`` first).

    On CPU the rows are split into one contiguous part per torch thread (parts never share
    an output row, so no two threads write one voxel), and each part runs its small ops
    inline on its own Python thread. Torch's own OpenMP split of each small op costs a
    barrier per op, which stalls badly when other processes hold the cores.
    """
    import torch

    threads = torch.get_num_threads() if plan.device.type == "cpu" else 1
    parts = _split_rows(plan, start, stop, threads)
    if len(parts) <= 1:
        _render_rows(plan, storage, start, stop, start, progress)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(parts), thread_name_prefix="brrrr-kernels") as pool:
            futures = [
                pool.submit(_render_rows, plan, storage, a, b, start, progress) for a, b in parts
            ]
            for future in futures:
                future.result()
    if plan.scale is not None:
        storage.mul_(torch.tensor(plan.scale, dtype=storage.dtype, device=storage.device))


def _split_rows(plan: _Plan, start: int, stop: int, parts: int) -> list[tuple[int, int]]:
    """Split rows ``start:stop`` into up to ``parts`` contiguous runs of similar work."""
    work = np.zeros(stop - start, dtype=np.float64)
    for group in plan.groups:
        first, last = np.searchsorted(group.rows, [start, stop])
        work += float(group.offsets.numel()) * np.bincount(
            group.rows[first:last] - start, minlength=stop - start
        )
    total = float(work.sum())
    if parts <= 1 or total < 4 * _CHUNK_ENTRIES_CPU:
        return [(start, stop)]
    cuts = np.searchsorted(np.cumsum(work), total * np.arange(1, parts) / parts)
    bounds = [start, *sorted({start + int(c) + 1 for c in cuts if c + 1 < stop - start}), stop]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _render_rows(
    plan: _Plan, storage: torch.Tensor, start: int, stop: int, row0: int, progress: object
) -> None:
    """Stamp rows ``start:stop``; row ``r`` goes to storage row ``r - row0``."""
    import torch

    if plan.cpu is not None:
        _render_rows_cpu(plan, storage, start, stop, row0, progress)
        return
    # The torch path (CUDA; tests also run it on CPU tensors by dropping ``plan.cpu``).
    chunk = _CHUNK_ENTRIES_CUDA
    for group in plan.groups:
        first, last = np.searchsorted(group.rows, [start, stop])
        if first == last:
            continue
        n_offsets = int(group.offsets.numel())
        per_chunk = max(1, chunk // max(1, n_offsets))
        row_offset = torch.from_numpy((group.rows[first:last] - row0) * plan.n_columns).to(
            plan.device
        )
        values = group.values
        if values.numel() < per_chunk * n_offsets:
            values = values.repeat(-(-per_chunk * n_offsets // values.numel()))
        for a in range(first, last, per_chunk):
            b = min(last, a + per_chunk)
            positions = (group.base[a:b, None] + group.offsets[None, :]).view(-1)
            index = plan.lut.index_select(0, positions).view(b - a, n_offsets)
            index += row_offset[a - first : b - first, None]
            index.clamp_(min=0)
            flat = index.view(-1)
            if plan.combine == "sum":
                storage.index_add_(0, flat, values[: flat.numel()])
            elif group.constant is not None:
                storage.index_fill_(0, flat, group.constant)
            else:
                storage.scatter_reduce_(0, flat, values[: flat.numel()], "amax")
            if progress is not None:
                progress.update(b - a)  # type: ignore[attr-defined]


def _render_rows_cpu(
    plan: _Plan, storage: torch.Tensor, start: int, stop: int, row0: int, progress: object
) -> None:
    """:func:`_render_rows` on the CPU: one compiled loop over the rows' peaks."""
    from brrrr.preprocess.kernels import _stamp_cpu

    cpu = plan.cpu
    assert cpu is not None
    args, n_peaks = cpu.loop_args(start, stop, row0)
    if not n_peaks:
        return
    _stamp_cpu.stamp_dense(storage.numpy(), *args, cpu.values, cpu.modes, plan.n_columns)
    if progress is not None:
        progress.update(n_peaks)  # type: ignore[attr-defined]


def _shape_maps(plan: _Plan, storage: torch.Tensor, n_rows: int) -> torch.Tensor:
    maps = storage[1:].view(n_rows, plan.n_columns)
    return maps if plan.grid_shape is None else maps.view(n_rows, *plan.grid_shape)


def peaks_to_maps(
    peaks: PeakTable,
    *,
    kernel: Kernel,
    template: Template,
    layout: Layout = "masked",
    output: Literal["dense", "sparse"] = "dense",
    dtype: MapDType = "float32",
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    progress: bool = False,
) -> torch.Tensor | scipy.sparse.csr_matrix:
    """One map per study.

    Args:
        peaks: Studies and their peaks; rows of the output follow its rows.
        kernel: :class:`MKDA`, :class:`KDA`, :class:`ALE` or :class:`Gaussian`.
        template: The grid and mask.
        layout: ``"masked"``: (S, V) over the mask's voxels in C order (NiMARE's
            ``return_type="array"``); ``"grid"``: (S, I, J, K), zero outside the mask.
        output: ``"dense"``: a torch tensor on ``device``; ``"sparse"``: a
            ``scipy.sparse.csr_matrix`` (S, V) on the host (NiMARE's ``return_type="sparse"``
            for the masked layout; columns are C-order grid positions for ``"grid"``).
        dtype: ``"float32"``, or ``"uint8"`` for MKDA/KDA maps that fit exactly.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        batch_size: Studies per dense block when building sparse output.
        progress: Show a tqdm bar over peaks.

    Returns:
        (S, V) or (S, I, J, K) tensor, or an (S, V) CSR matrix.

    Raises:
        KernelError: Impossible settings (uint8 for a Gaussian, unknown sample sizes for ALE).

    Example:
        >>> maps = peaks_to_maps(peaks, kernel=MKDA(radius_mm=10), template=tpl)  # doctest: +SKIP
        >>> maps.shape  # doctest: +SKIP
        torch.Size([906, 228483])
    """
    plan = _plan(peaks, kernel, template, layout=layout, dtype=dtype, device=device)
    bar = _progress(plan, progress)
    try:
        if output == "dense":
            storage = _allocate(plan, peaks.n_studies)
            _render(plan, storage, 0, peaks.n_studies, bar)
            return _shape_maps(plan, storage, peaks.n_studies)
        if output != "sparse":
            raise KernelError(f"output must be 'dense' or 'sparse', got {output!r}")
        return _sparse(plan, peaks.n_studies, batch_size, bar)
    finally:
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]


def iter_maps(
    peaks: PeakTable,
    *,
    kernel: Kernel,
    template: Template,
    batch_size: int = 256,
    layout: Layout = "masked",
    dtype: MapDType = "float32",
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> Iterator[MapBatch]:
    """Maps in batches of ``batch_size`` studies, each batch a fresh tensor.

    Same arguments as :func:`peaks_to_maps`; use it when all maps at once would not fit.

    Yields:
        :class:`MapBatch` ``(start, stop, maps)``.
    """
    if batch_size < 1:
        raise KernelError(f"batch_size must be at least 1, got {batch_size}")
    plan = _plan(peaks, kernel, template, layout=layout, dtype=dtype, device=device)
    bar = _progress(plan, progress)
    try:
        for start in range(0, peaks.n_studies, batch_size):
            stop = min(peaks.n_studies, start + batch_size)
            storage = _allocate(plan, stop - start)
            _render(plan, storage, start, stop, bar)
            yield MapBatch(start, stop, _shape_maps(plan, storage, stop - start))
    finally:
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]


def _progress(plan: _Plan, enabled: bool) -> object:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=plan.n_peaks, unit="peak", desc="kernel maps")


def _sparse(plan: _Plan, n_rows: int, batch_size: int, bar: object) -> scipy.sparse.csr_matrix:
    """CSR maps, ``batch_size`` rows at a time through one reused dense block."""
    import scipy.sparse
    import torch

    if plan.cpu is not None:
        return _sparse_cpu(plan, n_rows, bar)
    rows_per_block = max(1, min(batch_size, n_rows))
    block = _allocate(plan, rows_per_block)
    indptr = [np.zeros(1, dtype=np.int64)]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for start in range(0, n_rows, rows_per_block):
        stop = min(n_rows, start + rows_per_block)
        if start:
            block.zero_()
        _render(plan, block, start, stop, bar)
        view = block[1 : 1 + (stop - start) * plan.n_columns]
        where = torch.nonzero(view).view(-1)  # ascending: row-major (row, column) order
        bounds = torch.searchsorted(
            where, torch.arange(stop - start + 1, device=block.device) * plan.n_columns
        )
        indptr.append(bounds[1:].cpu().numpy().astype(np.int64) + indptr[-1][-1])
        indices.append((where % plan.n_columns).cpu().numpy().astype(np.int32))
        data.append(view.index_select(0, where).cpu().numpy())
    np_dtype = np.uint8 if plan.dtype == torch.uint8 else np.float32
    return scipy.sparse.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0, np_dtype),
            np.concatenate(indices) if indices else np.zeros(0, np.int32),
            np.concatenate(indptr),
        ),
        shape=(n_rows, plan.n_columns),
    )


#: Stamped entries (an upper bound of the nonzeros) held at once while building CSR on the CPU.
_SPARSE_BLOCK_ENTRIES = 1 << 26


def _sparse_cpu(plan: _Plan, n_rows: int, bar: object) -> scipy.sparse.csr_matrix:
    """CSR maps built study by study in a scratch row (no dense block, no ``nonzero`` scan).

    Studies go in blocks of at most :data:`_SPARSE_BLOCK_ENTRIES` stamped entries; within a
    block, one row part per torch thread, each with its own scratch row, writing its studies'
    pairs back to back from the start of its share of the block's arrays; the parts are then
    closed up.
    """
    import scipy.sparse
    import torch

    from brrrr.preprocess.kernels import _stamp_cpu

    cpu = plan.cpu
    assert cpu is not None
    threads = max(1, torch.get_num_threads())
    scratches = [_stamp_cpu.scratch_row(plan.n_columns) for _ in range(threads)]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    columns: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for start, stop in _sparse_blocks(cpu.entries):
        parts = _split_rows(plan, start, stop, threads)
        slack = _stamp_cpu.SLACK
        part_starts = [
            int(cpu.entries[start:a].sum()) + i * slack for i, (a, _) in enumerate(parts)
        ]
        block_bound = int(cpu.entries[start:stop].sum()) + len(parts) * slack
        block_columns = np.empty(block_bound, dtype=np.int32)
        block_values = np.empty(block_bound, dtype=np.float32)
        nnz = np.zeros(stop - start, dtype=np.int64)

        def run(
            part: int, a: int, b: int, *, start: int, position: int, out: tuple[np.ndarray, ...]
        ) -> int:
            block_columns, block_values, nnz = out
            scratch, touched = scratches[part]
            args, n_peaks = cpu.loop_args(a, b, start)
            end = _stamp_cpu.stamp_sparse(
                *args,
                cpu.values.astype(np.float32, copy=False),
                cpu.modes,
                block_columns,
                block_values,
                position,
                nnz,
                scratch,
                touched,
            )
            if bar is not None:
                bar.update(n_peaks)  # type: ignore[attr-defined]
            return int(end)

        out = (block_columns, block_values, nnz)
        if len(parts) <= 1:
            ends = [run(0, start, stop, start=start, position=0, out=out)]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(parts), thread_name_prefix="brrrr-kernels") as pool:
                futures = [
                    pool.submit(run, i, a, b, start=start, position=part_starts[i], out=out)
                    for i, (a, b) in enumerate(parts)
                ]
                ends = [future.result() for future in futures]
        filled = ends[0] - part_starts[0]
        for begin, end in zip(part_starts[1:], ends[1:], strict=True):
            block_columns[filled : filled + end - begin] = block_columns[begin:end]
            block_values[filled : filled + end - begin] = block_values[begin:end]
            filled += end - begin
        np.cumsum(nnz, out=indptr[start + 1 : stop + 1])
        indptr[start + 1 : stop + 1] += indptr[start]
        # Shrink in place (realloc: no copy) rather than hold the unused bound.
        del out
        block_columns.resize(filled, refcheck=False)
        block_values.resize(filled, refcheck=False)
        columns.append(block_columns)
        values.append(block_values)
    data = values[0] if len(values) == 1 else np.concatenate(values)
    if plan.scale is not None:
        data *= np.float32(plan.scale)
    if plan.dtype == torch.uint8:
        data = data.astype(np.uint8)
    return scipy.sparse.csr_matrix(
        (data, columns[0] if len(columns) == 1 else np.concatenate(columns), indptr),
        shape=(n_rows, plan.n_columns),
    )


def _sparse_blocks(entries: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive study rows holding at most :data:`_SPARSE_BLOCK_ENTRIES` entries each."""
    bounds = [0]
    running = 0
    for row, n in enumerate(entries.tolist()):
        if running and running + n > _SPARSE_BLOCK_ENTRIES:
            bounds.append(row)
            running = 0
        running += n
    bounds.append(len(entries))
    return list(itertools.pairwise(bounds))
