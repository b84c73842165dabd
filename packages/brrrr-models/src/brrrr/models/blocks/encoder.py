"""ResNet-style 3D encoder: a stem, then stages that halve the grid and apply dilated blocks.

Stage ``s`` (``s = 1..S``) maps ``channels[s-1]`` to ``channels[s]`` with a strided convolution,
then ``blocks_per_stage`` :class:`ResBlock3d` of dilation ``dilations[s-1]``. The grid is halved
``S = len(channels) - 1`` times, so inputs need sides divisible by ``2**S``.

Example:
    >>> import torch
    >>> enc = ResNetEncoder3d(1, channels=(8, 16), dilations=(2,))
    >>> [f.shape[1:] for f in enc(torch.randn(1, 1, 8, 8, 8))]
    [torch.Size([8, 8, 8, 8]), torch.Size([16, 4, 4, 4])]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from brrrr.models.blocks.resnet import Downsample3d, ResStage3d
from brrrr.models.layers.receptive_field import ConvSpec, conv_spec, receptive_field

__all__ = ["ResNetEncoder3d"]


class ResNetEncoder3d(nn.Module):
    """Convolutional encoder returning the features of every stage.

    Args:
        in_channels: Input channels.
        channels: Channels of the stem and of each stage, e.g. ``(16, 32, 64, 128, 256)``.
        dilations: Dilation of the residual blocks of each stage (``len(channels) - 1`` values).
        blocks_per_stage: Residual blocks after each downsampling.
        cond_dim: FiLM conditioning size; 0 disables FiLM.
        norm_groups: GroupNorm groups.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        channels: Sequence[int],
        dilations: Sequence[int],
        blocks_per_stage: int = 1,
        cond_dim: int = 0,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        if len(dilations) != len(channels) - 1:
            raise ValueError(
                f"need one dilation per stage: {len(channels) - 1} stages, got {len(dilations)}"
            )
        self.stem = nn.Conv3d(in_channels, channels[0], 3, padding=1)
        self.downsamples = nn.ModuleList()
        self.stages = nn.ModuleList()
        for stage, dilation in enumerate(dilations, start=1):
            self.downsamples.append(Downsample3d(channels[stage - 1], out_channels=channels[stage]))
            self.stages.append(
                ResStage3d(
                    channels[stage],
                    n_blocks=blocks_per_stage,
                    dilation=dilation,
                    cond_dim=cond_dim,
                    norm_groups=norm_groups,
                )
            )

    @property
    def total_stride(self) -> int:
        """How many input voxels one voxel of the deepest features spans, per axis."""
        return 2 ** len(self.stages)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Encode.

        Args:
            x: ``(B, C_in, I, J, K)`` with sides divisible by :attr:`total_stride`.
            cond: ``(B, E)`` FiLM conditioning, or ``None``.

        Returns:
            Features of the stem and of each stage: ``(B, channels[s], I/2**s, J/2**s, K/2**s)``.
        """
        h = self.stem(x)
        features = [h]
        for down, stage in zip(self.downsamples, self.stages, strict=True):
            h = stage(down(h), cond)
            features.append(h)
        return features

    def conv_specs(self) -> list[ConvSpec]:
        """The convolutions on the longest input-to-output path, in order."""
        specs = [conv_spec(self.stem)]
        for down, stage in zip(self.downsamples, self.stages, strict=True):
            specs += cast(Downsample3d, down).conv_specs()
            specs += cast(ResStage3d, stage).conv_specs()
        return specs

    def receptive_field_voxels(self) -> int:
        """Receptive field of one deepest-stage unit, in input voxels (see ``receptive_field``)."""
        return receptive_field(self.conv_specs())
