"""The intensity work behind :mod:`brrrr.preprocess.neurovfm.prepare`, written once for numpy and
torch (resampling is :mod:`brrrr.core.resample`'s).

* :func:`order_statistics`: exact order statistics of a float32 vector by a radix select.
* ``NumpyOps`` / ``TorchOps``: the few array operations the pipeline needs, with the same names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "NumpyOps",
    "Ops",
    "TorchOps",
    "order_statistics",
    "percentile_ranks",
    "sorted_percentiles",
]


def percentile_ranks(n: int, qs: Sequence[float]) -> tuple[list[int], list[int], list[float]]:
    """numpy's linear percentile rule: ranks ``floor(q (n - 1))``, the next one, and the fraction."""
    lows, highs, fracs = [], [], []
    for q in qs:
        virtual = q / 100.0 * (n - 1)
        low = min(math.floor(virtual), n - 1)
        lows.append(low)
        highs.append(min(low + 1, n - 1))
        fracs.append(virtual - low)
    return lows, highs, fracs


# Systematic sample size used to bracket each wanted rank before counting exactly.
_SAMPLE = 1 << 16


def _bucket_keys(flat: np.ndarray) -> np.ndarray:
    """(n,) contiguous uint16: the high 16 bits of each float32, remapped to sort like the values.

    Sign, exponent and 7 mantissa bits: each key is a bucket of values, and the buckets' order
    is the values' order (negative floats sort reversed by their bits, so they are inverted).
    """
    halves = flat.view(np.uint16)
    keys = np.ascontiguousarray(halves[1::2] if np.little_endian else halves[0::2])
    if keys.size and keys.max() >= 0x8000:  # negative values (or -0.0)
        keys = np.where(keys >= 0x8000, ~keys, keys | np.uint16(0x8000))
    return keys


