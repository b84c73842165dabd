"""Resampling one output slab at a time, from just the input slices that slab reads.

:class:`SlabResampler` computes a :class:`~brrrr.core.resample.ResamplePlan`'s output one slab
at a time — the slab along the output axis that the input's last axis becomes — with the same
operations in the same order as the whole-volume call, so the values are bit for bit the same.
Two uses: preparing a NIfTI file while it inflates (its slices ``data[..., k]`` arrive in
order; :attr:`SlabResampler.needs` says when each slab can be made), and writing an output
larger than memory into a memory map slab by slab.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from brrrr.core.errors import GeometryError
from brrrr.core.resample._backend import NumpyBackend
from brrrr.core.resample._plan import AxisOp, ResamplePlan
from brrrr.core.resample._separable import apply_pass, apply_views, blend_slices, split_order

__all__ = ["SlabResampler"]


class SlabResampler:
    """A plan's output (numpy), one slab at a time.

    Args:
        data: ``(C, I, J, K)`` input; slices along ``K`` need only be filled before the slabs
            that read them are asked for (:attr:`needs`).
        plan: The resample, planned for ``(I, J, K)``.

    Attributes:
        axis: The output axis (0, 1, 2) the input's ``K`` axis becomes; slab ``o`` is the
            output at index ``o`` along it.
        dtype: The output's dtype.
        needs: ``needs[o]`` is the last input ``K`` index slab ``o`` reads.
        order: The slabs by increasing ``needs`` (the order they can be made in).

    Example:
        >>> import numpy as np
        >>> from brrrr.core.resample import SlabResampler, plan_resample
        >>> data = np.random.rand(1, 8, 8, 8).astype("f4")
        >>> plan = plan_resample(np.eye(4), in_shape=(8, 8, 8),
        ...                      target_affine=np.diag([2.0, 2, 2, 1]), target_shape=(4, 4, 4))
        >>> slabs = SlabResampler(data, plan)
        >>> out = np.empty((1, 4, 4, 4), slabs.dtype)
        >>> for o in slabs.order:
        ...     slabs.slab(o, out=out[..., o : o + 1])
        >>> bool((out == plan.apply(data)).all())
        True
    """

    def __init__(self, data: np.ndarray, plan: ResamplePlan) -> None:
        if data.ndim != 4 or tuple(data.shape[1:]) != plan.in_shape:
            raise GeometryError(
                f"expected a (C, *{plan.in_shape}) array, got shape {tuple(data.shape)}"
            )
        self.dtype = plan.compute_dtype(data.dtype)
        backend = NumpyBackend(self.dtype)
        self._backend, self._fill = backend, plan.fill
        ops = [p.astype(self.dtype) for p in plan.ops]
        views, passes = split_order(plan, backend)
        self.axis = plan.src.index(2)
        src = plan.src
        x = np.transpose(data, (0, src[0] + 1, src[1] + 1, src[2] + 1))
        self._x = apply_views(backend, x, ops, [a for a in views if a != self.axis])
        p = ops[self.axis]
        if self.axis in views:
            # Taking input slice start + step · o is that view's slab o; every pass is in-plane.
            self._before = [(a, ops[a]) for a in passes]
            self._after: list[tuple[int, AxisOp]] = []
        else:
            at = passes.index(self.axis)
            self._before = [(a, ops[a]) for a in passes[:at]]
            self._after = [(a, ops[a]) for a in passes[at + 1 :]]
        p = p.as_take()  # as apply_pass: a slice along the slab axis is a take
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
                y, _ = apply_pass(self._backend, y, p, a, self._fill)
            self._planes[k] = y
        return self._planes[k]

    def _release(self, o: int) -> None:
        for k in set(self._reads[o]):
            self._uses[k] -= 1
            if not self._uses[k]:
                self._planes.pop(k, None)

    def slab(self, o: int, *, out: np.ndarray) -> None:
        """Write output slab ``o`` into ``out``: ``(C, D, H, W)`` with length 1 along
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
            y = np.empty((low.shape[0], 1, *low.shape[2:]), dtype=self.dtype)
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
            y, _ = apply_pass(self._backend, stack, local, self.axis, self._fill)
        for a, q in self._after:
            y, _ = apply_pass(self._backend, y, q, a, self._fill)
        self._release(o)
        out[...] = y
        if p.outside is not None and p.outside[o]:
            out[...] = self._fill
