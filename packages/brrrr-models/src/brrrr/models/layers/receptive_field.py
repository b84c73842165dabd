"""Receptive field of a chain of convolutions, from the layers themselves.

For layers ``l = 1..L`` with kernel ``k_l``, stride ``s_l`` and dilation ``d_l`` the receptive
field (in input voxels) of one output unit is

    r = 1 + sum_l (k_l - 1) * d_l * prod_{m < l} s_m

Residual blocks are counted along their longest path (the two 3×3×3 convolutions; the 1×1×1
shortcut sees less). Zero padding does not change it. Dilation leaves holes inside ``r``
(the span is what is stated, not a dense field).

Example:
    >>> receptive_field([ConvSpec(3), ConvSpec(3, stride=2), ConvSpec(3, dilation=2)])
    13
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

__all__ = ["ConvSpec", "conv_spec", "receptive_field"]


@dataclass(frozen=True)
class ConvSpec:
    """One convolution along an axis: kernel size, stride and dilation (isotropic)."""

    kernel_size: int
    stride: int = 1
    dilation: int = 1


def conv_spec(conv: nn.Conv3d) -> ConvSpec:
    """Read the :class:`ConvSpec` of an isotropic ``nn.Conv3d``.

    Args:
        conv: The convolution.

    Returns:
        Its kernel size, stride and dilation along the first axis.

    Raises:
        ValueError: If the convolution is not isotropic.
    """
    kernel, stride, dilation = conv.kernel_size, conv.stride, conv.dilation
    if len({*kernel}) != 1 or len({*stride}) != 1 or len({*dilation}) != 1:
        raise ValueError(f"receptive_field assumes isotropic convolutions, got {conv}")
    return ConvSpec(int(kernel[0]), stride=int(stride[0]), dilation=int(dilation[0]))


def receptive_field(specs: Iterable[ConvSpec]) -> int:
    """Return the receptive field, in input voxels, of convolutions applied in order.

    Args:
        specs: The convolutions from input to output.

    Returns:
        The side of the cube of input voxels that one output unit depends on.
    """
    field, jump = 1, 1
    for spec in specs:
        field += (spec.kernel_size - 1) * spec.dilation * jump
        jump *= spec.stride
    return field
