"""What the β-VAE and the hierarchical VAE share: the metadata embedding that drives
FiLM, the ResNet encoder, the maps between the bottleneck grid and a flat latent, and the
grid properties and checks of their configurations."""

from __future__ import annotations

import math
from typing import Any, Literal, Protocol

import torch
from torch import nn

from brrrr.models.blocks.encoder import ResNetEncoder3d
from brrrr.models.blocks.metadata import MetadataEncoder
from brrrr.models.errors import ModelConfigError
from brrrr.models.layers.padding import padded_shape

__all__ = ["ConditionedVolumeTrunk", "VolumeGridConfig"]


class VolumeGridConfig:
    """Grid properties and checks shared by the volume VAEs' configuration dataclasses.

    A subclass is a frozen dataclass with the fields below; it calls :meth:`check_stages`
    from its ``__post_init__``.
    """

    grid_shape: tuple[int, int, int]
    channels: tuple[int, ...]
    dilations: tuple[int, ...]
    decoder_output: Literal["mean", "mean_logvar"]

    def check_stages(self) -> None:
        """Check one dilation per stage and the decoder output.

        Raises:
            ModelConfigError: If ``dilations`` or ``decoder_output`` is invalid.
        """
        stages = len(self.channels) - 1
        if len(self.dilations) != stages:
            raise ModelConfigError(
                f"dilations needs one value per stage ({stages}), got {self.dilations}"
            )
        if self.decoder_output not in ("mean", "mean_logvar"):
            raise ModelConfigError(
                f"decoder_output must be 'mean' or 'mean_logvar', got {self.decoder_output!r}"
            )

    @property
    def total_stride(self) -> int:
        """``2**stages``: the padded grid is a multiple of it."""
        return 2 ** (len(self.channels) - 1)

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """The grid the network runs on."""
        return padded_shape(self.grid_shape, multiple=self.total_stride)

    @property
    def bottom_shape(self) -> tuple[int, ...]:
        """The deepest grid."""
        return tuple(side // self.total_stride for side in self.padded_shape)


class _TrunkConfig(Protocol):
    """The configuration fields the trunk reads (both configs are frozen dataclasses)."""

    @property
    def in_channels(self) -> int: ...

    @property
    def channels(self) -> tuple[int, ...]: ...

    @property
    def dilations(self) -> tuple[int, ...]: ...

    @property
    def blocks_per_stage(self) -> int: ...

    @property
    def norm_groups(self) -> int: ...

    @property
    def bottleneck_channels(self) -> int: ...

    @property
    def metadata_dim(self) -> int: ...

    @property
    def metadata_embedding_dim(self) -> int: ...

    @property
    def bottom_shape(self) -> tuple[int, ...]: ...


class ConditionedVolumeTrunk(nn.Module):
    """Base of the volume VAEs: builds the shared layers and embeds metadata.

    After :meth:`build_trunk`, the module has ``metadata_encoder`` (or ``None``),
    ``encoder``, ``to_bottleneck``, ``from_latent`` and ``from_bottleneck``.
    """

    metadata_encoder: MetadataEncoder | None

    def build_trunk(self, config: _TrunkConfig, *, latent_dim: int) -> tuple[dict[str, Any], int]:
        """Create the shared layers.

        Args:
            config: The network's configuration.
            latent_dim: Size of the flat latent the bottleneck maps to and from.

        Returns:
            ``(trunk, flat)``: the keyword arguments of the ResNet encoder/decoder
            (for the subclass's decoders) and the flat size of the bottleneck.
        """
        cond_dim = config.metadata_embedding_dim if config.metadata_dim > 0 else 0
        self.metadata_encoder = (
            MetadataEncoder(config.metadata_dim, embedding_dim=cond_dim) if cond_dim else None
        )
        trunk: dict[str, Any] = {
            "channels": config.channels,
            "dilations": config.dilations,
            "blocks_per_stage": config.blocks_per_stage,
            "cond_dim": cond_dim,
            "norm_groups": config.norm_groups,
        }
        self.encoder = ResNetEncoder3d(config.in_channels, **trunk)
        self.to_bottleneck = nn.Conv3d(config.channels[-1], config.bottleneck_channels, 1)
        flat = config.bottleneck_channels * math.prod(config.bottom_shape)
        self.from_latent = nn.Linear(latent_dim, flat)
        self.from_bottleneck = nn.Conv3d(config.bottleneck_channels, config.channels[-1], 1)
        return trunk, flat

    def condition(
        self, metadata: torch.Tensor | None, metadata_mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Embed metadata for FiLM; ``None`` when the model or the call has no metadata.

        Args:
            metadata: ``(B, M)`` values (missing ones may be NaN).
            metadata_mask: ``(B, M)`` true where observed (``None``: where finite).

        Returns:
            ``(B, E)`` embedding or ``None``.
        """
        if self.metadata_encoder is None or metadata is None:
            return None
        return self.metadata_encoder(metadata, metadata_mask)
