"""The few array operations the separable passes need, with the same names for numpy and torch."""

from __future__ import annotations

from typing import Any

import numpy as np

from brrrr.core.errors import MissingDependencyError

__all__ = [
    "Backend",
    "NumpyBackend",
    "TorchBackend",
    "backend_for",
    "regular_steps",
    "torch_module",
]


def regular_steps(index: np.ndarray) -> tuple[int, int] | None:
    """``(start, step)`` when ``index`` is ``start + step · arange`` with ``step ≠ 0``."""
    if index.size == 0:
        return None
    step = int(index[1] - index[0]) if index.size > 1 else 1
    if step == 0 or not np.array_equal(index, index[0] + step * np.arange(index.size)):
        return None
    return int(index[0]), step


def torch_module() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - exercised only without torch
        raise MissingDependencyError(
            'this call needs torch: pip install "brrrr-core[torch]"'
        ) from None
    return torch


class Backend:
    """Array operations of the passes, computing in ``dtype`` (numpy's name for it)."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)

    def can_view(self, step: int) -> bool:
        raise NotImplementedError

    def permute(self, x: Any, axes: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def slice(self, x: Any, axis: int, start: int, stop: int | None, step: int) -> Any:
        index: list[slice] = [slice(None)] * x.ndim
        index[axis] = slice(start, stop, step)
        return x[tuple(index)]

    def gather(self, x: Any, index: np.ndarray, axis: int) -> tuple[Any, bool]:
        """``x`` at ``index`` along ``axis``, and whether that is a view of ``x``."""
        regular = regular_steps(index)
        if regular is not None and self.can_view(regular[1]):
            start, step = regular
            stop = start + step * index.size
            return self.slice(x, axis, start, None if stop < 0 else stop, step), True
        return self.take(x, index, axis), False

    def take(self, x: Any, index: np.ndarray, axis: int) -> Any:
        raise NotImplementedError

    def cast(self, x: Any, *, copy: bool) -> Any:
        """``x`` in the compute dtype (a copy when ``copy``, else only if the dtype changes)."""
        raise NotImplementedError

    def contiguous(self, x: Any, *, dtype: np.dtype, copy: bool) -> Any:
        raise NotImplementedError

    def along(self, weights: np.ndarray, axis: int, like: Any) -> Any:
        """``weights`` (n,) shaped to broadcast along ``axis`` of ``like`` (a scalar if constant)."""
        if weights.size and np.all(weights == weights[0]):
            return float(weights[0])
        shape = [1] * like.ndim
        shape[axis] = -1
        return self.constant(weights, like).reshape(shape)

    def constant(self, values: np.ndarray, like: Any) -> Any:
        raise NotImplementedError

    def mul(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def imul(self, a: Any, b: Any) -> None:
        a *= b

    def iadd(self, a: Any, b: Any) -> None:
        a += b

    def fill_along(self, x: Any, outside: np.ndarray, axis: int, fill: float) -> None:
        """Set ``x`` to ``fill`` at the indices ``outside`` (a bool mask) along ``axis``."""
        index: list[Any] = [slice(None)] * x.ndim
        index[axis] = self.constant_index(np.flatnonzero(outside), x)
        x[tuple(index)] = fill

    def constant_index(self, values: np.ndarray, like: Any) -> Any:
        return values


class NumpyBackend(Backend):
    """The passes on numpy arrays (single-threaded)."""

    def can_view(self, step: int) -> bool:
        return True

    def permute(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        return np.transpose(x, axes)

    def take(self, x: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
        return np.take(x, index, axis=axis)

    def cast(self, x: np.ndarray, *, copy: bool) -> np.ndarray:
        return np.array(x, dtype=self.dtype) if copy else x.astype(self.dtype, copy=False)

    def contiguous(self, x: np.ndarray, *, dtype: np.dtype, copy: bool) -> np.ndarray:
        if copy:
            return np.array(x, dtype=dtype, order="C")
        return np.ascontiguousarray(x, dtype=dtype)

    def constant(self, values: np.ndarray, like: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=self.dtype)

    def mul(self, a: Any, b: Any) -> Any:
        # An explicit dtype: integer voxels times a Python float would otherwise be float64.
        return np.multiply(a, b, dtype=self.dtype)


class TorchBackend(Backend):
    """The passes on torch tensors, on their device (CPU or CUDA)."""

    def __init__(self, dtype: np.dtype) -> None:
        super().__init__(dtype)
        self.torch = torch_module()
        self.torch_dtype = getattr(self.torch, self.dtype.name)

    def can_view(self, step: int) -> bool:
        return step > 0

    def permute(self, x: Any, axes: tuple[int, ...]) -> Any:
        return x.permute(*axes)

    def take(self, x: Any, index: np.ndarray, axis: int) -> Any:
        return self.torch.index_select(x, axis, self.torch.from_numpy(index).to(x.device))

    def cast(self, x: Any, *, copy: bool) -> Any:
        return x.to(self.torch_dtype, copy=copy)

    def contiguous(self, x: Any, *, dtype: np.dtype, copy: bool) -> Any:
        out = x.to(
            getattr(self.torch, np.dtype(dtype).name), memory_format=self.torch.contiguous_format
        )
        return out.clone() if copy and out.data_ptr() == x.data_ptr() else out

    def constant(self, values: np.ndarray, like: Any) -> Any:
        return self.torch.from_numpy(np.ascontiguousarray(values)).to(like.device, self.torch_dtype)

    def mul(self, a: Any, b: Any) -> Any:
        return a.to(self.torch_dtype) * b

    def imul(self, a: Any, b: Any) -> None:
        a.mul_(b)

    def iadd(self, a: Any, b: Any) -> None:
        a.add_(b)

    def constant_index(self, values: np.ndarray, like: Any) -> Any:
        return self.torch.from_numpy(values).to(like.device)


def backend_for(array: Any, dtype: np.dtype) -> Backend:
    """The backend of ``array`` (a numpy array or a torch tensor)."""
    if isinstance(array, np.ndarray):
        return NumpyBackend(dtype)
    return TorchBackend(dtype)
