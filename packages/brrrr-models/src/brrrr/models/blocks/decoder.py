"""ResNet-style 3D decoder, the mirror of :class:`ResNetEncoder3d`.

From the deepest grid, stage ``s = S..1`` applies ``blocks_per_stage`` dilated residual blocks
at ``channels[s]`` and then doubles the grid into ``channels[s-1]``; a GroupNorm–SiLU–conv head
maps ``channels[0]`` to the output channels.

Example:
    >>> import torch
    >>> dec = ResNetDecoder3d(2, channels=(8, 16), dilations=(2,))
    >>> dec(torch.randn(1, 16, 4, 4, 4)).shape
    torch.Size([1, 2, 8, 8, 8])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from brrrr.models.blocks.resnet import ResStage3d, Upsample3d, group_norm

__all__ = ["ResNetDecoder3d"]


class ResNetDecoder3d(nn.Module):
    """Convolutional decoder from the deepest features to the output grid.

    Args:
        out_channels: Output channels.
        channels: The encoder's channels (stem first); the decoder walks them backwards.
        dilations: The encoder's dilations, one per stage.
        blocks_per_stage: Residual blocks per stage.
        cond_dim: FiLM conditioning size; 0 disables FiLM.
        norm_groups: GroupNorm groups.
        stop_stage: Stop at the grid of stage ``stop_stage`` and skip the head; returns
            ``(B, channels[stop_stage], ...)`` features (used to split a decoder in two).
        start_stage: Start from stage ``start_stage`` features instead of the deepest.
    """

    def __init__(
        self,
        out_channels: int,
        *,
        channels: Sequence[int],
        dilations: Sequence[int],
        blocks_per_stage: int = 1,
        cond_dim: int = 0,
        norm_groups: int = 8,
        start_stage: int | None = None,
        stop_stage: int = 0,
    ) -> None:
        super().__init__()
        if len(dilations) != len(channels) - 1:
            raise ValueError(
                f"need one dilation per stage: {len(channels) - 1} stages, got {len(dilations)}"
            )
        start = len(dilations) if start_stage is None else start_stage
        self.stages = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for stage in range(start, stop_stage, -1):
            self.stages.append(
                ResStage3d(
                    channels[stage],
                    n_blocks=blocks_per_stage,
                    dilation=dilations[stage - 1],
                    cond_dim=cond_dim,
                    norm_groups=norm_groups,
                )
            )
            self.upsamples.append(Upsample3d(channels[stage], out_channels=channels[stage - 1]))
        self.head: nn.Sequential | None = None
        if stop_stage == 0:
            self.head = nn.Sequential(
                group_norm(channels[0], groups=norm_groups),
                nn.SiLU(),
                nn.Conv3d(channels[0], out_channels, 3, padding=1),
            )

    def forward(self, h: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Decode.

        Args:
            h: ``(B, channels[start], I, J, K)`` features.
            cond: ``(B, E)`` FiLM conditioning, or ``None``.

        Returns:
            ``(B, out_channels, I * 2**n, J * 2**n, K * 2**n)`` with ``n`` the number of stages
            walked (or the features of ``stop_stage`` when there is no head).
        """
        for stage, up in zip(self.stages, self.upsamples, strict=True):
            h = up(stage(h, cond))
        return h if self.head is None else self.head(h)

    def head_features(self, h: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """What the head's output convolution sees (after its GroupNorm and SiLU).

        ``self.output_conv(self.head_features(h, cond))`` equals ``self(h, cond)``; a caller
        can apply that convolution to part of the features with their gradient stopped.

        Args:
            h: ``(B, channels[start], I, J, K)`` features.
            cond: ``(B, E)`` FiLM conditioning, or ``None``.

        Returns:
            ``(B, channels[0], I * 2**n, J * 2**n, K * 2**n)``.
        """
        if self.head is None:
            raise ValueError("this decoder stops before the head (stop_stage > 0)")
        for stage, up in zip(self.stages, self.upsamples, strict=True):
            h = up(stage(h, cond))
        return self.head[:-1](h)

    @property
    def output_conv(self) -> nn.Conv3d:
        """The head's final convolution (``channels[0]`` → ``out_channels``)."""
        conv = None if self.head is None else self.head[-1]
        if not isinstance(conv, nn.Conv3d):
            raise ValueError("this decoder stops before the head (stop_stage > 0)")
        return conv
