"""Voxel-to-world geometry as pure numpy functions (no I/O).

Conventions, used everywhere in ``brrrr``:

* An ``affine`` is a ``(4, 4)`` float64 matrix mapping voxel indices ``(i, j, k, 1)``
  to world coordinates in millimetres, RAS+ (x grows to the subject's Right,
  y to Anterior, z to Superior), as in NIfTI and nibabel.
* Index ``(i, j, k)`` is the *centre* of a voxel.
* Arrays hold the spatial axes last: ``(I, J, K)`` or ``(C, I, J, K)``.
* An orientation code names where each array axis points, in nibabel's
  convention: ``"RAS"`` means ``i`` grows towards Right, ``j`` towards Anterior,
  ``k`` towards Superior; ``"LPS"`` is DICOM/ITK's patient order. Any of the 48
  codes with one letter from each of ``LR``, ``AP``, ``SI`` is valid.

Reorientation uses flips and axis permutations only, so it is exact (no
interpolation) and returns numpy views.

Example:
    >>> import numpy as np
    >>> from brrrr.core import geometry
    >>> affine = np.diag([2.0, 2.0, 3.0, 1.0])
    >>> geometry.axcodes(affine)
    'RAS'
    >>> plan = geometry.reorientation(affine, "LPS", shape=(4, 5, 6))
    >>> data, new_affine = plan.apply(np.zeros((4, 5, 6))), plan.transform_affine(affine)
    >>> geometry.axcodes(new_affine), data.shape
    ('LPS', (4, 5, 6))
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from nibabel.orientations import io_orientation

from brrrr.core.errors import GeometryError

__all__ = [
    "ALL_AXCODES",
    "Reorientation",
    "axcodes",
    "check_affine",
    "direction_cosines",
    "origin",
    "reorient",
    "reorientation",
    "spacing",
]

_PAIRS = (("L", "R"), ("P", "A"), ("I", "S"))
_WORLD_AXIS = {letter: axis for axis, pair in enumerate(_PAIRS) for letter in pair}
_POSITIVE = {"R", "A", "S"}

#: Every valid orientation code: 3! axis orders × 2³ directions = 48.
ALL_AXCODES: tuple[str, ...] = tuple(
    "".join(pair[flip] for pair, flip in zip(order, flips, strict=True))
    for order in itertools.permutations(_PAIRS)
    for flips in itertools.product((0, 1), repeat=3)
)


def check_affine(affine: object, *, path: object = None) -> np.ndarray:
    """Validate a voxel→world affine and return it as a ``(4, 4)`` float64 array.

    Args:
        affine: Anything convertible to a ``(4, 4)`` array.
        path: File the affine came from, named in the error message.

    Returns:
        (4, 4) float64 array (a copy).

    Raises:
        GeometryError: Wrong shape, non-finite values, a last row other than
            ``[0, 0, 0, 1]``, or a singular 3×3 part (zero spacing or collinear axes).
    """
    where = None if path is None else str(path)
    try:
        arr = np.array(affine, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GeometryError(f"affine is not numeric: {exc}", path=where) from None
    if arr.shape != (4, 4):
        raise GeometryError(f"affine must have shape (4, 4), got {arr.shape}", path=where)
    if not np.isfinite(arr).all():
        raise GeometryError(f"affine contains NaN or Inf:\n{arr}", path=where)
    if not np.allclose(arr[3], (0.0, 0.0, 0.0, 1.0)):
        raise GeometryError(f"affine's last row must be [0, 0, 0, 1], got {arr[3]}", path=where)
    linear = arr[:3, :3]
    scale = float(np.abs(linear).max())
    if scale == 0.0 or abs(np.linalg.det(linear)) <= 1e-12 * scale**3:
        raise GeometryError(
            f"affine is singular (a zero voxel size or two parallel axes):\n{arr}", path=where
        )
    return arr


def spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size in mm along each array axis.

    Args:
        affine: (4, 4) voxel→world matrix.

    Returns:
        (3,) float64: the length of each column of the 3×3 part.
    """
    return np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))


def origin(affine: np.ndarray) -> np.ndarray:
    """World position (mm) of the centre of voxel ``(0, 0, 0)``.

    Args:
        affine: (4, 4) voxel→world matrix.

    Returns:
        (3,) float64.
    """
    return np.asarray(affine, dtype=np.float64)[:3, 3].copy()


def direction_cosines(affine: np.ndarray) -> np.ndarray:
    """Unit vectors (world RAS) of each array axis, as the columns of a (3, 3) matrix."""
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    return linear / spacing(affine)


def _check_code(code: str) -> str:
    upper = code.upper() if isinstance(code, str) else ""
    if upper not in ALL_AXCODES:
        raise GeometryError(
            f"invalid orientation code {code!r}: use 3 letters, one from each of "
            "L/R, A/P, S/I (for example 'RAS', 'LPS' or 'RPI')"
        )
    return upper


def _world_axes(affine: np.ndarray) -> np.ndarray:
    """(3, 2) array: for each array axis, the closest world axis and its sign (±1)."""
    ornt = io_orientation(np.asarray(affine, dtype=np.float64))
    if np.isnan(ornt).any():
        raise GeometryError(f"cannot find the orientation of a degenerate affine:\n{affine}")
    return ornt