def order_statistics(flat: np.ndarray, ranks: Sequence[int]) -> dict[int, float]:
    """Exact order statistics (0-based ranks) of a contiguous float32 vector without NaN.

    Each value gets a 16-bit bucket key that sorts like the values (:func:`_bucket_keys`). A
    sorted systematic sample of the keys brackets each wanted rank by a few buckets; one
    comparison pass counts the values below the bracket and gathers those inside it, which are
    then partitioned. If the sample's bracket misses a rank (it cannot mislead, only cost
    time), an exact histogram of all keys finds its bucket. On 2.9 M voxels and three
    percentiles this takes about 5 ms, where ``numpy.percentile`` takes 15 ms.
    """
    keys = _bucket_keys(flat)
    n = keys.size
    sample = np.sort(keys[:: max(1, n // _SAMPLE)])
    m = sample.size
    result: dict[int, float] = {}
    remaining = sorted(set(ranks))
    misses: list[int] = []
    while remaining:
        rank = remaining[0]
        q = rank / max(n - 1, 1)
        margin = 4.0 * math.sqrt(q * (1.0 - q) / m) + 2.0 / m
        low_key = sample[max(0, math.floor((q - margin) * (m - 1)))]
        high_key = sample[min(m - 1, math.ceil((q + margin) * (m - 1)))]
        below = int(np.count_nonzero(keys < low_key))
        inside = np.flatnonzero((keys >= low_key) & (keys <= high_key))
        covered = [r for r in remaining if below <= r < below + inside.size]
        if rank not in covered:
            misses.append(rank)
        remaining = [r for r in remaining if r != rank and r not in covered]
        if covered:
            result.update(_select(flat[inside], covered, below))
    if misses:
        counts = np.cumsum(np.bincount(keys, minlength=1 << 16))
        for rank in misses:
            key = int(np.searchsorted(counts, rank, side="right"))
            below = int(counts[key - 1]) if key else 0
            result.update(_select(flat[np.flatnonzero(keys == key)], [rank], below))
    return result


def _select(members: np.ndarray, ranks: list[int], below: int) -> dict[int, float]:
    """Ranks (global, ``below`` values precede ``members``) found by one partition."""
    local = [rank - below for rank in ranks]
    parted = np.partition(members, local)
    return {rank: float(parted[k]) for rank, k in zip(ranks, local, strict=True)}


class Ops:
    """Array operations of the pipeline; numpy and torch implement the same names."""

    def is_float(self, array: Any) -> bool:
        raise NotImplementedError

    def per_item(self, values: np.ndarray, like: Any) -> Any:
        """(B,) values shaped ``(B, 1, 1, …)`` to broadcast over the items of ``like``."""
        return self.constant(np.asarray(values), like).reshape((-1,) + (1,) * (like.ndim - 1))

    def constant(self, values: np.ndarray, like: Any) -> Any:
        raise NotImplementedError

    def isub(self, a: Any, b: Any) -> None:
        a -= b

    def idiv(self, a: Any, b: Any) -> None:
        a /= b

    def nan_to_num(self, x: Any, value: float) -> Any:
        raise NotImplementedError

    def greater_into(self, x: Any, threshold: Any, out: Any) -> None:
        """``out[...] = x > threshold`` (``out`` may be a view of a larger buffer)."""
        raise NotImplementedError

    def clip_into(self, x: Any, low: Any, high: Any, out: Any) -> None:
        """``out[...] = clip(x, low, high)``; ``out`` may be ``x`` or a view of a larger buffer."""
        raise NotImplementedError

    def empty(self, shape: tuple[int, ...], *, like: Any, dtype: str | None = None) -> Any:
        raise NotImplementedError

    def zeros(self, shape: tuple[int, ...], *, like: Any, dtype: str | None = None) -> Any:
        raise NotImplementedError

    def percentiles(self, x: Any, qs: Sequence[float]) -> np.ndarray:
        """(B, len(qs)) float64 percentiles of each item, numpy's linear rule, exactly."""
        raise NotImplementedError


class NumpyOps(Ops):
    """The pipeline on numpy arrays (single-threaded, no torch)."""

    def is_float(self, array: Any) -> bool:
        return bool(array.dtype.kind == "f")

    def constant(self, values: np.ndarray, like: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=like.dtype if like.dtype.kind == "f" else np.float32)

    def nan_to_num(self, x: np.ndarray, value: float) -> np.ndarray:
        return np.nan_to_num(x, copy=False, nan=value, posinf=value, neginf=value)

    def greater_into(self, x: np.ndarray, threshold: Any, out: np.ndarray) -> None:
        np.greater(x, threshold, out=out)

    def clip_into(self, x: np.ndarray, low: Any, high: Any, out: np.ndarray) -> None:
        # float32 bounds: a Python float bound would make numpy compute in float64.
        np.clip(x, np.asarray(low, np.float32), np.asarray(high, np.float32), out=out)

    def empty(
        self, shape: tuple[int, ...], *, like: np.ndarray, dtype: str | None = None
    ) -> np.ndarray:
        return np.empty(shape, dtype=dtype or like.dtype)

    def zeros(
        self, shape: tuple[int, ...], *, like: np.ndarray, dtype: str | None = None
    ) -> np.ndarray:
        return np.zeros(shape, dtype=dtype or like.dtype)

    def percentiles(self, x: np.ndarray, qs: Sequence[float]) -> np.ndarray:
        flat = x.reshape(x.shape[0], -1)
        lows, highs, fracs = percentile_ranks(flat.shape[1], qs)
        out = np.empty((flat.shape[0], len(qs)))
        for b in range(flat.shape[0]):
            stats = order_statistics(np.ascontiguousarray(flat[b], dtype=np.float32), lows + highs)
            below = np.asarray([stats[r] for r in lows])
            above = np.asarray([stats[r] for r in highs])
            out[b] = below + (above - below) * np.asarray(fracs)
        return out


class TorchOps(Ops):
    """The pipeline on torch tensors, on their device (CPU or CUDA)."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)

    def asarray(self, array: Any) -> Any:
        """``array`` (numpy with positive strides, or a tensor) as a tensor on this device."""
        tensor = self.torch.from_numpy(array) if isinstance(array, np.ndarray) else array
        return tensor.to(self.device)

    def is_float(self, array: Any) -> bool:
        return bool(array.is_floating_point())

    def constant(self, values: np.ndarray, like: Any) -> Any:
        dtype = like.dtype if like.is_floating_point() else self.torch.float32
        return self.torch.from_numpy(np.ascontiguousarray(values)).to(like.device, dtype)

    def isub(self, a: Any, b: Any) -> None:
        a.sub_(b)

    def idiv(self, a: Any, b: Any) -> None:
        a.div_(b)

    def nan_to_num(self, x: Any, value: float) -> Any:
        return self.torch.nan_to_num_(x, nan=value, posinf=value, neginf=value)

    def greater_into(self, x: Any, threshold: Any, out: Any) -> None:
        out.copy_(x > threshold)

    def clip_into(self, x: Any, low: Any, high: Any, out: Any) -> None:
        if out.data_ptr() == x.data_ptr() and out.shape == x.shape:
            self.torch.clamp(x, low, high, out=x)
        else:
            out.copy_(self.torch.clamp(x, low, high))

    def _dtype(self, like: Any, dtype: str | None) -> Any:
        return like.dtype if dtype is None else getattr(self.torch, dtype)

    def empty(self, shape: tuple[int, ...], *, like: Any, dtype: str | None = None) -> Any:
        return self.torch.empty(shape, dtype=self._dtype(like, dtype), device=like.device)

    def zeros(self, shape: tuple[int, ...], *, like: Any, dtype: str | None = None) -> Any:
        return self.torch.zeros(shape, dtype=self._dtype(like, dtype), device=like.device)

    def percentiles(self, x: Any, qs: Sequence[float]) -> np.ndarray:
        flat = x.reshape(x.shape[0], -1)
        if flat.device.type == "cpu":
            return NumpyOps().percentiles(flat.numpy(), qs)
        return sorted_percentiles(flat, qs)


def sorted_percentiles(flat: Any, qs: Sequence[float]) -> np.ndarray:
    """(B, len(qs)) float64 percentiles of the rows of a ``(B, N)`` tensor, by sorting them.

    The GPU path: a segmented sort of the whole batch is cheaper there than any selection.
    """
    import torch

    lows, highs, fracs = percentile_ranks(flat.shape[1], qs)
    ordered = torch.sort(flat, dim=1).values
    below = ordered[:, lows].to(torch.float64).cpu().numpy()
    above = ordered[:, highs].to(torch.float64).cpu().numpy()
    return below + (above - below) * np.asarray(fracs)
