"""Padding a grid to a size the network can halve, and cropping back.

The MNI152 2 mm grid is 91×109×91 voxels. A network that halves the grid ``n`` times needs
each side divisible by ``2**n``; we pad with zeros to the next multiple, splitting the padding
as evenly as possible and putting the odd voxel at the end of the axis. With four halvings
(``multiple=16``) the grid becomes 96×112×96: ``(2, 3)`` voxels before/after on I, ``(1, 2)`` on J
and ``(2, 3)`` on K. The decoder crops the same voxels away, so outputs are on the input grid.

Example:
    >>> padded_shape((91, 109, 91), multiple=16)
    (96, 112, 96)
    >>> pad_widths((91, 109, 91), multiple=16)
    ((2, 3), (1, 2), (2, 3))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["crop_to_shape", "pad_to_multiple", "pad_widths", "padded_shape"]


def padded_shape(shape: Sequence[int], *, multiple: int) -> tuple[int, ...]:
    """Return ``shape`` with every side rounded up to a multiple of ``multiple``.

    Args:
        shape: Spatial shape, e.g. ``(91, 109, 91)``.
        multiple: The total stride of the network (``2**n`` for ``n`` halvings).

    Returns:
        The padded spatial shape.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    return tuple(-(-int(side) // multiple) * multiple for side in shape)


def pad_widths(shape: Sequence[int], *, multiple: int) -> tuple[tuple[int, int], ...]:
    """Return the ``(before, after)`` zero padding of each axis; the odd voxel goes after.

    Args:
        shape: Spatial shape.
        multiple: The total stride of the network.

    Returns:
        One ``(before, after)`` pair per axis.
    """
    widths = []
    for side, target in zip(shape, padded_shape(shape, multiple=multiple), strict=True):
        total = target - int(side)
        widths.append((total // 2, total - total // 2))
    return tuple(widths)


def pad_to_multiple(x: torch.Tensor, *, multiple: int) -> torch.Tensor:
    """Zero-pad the trailing three axes of ``x`` to multiples of ``multiple``.

    Args:
        x: ``(B, C, I, J, K)`` tensor.
        multiple: The total stride of the network.

    Returns:
        ``(B, C, I', J', K')`` tensor with ``I' = padded_shape(...)[0]`` and so on.
    """
    widths = pad_widths(x.shape[-3:], multiple=multiple)
    if all(before == after == 0 for before, after in widths):
        return x
    # F.pad lists the last axis first.
    flat = [w for pair in reversed(widths) for w in pair]
    return F.pad(x, flat)


def crop_to_shape(x: torch.Tensor, shape: Sequence[int], *, multiple: int) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: crop the trailing three axes back to ``shape``.

    Args:
        x: ``(B, C, I', J', K')`` tensor on the padded grid.
        shape: The original spatial shape ``(I, J, K)``.
        multiple: The multiple used for padding.

    Returns:
        ``(B, C, I, J, K)`` tensor.
    """
    (i0, _), (j0, _), (k0, _) = pad_widths(shape, multiple=multiple)
    i, j, k = (int(side) for side in shape)
    return x[..., i0 : i0 + i, j0 : j0 + j, k0 : k0 + k]
