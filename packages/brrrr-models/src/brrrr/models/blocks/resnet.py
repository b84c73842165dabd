"""3D residual blocks with GroupNorm, dilation and FiLM conditioning; down/up-sampling steps.

``ResBlock3d`` is pre-activation: ``x + conv(act(FiLM(norm(conv(act(norm(x)))))))`` with 3×3×3
convolutions of a chosen dilation (zero padding keeps the size). FiLM sits after the second
normalisation, where a per-channel scale and shift act on normalised features.

Example:
    >>> import torch
    >>> block = ResBlock3d(8, out_channels=16, dilation=2)
    >>> block(torch.randn(1, 8, 6, 6, 6)).shape
    torch.Size([1, 16, 6, 6, 6])
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from brrrr.models.blocks.film import FiLM
from brrrr.models.layers.receptive_field import ConvSpec, conv_spec

__all__ = ["Downsample3d", "ResBlock3d", "ResStage3d", "Upsample3d", "group_norm"]


def group_norm(channels: int, *, groups: int = 8) -> nn.GroupNorm:
    """GroupNorm with ``groups`` groups.

    Args:
        channels: Number of channels; must be divisible by ``groups``.
        groups: Number of groups.

    Returns:
        The normalisation layer.

    Raises:
        ValueError: If ``channels`` is not divisible by ``groups``.
    """
    if channels % groups:
        raise ValueError(
            f"GroupNorm({groups}) needs channels divisible by {groups}, got {channels}"
        )
    return nn.GroupNorm(groups, channels)


class ResBlock3d(nn.Module):
    """Residual block of two dilated 3×3×3 convolutions.

    Args:
        in_channels: Input channels.
        out_channels: Output channels (default: ``in_channels``); a 1×1×1 shortcut adapts them.
        dilation: Dilation of both convolutions.
        cond_dim: Size of the FiLM conditioning vector; 0 disables FiLM.
        norm_groups: GroupNorm groups.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        out_channels: int | None = None,
        dilation: int = 1,
        cond_dim: int = 0,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        out = out_channels or in_channels
        self.norm1 = group_norm(in_channels, groups=norm_groups)
        self.conv1 = nn.Conv3d(in_channels, out, 3, padding=dilation, dilation=dilation)
        self.norm2 = group_norm(out, groups=norm_groups)
        self.film = FiLM(out, cond_dim=cond_dim) if cond_dim > 0 else None
        self.conv2 = nn.Conv3d(out, out, 3, padding=dilation, dilation=dilation)
        self.act = nn.SiLU()
        self.shortcut: nn.Module = (
            nn.Conv3d(in_channels, out, 1) if in_channels != out else nn.Identity()
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``(B, C_in, I, J, K)``.
            cond: ``(B, E)`` conditioning vector, or ``None``.

        Returns:
            ``(B, C_out, I, J, K)``.
        """
        h = self.conv1(self.act(self.norm1(x)))
        h = self.norm2(h)
        if self.film is not None:
            h = self.film(h, cond)
        h = self.conv2(self.act(h))
        return self.shortcut(x) + h

    def conv_specs(self) -> list[ConvSpec]:
        """The convolutions on the block's longest path, in order."""
        return [conv_spec(self.conv1), conv_spec(self.conv2)]


class ResStage3d(nn.Module):
    """Residual blocks of one dilation applied in sequence, all with the same conditioning.

    Args:
        channels: Channels in and out.
        n_blocks: Number of :class:`ResBlock3d`.
        dilation: Their dilation.
        cond_dim: FiLM conditioning size; 0 disables FiLM.
        norm_groups: GroupNorm groups.
    """

    def __init__(
        self,
        channels: int,
        *,
        n_blocks: int,
        dilation: int,
        cond_dim: int = 0,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock3d(channels, dilation=dilation, cond_dim=cond_dim, norm_groups=norm_groups)
            for _ in range(n_blocks)
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, I, J, K)`` → ``(B, C, I, J, K)``."""
        for block in self.blocks:
            x = block(x, cond)
        return x

    def conv_specs(self) -> list[ConvSpec]:
        """The convolutions on the longest path, in order."""
        return [spec for block in self.blocks for spec in cast(ResBlock3d, block).conv_specs()]


class Downsample3d(nn.Module):
    """Halve the grid with a strided 3×3×3 convolution.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
    """

    def __init__(self, in_channels: int, *, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, I, J, K)`` (even sides) → ``(B, C_out, I/2, J/2, K/2)``."""
        return self.conv(x)

    def conv_specs(self) -> list[ConvSpec]:
        """The strided convolution."""
        return [conv_spec(self.conv)]


class Upsample3d(nn.Module):
    """Double the grid: nearest-neighbour upsampling then a 3×3×3 convolution.

    (Avoids the checkerboard artefacts of transposed convolutions.)

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
    """

    def __init__(self, in_channels: int, *, out_channels: int) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.conv = nn.Conv3d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, I, J, K)`` → ``(B, C_out, 2I, 2J, 2K)``."""
        return self.conv(self.upsample(x))