def axcodes(affine: np.ndarray) -> str:
    """Orientation code of an affine, e.g. ``"RAS"``.

    Oblique affines get the code of the closest axis-aligned orientation (the
    same rule as :func:`nibabel.orientations.aff2axcodes`).

    Args:
        affine: (4, 4) voxel→world matrix.

    Returns:
        A 3-letter code.
    """
    letters = []
    for world_axis, sign in _world_axes(affine):
        pair = _PAIRS[int(world_axis)]
        letters.append(pair[1] if sign > 0 else pair[0])
    return "".join(letters)


@dataclass(frozen=True)
class Reorientation:
    """An exact reorientation: output axis ``a`` is input axis ``permutation[a]``,
    reversed when ``flips[a]``.

    Built by :func:`reorientation`; holds the input's spatial ``shape`` so that
    the affine can be updated and the inverse computed.

    Attributes:
        permutation: For each output spatial axis, the input spatial axis it takes.
        flips: For each output spatial axis, whether it is reversed.
        shape: Spatial shape ``(I, J, K)`` of the input.
    """

    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    shape: tuple[int, int, int]

    @property
    def is_identity(self) -> bool:
        """True when the array and affine are unchanged."""
        return self.permutation == (0, 1, 2) and not any(self.flips)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """Spatial shape after reorientation."""
        p = self.permutation
        return (self.shape[p[0]], self.shape[p[1]], self.shape[p[2]])

    def voxel_map(self) -> np.ndarray:
        """(4, 4) matrix mapping output voxel indices to input voxel indices."""
        mapping = np.zeros((4, 4))
        mapping[3, 3] = 1.0
        for out_axis, (in_axis, flip) in enumerate(zip(self.permutation, self.flips, strict=True)):
            if flip:
                mapping[in_axis, out_axis] = -1.0
                mapping[in_axis, 3] = self.shape[in_axis] - 1
            else:
                mapping[in_axis, out_axis] = 1.0
        return mapping

    def transform_affine(self, affine: np.ndarray) -> np.ndarray:
        """The affine of the reoriented array, given the input's (4, 4) affine."""
        return np.asarray(affine, dtype=np.float64) @ self.voxel_map()

    def apply(self, array: Any) -> Any:
        """Reorient an array whose last three axes are spatial.

        Args:
            array: ``(I, J, K)`` or ``(..., I, J, K)`` array (numpy or torch).

        Returns:
            The reoriented array: a numpy view (no copy); for torch, a view unless an
            axis is flipped (``torch.flip`` copies, torch has no negative strides).
        """
        lead = array.ndim - 3
        if lead < 0 or tuple(array.shape[lead:]) != self.shape:
            raise GeometryError(
                f"array of shape {tuple(array.shape)} does not end in the spatial shape "
                f"{self.shape} this reorientation was made for"
            )
        axes = (*range(lead), *(lead + p for p in self.permutation))
        flipped = [lead + a for a, flip in enumerate(self.flips) if flip]
        if _is_torch(array):
            out = array.permute(*axes)
            return out.flip(flipped) if flipped else out
        out = np.transpose(array, axes)
        if flipped:
            index = [slice(None)] * out.ndim
            for axis in flipped:
                index[axis] = slice(None, None, -1)
            out = out[tuple(index)]
        return out

    def inverse(self) -> Reorientation:
        """The reorientation that undoes this one."""
        perm = [0, 0, 0]
        flips = [False, False, False]
        for out_axis, in_axis in enumerate(self.permutation):
            perm[in_axis] = out_axis
            flips[in_axis] = self.flips[out_axis]
        return Reorientation(
            permutation=(perm[0], perm[1], perm[2]),
            flips=(flips[0], flips[1], flips[2]),
            shape=self.output_shape,
        )


def _is_torch(array: object) -> bool:
    return type(array).__module__.startswith("torch")


def reorientation(affine: np.ndarray, target: str, *, shape: Sequence[int]) -> Reorientation:
    """Plan the flips and permutation that bring an array to orientation ``target``.

    Args:
        affine: (4, 4) voxel→world matrix of the input.
        target: Orientation code, e.g. ``"RAS"``, ``"LPS"``, ``"RPI"`` (case-insensitive).
        shape: Spatial shape ``(I, J, K)`` of the input.

    Returns:
        The :class:`Reorientation`; ``.apply(array)`` and ``.transform_affine(affine)``
        give the reoriented array and affine.

    Raises:
        GeometryError: Invalid code or degenerate affine.
    """
    code = _check_code(target)
    if len(shape) != 3:
        raise GeometryError(f"shape must have 3 spatial sizes, got {tuple(shape)}")
    current = _world_axes(affine)
    perm: list[int] = []
    flips: list[bool] = []
    for letter in code:
        world_axis = _WORLD_AXIS[letter]
        sign = 1.0 if letter in _POSITIVE else -1.0
        in_axis = int(np.flatnonzero(current[:, 0] == world_axis)[0])
        perm.append(in_axis)
        flips.append(bool(current[in_axis, 1] != sign))
    return Reorientation(
        permutation=(perm[0], perm[1], perm[2]),
        flips=(flips[0], flips[1], flips[2]),
        shape=(int(shape[0]), int(shape[1]), int(shape[2])),
    )


def reorient(array: np.ndarray, affine: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Reorient an array (spatial axes last) and its affine to ``target``.

    Args:
        array: ``(I, J, K)`` or ``(C, I, J, K)`` array.
        affine: (4, 4) voxel→world matrix.
        target: Orientation code such as ``"RAS"`` or ``"LPS"``.

    Returns:
        ``(array_view, affine)`` where ``axcodes(affine) == target``.
    """
    plan = reorientation(affine, target, shape=tuple(array.shape[-3:]))
    return plan.apply(array), plan.transform_affine(affine)
