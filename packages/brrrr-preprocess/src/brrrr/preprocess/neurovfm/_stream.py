"""The streaming path of :func:`brrrr.preprocess.neurovfm.prepare.load_and_prepare`, slab by slab.

A NIfTI file's voxels inflate in storage order, so the input's slices ``data[:, :, k]`` arrive
one after the other. :func:`~brrrr.preprocess.neurovfm.prepare.load_and_prepare` opens the file with
:func:`brrrr.core.io.nifti.stream_nifti`, whose background thread inflates it, and
:func:`prepare_stream` prepares each output slab as soon as the input slices it reads are in.
:class:`brrrr.core.resample.SlabResampler` computes the resample's output one slab at a time —
the slab along the output axis that the input's last axis becomes — from just the input slices
that slab needs, with the same operations in the same order, so the values are bit for bit
those of the whole-volume call. :class:`SortedRuns` keeps
sorted copies of the slabs so that exact percentiles of the whole output cost almost nothing
once the last slab is in (:func:`merged_order_statistics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from brrrr.core.io.nifti import NiftiStream
from brrrr.core.resample import SlabResampler
from brrrr.preprocess.neurovfm._ops import NumpyOps, percentile_ranks
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
    view, plan, fit_offset, grid_shape = plan_grid(
        tuple(int(n) for n in data.shape), stream.affine, slice_axis, settings, source, fill=fill
    )
    slabs = SlabResampler(data[None], plan)
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
