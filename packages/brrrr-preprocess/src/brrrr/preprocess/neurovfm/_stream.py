"""The streaming path of :func:`brrrr.preprocess.neurovfm.prepare.load_and_prepare`, slab by slab.

A NIfTI file's voxels inflate in storage order, so the input's slices ``data[:, :, k]`` arrive
one after the other. :func:`~brrrr.preprocess.neurovfm.prepare.load_and_prepare` opens the file with
:func:`brrrr.core.io.nifti.stream_nifti`, whose background thread inflates it, and
:func:`prepare_stream` prepares each output slab as soon as the input slices it reads are in.
:class:`SlabResampler` computes :func:`~brrrr.preprocess.neurovfm._ops.resample_permuted`'s
output one slab at a time — the slab along the output axis that the input's last axis
becomes — from just the input slices that slab needs, with the same operations in the same
order, so the values are bit for bit those of the whole-volume call. :class:`SortedRuns` keeps
sorted copies of the slabs so that exact percentiles of the whole output cost almost nothing
once the last slab is in (:func:`merged_order_statistics`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from brrrr.core.io.nifti import NiftiStream
from brrrr.preprocess.neurovfm._ops import (
    AxisOp,
    NumpyOps,
    apply_pass,
    apply_views,
    blend_slices,
    percentile_ranks,
    plan_resample,
)
from brrrr.preprocess.neurovfm._steps import plan_grid, scale_mri, window_ct
from brrrr.preprocess.neurovfm.settings import (
    BACKGROUND,
    CT_WINDOWS,
    Mode,
    Plane,
    PrepareSettings,
    View,
)

__all__ = [
    "SlabResampler",
    "SortedRuns",
    "merged_order_statistics",
    "prepare_stream",
]


def prepare_stream(
    stream: NiftiStream, *, mode: Mode, slice_axis: int | Plane | None, settings: PrepareSettings
) -> tuple[Any, Any, View]:
    """:func:`~brrrr.preprocess.neurovfm.prepare.prepare_array` of a 3-D image whose slices are still
    arriving (numpy).

    Args:
        stream: An open stream of an ``(I, J, K)`` image; it is waited on slice by slice, then
            to its end, where its checksum is verified.
        mode: As :func:`~brrrr.preprocess.neurovfm.prepare.prepare_for_inference`.
        slice_axis: As :func:`~brrrr.preprocess.neurovfm.prepare.prepare_for_inference`.
        settings: As :func:`~brrrr.preprocess.neurovfm.prepare.prepare_for_inference`.

    Returns:
        ``(img_arrs, mask, view)``, identical to ``prepare_array(stream.result().data, ...)``.
    """
    ops = NumpyOps()
    data, source = stream.data, stream.source
    fill = BACKGROUND[mode]
    view, vox2vox, fit_offset, grid_shape = plan_grid(
        tuple(int(n) for n in data.shape), stream.affine, slice_axis, settings, source
    )
    slabs = SlabResampler(data[None], vox2vox, grid_shape, fill)
    channels = 1 if mode == "mri" else len(CT_WINDOWS)
    if grid_shape == view.shape:
        img = np.empty((1, channels, *grid_shape), dtype=np.float32)
        mask = np.empty((1, *grid_shape), dtype=bool)
        img_inside, mask_inside = img, mask
    else:
        img = np.zeros((1, channels, *view.shape), dtype=np.float32)
        mask = np.zeros((1, *view.shape), dtype=bool)
        inside = tuple(slice(o, o + n) for o, n in zip(fit_offset, grid_shape, strict=True))
        img_inside, mask_inside = (
            img[(slice(None), slice(None), *inside)],
            mask[(slice(None), *inside)],
        )
    # MRI: the resampled slabs go into the output, which is scaled in place at the end. CT:
    # each slab is windowed as soon as it is made.
    x = img_inside[:, 0]
    scratch = np.empty(tuple(1 if a == slabs.axis + 1 else n for a, n in enumerate(x.shape)), "f4")
    runs = SortedRuns(x[0].size if mode == "mri" else 0)
    per_slice = int(data.shape[0]) * int(data.shape[1])
    lead = (slice(None),) * (slabs.axis + 1)
    for o in slabs.order:
        stream.wait((int(slabs.needs[o]) + 1) * per_slice)
        at = (*lead, slice(o, o + 1))
        slab = x[at] if mode == "mri" else scratch
        slabs.slab(o, out=slab)
        if data.dtype.kind == "f":
            ops.nan_to_num(slab, fill)
        if mode == "mri":
            runs.add(slab)
        else:
            window_ct(ops, slab, settings, img_inside[(slice(None), *at)], mask_inside[at])
    if mode == "mri":
        low, high = settings.mri_percentiles
        stats = runs.percentiles((low, high, settings.foreground_percentile))
        scale_mri(ops, x, stats[None], x, mask_inside)
    stream.wait()  # the end of the stream: its checksum is verified
    return img[0], mask[0], view


class SlabResampler:
    """:func:`~brrrr.preprocess.neurovfm._ops.resample_permuted` (numpy), one slab at a time.

    Args:
        data: ``(1, I, J, K)`` input; slices along ``K`` need only be filled before the slabs
            that read them are asked for (:attr:`needs`).
        vox2vox: As :func:`resample_permuted`.
        shape: Output ``(D, H, W)``.
        fill: As :func:`resample_permuted`.

    Attributes:
        axis: The output axis (0, 1, 2 for D, H, W) the input's ``K`` axis becomes; slab ``o``
            is the output at index ``o`` along it.
        needs: ``needs[o]`` is the last input ``K`` index slab ``o`` reads.
        order: The slabs by increasing ``needs`` (the order they can be made in).
    """

    def __init__(
        self, data: np.ndarray, vox2vox: np.ndarray, shape: tuple[int, int, int], fill: float
    ) -> None:
        ops = NumpyOps()
        plan = plan_resample(ops, vox2vox, data.shape[1:], shape)
        self._ops, self._fill = ops, fill
        self.axis = plan.src.index(2)
        src = plan.src
        x = np.transpose(data, (0, src[0] + 1, src[1] + 1, src[2] + 1))
        self._x = apply_views(ops, x, plan, [a for a in plan.views if a != self.axis])
        p = plan.ops[self.axis]
        if self.axis in plan.views:
            # Taking input slice start + step · o is that view's slab o; every pass is in-plane.
            self._before = [(a, plan.ops[a]) for a in plan.passes]
            self._after: list[tuple[int, AxisOp]] = []
            p = AxisOp("take", p.n_in, p.n_out, lo=p.start + p.step * np.arange(p.n_out))
        else:
            at = plan.passes.index(self.axis)
            self._before = [(a, plan.ops[a]) for a in plan.passes[:at]]
            self._after = [(a, plan.ops[a]) for a in plan.passes[at + 1 :]]
            if p.kind == "slice":  # as apply_pass: a reversed slice is a take
                p = AxisOp("take", p.n_in, p.n_out, lo=p.start + p.step * np.arange(p.n_out))
        self._op = p
        assert p.lo is not None
        reads: list[tuple[int, ...]] = [
            (int(p.lo[o]),) if p.hi is None else (int(p.lo[o]), int(p.hi[o]))
            for o in range(p.n_out)
        ]
        self._reads = reads
        self.needs = np.asarray([max(r) for r in reads], dtype=np.int64)
        self.order = [int(o) for o in np.argsort(self.needs, kind="stable")]
        self._uses = Counter(k for r in reads for k in set(r))
        self._planes: dict[int, np.ndarray] = {}

    def _plane(self, k: int) -> np.ndarray:
        """Input slice ``k`` (the output axis kept, length 1) after the in-plane passes that
        run before the pass along :attr:`axis`."""
        if k not in self._planes:
            index: list[slice] = [slice(None)] * 4
            index[self.axis + 1] = slice(k, k + 1)
            y = self._x[tuple(index)]
            for a, p in self._before:
                y, _ = apply_pass(self._ops, y, p, a, self._fill)
            self._planes[k] = y
        return self._planes[k]

    def _release(self, o: int) -> None:
        for k in set(self._reads[o]):
            self._uses[k] -= 1
            if not self._uses[k]:
                self._planes.pop(k, None)

    def slab(self, o: int, *, out: np.ndarray) -> None:
        """Write output slab ``o`` into ``out``: float32 ``(1, D, H, W)`` with length 1 along
        :attr:`axis`; the values are the whole-volume result's slab ``o``."""
        p, reads = self._op, self._reads[o]
        if p.kind == "take":
            y = self._plane(reads[0])
        elif self.axis == 0:  # as the whole-volume pass along the first axis, slice o
            low, high = self._plane(reads[0]), self._plane(reads[1])
            if not self._after:
                blend_slices(low[:, 0], high[:, 0], p, o, self._fill, out=out[:, 0])
                self._release(o)
                return
            y = np.empty((1, 1, *low.shape[2:]), dtype=np.float32)
            blend_slices(low[:, 0], high[:, 0], p, o, self._fill, out=y[:, 0])
        else:  # the generic pass, on the one or two input slices it reads
            assert p.w_lo is not None
            assert p.w_hi is not None
            distinct = sorted(set(reads))
            planes = [self._plane(k) for k in distinct]
            stack = planes[0] if len(planes) == 1 else np.concatenate(planes, axis=self.axis + 1)
            local = AxisOp(
                "linear",
                len(distinct),
                1,
                lo=np.asarray([distinct.index(reads[0])]),
                hi=np.asarray([distinct.index(reads[1])]),
                w_lo=p.w_lo[o : o + 1],
                w_hi=p.w_hi[o : o + 1],
                w_fill=None if p.w_fill is None else p.w_fill[o : o + 1],
            )
            y, _ = apply_pass(self._ops, stack, local, self.axis, self._fill)
        for a, q in self._after:
            y, _ = apply_pass(self._ops, y, q, a, self._fill)
        self._release(o)
        out[...] = y


class SortedRuns:
    """Sorted copies of the values added, in runs of at least ``run`` values.

    The copies share one buffer: freeing dozens of separate large arrays costs about a
    millisecond, at the very end of :func:`~brrrr.preprocess.neurovfm.prepare.load_and_prepare`.

    Args:
        capacity: How many values will be added, at most.
        run: Values gathered before a run is sorted (about one slab; fewer, longer runs make
            :meth:`percentiles` cheaper).
    """

    def __init__(self, capacity: int, *, run: int = 1 << 16) -> None:
        self._values = np.empty(capacity, dtype=np.float32)
        self._run = run
        self._added = 0
        self._sorted = 0
        self.runs: list[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        """Keep a sorted copy of ``values`` (float32, no NaN, any shape and strides)."""
        end = self._added + values.size
        np.copyto(self._values[self._added : end].reshape(values.shape), values)
        self._added = end
        if self._added - self._sorted >= self._run:
            self._flush()

    def _flush(self) -> None:
        if self._added > self._sorted:
            run = self._values[self._sorted : self._added]
            run.sort()
            self.runs.append(run)
            self._sorted = self._added

    def percentiles(self, qs: Sequence[float]) -> np.ndarray:
        """(len(qs),) float64 percentiles of all values added, numpy's linear rule, exactly."""
        self._flush()
        n = sum(run.size for run in self.runs)
        lows, highs, fracs = percentile_ranks(n, qs)
        stats = merged_order_statistics(self.runs, lows + highs)
        below = np.asarray([stats[r] for r in lows])
        above = np.asarray([stats[r] for r in highs])
        return below + (above - below) * np.asarray(fracs)


def merged_order_statistics(
    runs: Sequence[np.ndarray], ranks: Sequence[int], *, stride: int = 64
) -> dict[int, float]:
    """Exact order statistics (0-based ranks) of the union of sorted runs, none with NaN.

    Every ``stride``-th value of each run, merged and sorted, brackets each rank: with ``R``
    runs, fewer than ``stride · i`` values lie below the merged sample's ``i``-th value, and at
    least ``stride · (i + 1 - R) + R`` lie at or below it. Binary searches in each run count
    exactly the values below and at the bracket's ends, and only the (about
    ``2 · R · stride``) values strictly inside it are partitioned.
    """
    runs = [run for run in runs if run.size]
    sample = np.sort(np.concatenate([run[::stride] for run in runs]))
    m, count = sample.size, len(runs)
    largest = max(run[-1] for run in runs)  # the runs' ends are not always sampled
    brackets = {}
    for rank in sorted(set(ranks)):
        top = -(-rank // stride) + count - 1
        brackets[rank] = (sample[rank // stride], sample[top] if top < m else largest)
    ends = np.unique(np.asarray([v for pair in brackets.values() for v in pair]))
    before = np.zeros(ends.size, dtype=np.int64)  # values < each end
    through = np.zeros(ends.size, dtype=np.int64)  # values ≤ each end
    left, right = [], []
    for run in runs:
        lo = np.searchsorted(run, ends, side="left")
        hi = np.searchsorted(run, ends, side="right")
        before += lo
        through += hi
        left.append(lo)
        right.append(hi)
    result: dict[int, float] = {}
    for rank, (v_lo, v_hi) in brackets.items():
        i, j = int(np.searchsorted(ends, v_lo)), int(np.searchsorted(ends, v_hi))
        if rank < through[i]:
            result[rank] = float(v_lo)
        elif rank >= before[j]:
            result[rank] = float(v_hi)
        else:
            inside = np.concatenate(
                [run[r[i] : s[j]] for run, r, s in zip(runs, right, left, strict=True)]
            )
            k = rank - int(through[i])
            result[rank] = float(np.partition(inside, k)[k])
    return result
