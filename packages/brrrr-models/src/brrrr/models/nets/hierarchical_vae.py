"""Two-level hierarchical 3D VAE whose top level cannot be bypassed.

Levels: a global top latent ``z_top`` (``top_latent_dim``) from the deepest encoder grid, and a
spatial bottom latent ``z_bottom`` (``bottom_latent_channels`` maps on the grid of encoder stage
``bottom_stage``), with posterior ``q(z_bottom | x, z_top)`` and learned prior
``p(z_bottom | z_top)``.

Paths::

    x ─ encoder ─┬─ h_mid ──────────────sg──┐
                 └─ h_top → q(z_top) → z_top → top decoder → u ─┬─────────────→ high decoder → x̂_top
                                                                └─sg─┬→ q(z_bottom | h_mid, u)
                                                                     ├→ p(z_bottom | u)
                                                                     └→ u + f(z_bottom) → high decoder → x̂

``sg`` is a stop-gradient (``stop_gradient="skips"``). Why: a bottom latent fed by encoder
skips can explain everything and leave the top latent unused (its KL falls to zero). With the
stop-gradients the top path (encoder trunk, ``q(z_top)``, top decoder) is trained only by the
top-only reconstruction ``x̂_top`` and ``KL_top``, so it must carry the content of ``x`` on its
own; the bottom level learns the residual ``x̂`` adds on top. ``stop_gradient="none"`` removes
them (for ablations).

Example:
    >>> import torch
    >>> config = HierarchicalVAEConfig(grid_shape=(8, 8, 8), channels=(8, 16, 16), dilations=(1, 1),
    ...                                bottom_stage=1, top_latent_dim=4, bottleneck_channels=8)
    >>> out = HierarchicalVAE(config)(torch.randn(2, 1, 8, 8, 8))
    >>> out.reconstruction.shape, out.mu_bottom.shape, out.kl_bottom.shape
    (torch.Size([2, 1, 8, 8, 8]), torch.Size([2, 4, 4, 4, 4]), torch.Size([2]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from brrrr.models.blocks.decoder import ResNetDecoder3d
from brrrr.models.errors import ModelConfigError
from brrrr.models.export import OnnxGraph, example_metadata, metadata_kwargs
from brrrr.models.hub import HubMixin
from brrrr.models.layers.gaussian import GaussianHead, reparameterize, soft_clamp
from brrrr.models.layers.padding import crop_to_shape, pad_to_multiple
from brrrr.models.losses.kl import kl_normal, kl_standard_normal
from brrrr.models.losses.reconstruction import gaussian_nll
from brrrr.models.nets._trunk import ConditionedVolumeTrunk, VolumeGridConfig

__all__ = [
    "HierarchicalVAE",
    "HierarchicalVAEConfig",
    "HierarchicalVAEOutput",
    "hierarchical_vae_loss",
]


@dataclass(frozen=True)
class HierarchicalVAEConfig(VolumeGridConfig):
    """Configuration of :class:`HierarchicalVAE`.

    The fields ``grid_shape``, ``in_channels``, ``channels``, ``dilations``,
    ``blocks_per_stage``, ``bottleneck_channels``, ``decoder_output``, ``metadata_dim``,
    ``metadata_embedding_dim``, ``norm_groups`` and ``logvar_limit`` mean what they mean in
    :class:`BetaVAEConfig`.

    Attributes:
        top_latent_dim: Size of the global top latent.
        bottom_stage: Encoder stage whose grid carries the bottom latent (1 = half resolution).
        bottom_latent_channels: Channels of the spatial bottom latent.
        stop_gradient: ``"skips"`` (default) or ``"none"``.
    """

    grid_shape: tuple[int, int, int] = (91, 109, 91)
    in_channels: int = 1
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    dilations: tuple[int, ...] = (1, 1, 2, 2)
    blocks_per_stage: int = 1
    bottleneck_channels: int = 32
    top_latent_dim: int = 64
    bottom_stage: int = 3
    bottom_latent_channels: int = 4
    stop_gradient: Literal["skips", "none"] = "skips"
    decoder_output: Literal["mean", "mean_logvar"] = "mean"
    metadata_dim: int = 0
    metadata_embedding_dim: int = 64
    norm_groups: int = 8
    logvar_limit: float = 10.0

    def __post_init__(self) -> None:
        self.check_stages()
        stages = len(self.channels) - 1
        if not 1 <= self.bottom_stage < stages:
            raise ModelConfigError(
                f"bottom_stage must be in [1, {stages - 1}], got {self.bottom_stage}"
            )
        if self.stop_gradient not in ("skips", "none"):
            raise ModelConfigError(
                f"stop_gradient must be 'skips' or 'none', got {self.stop_gradient!r}"
            )


@dataclass
class HierarchicalVAEOutput:
    """Outputs of :class:`HierarchicalVAE`.

    Attributes:
        reconstruction: ``(B, C, I, J, K)`` mean from both levels.
        reconstruction_top: ``(B, C, I, J, K)`` mean from the top level alone.
        mu, logvar, z: ``(B, L)`` top posterior and the top latent used.
        mu_bottom, logvar_bottom, z_bottom: ``(B, Cz, i, j, k)`` bottom posterior and latent.
        prior_mu_bottom, prior_logvar_bottom: ``(B, Cz, i, j, k)`` prior ``p(z_bottom | z_top)``.
        kl_top: ``(B,)`` ``KL(q(z_top | x) || N(0, I))``.
        kl_bottom: ``(B,)`` ``KL(q(z_bottom | x, z_top) || p(z_bottom | z_top))``.
        reconstruction_logvar, reconstruction_top_logvar: per-voxel log-variances (aleatoric).
    """

    reconstruction: torch.Tensor
    reconstruction_top: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    mu_bottom: torch.Tensor
    logvar_bottom: torch.Tensor
    z_bottom: torch.Tensor
    prior_mu_bottom: torch.Tensor
    prior_logvar_bottom: torch.Tensor
    kl_top: torch.Tensor
    kl_bottom: torch.Tensor
    reconstruction_logvar: torch.Tensor | None = None
    reconstruction_top_logvar: torch.Tensor | None = None

    @property
    def kl(self) -> torch.Tensor:
        """``(B,)`` total KL."""
        return self.kl_top + self.kl_bottom


def _gaussian_conv(in_channels: int, hidden: int, latent_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, hidden, 3, padding=1),
        nn.SiLU(),
        nn.Conv3d(hidden, 2 * latent_channels, 1),
    )


class HierarchicalVAE(ConditionedVolumeTrunk, HubMixin):
    """Two-level 3D VAE; ``forward`` returns a :class:`HierarchicalVAEOutput`.

    Args:
        config: The configuration (default: :class:`HierarchicalVAEConfig()`).
    """

    config_class = HierarchicalVAEConfig

    def __init__(self, config: HierarchicalVAEConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or HierarchicalVAEConfig()
        trunk, flat = self.build_trunk(config, latent_dim=config.top_latent_dim)
        self.top_posterior = GaussianHead(
            flat, latent_dim=config.top_latent_dim, logvar_limit=config.logvar_limit
        )
        self.top_decoder = ResNetDecoder3d(0, stop_stage=config.bottom_stage, **trunk)
        mid = config.channels[config.bottom_stage]
        self.bottom_posterior = _gaussian_conv(2 * mid, mid, config.bottom_latent_channels)
        self.bottom_prior = _gaussian_conv(mid, mid, config.bottom_latent_channels)
        self.from_bottom = nn.Conv3d(config.bottom_latent_channels, mid, 1)
        out_channels = config.in_channels * (2 if config.decoder_output == "mean_logvar" else 1)
        self.high_decoder = ResNetDecoder3d(out_channels, start_stage=config.bottom_stage, **trunk)

    def _sg(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach() if self.config.stop_gradient == "skips" else x

    def _split(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = raw.chunk(2, dim=1)
        return mu, soft_clamp(logvar, limit=self.config.logvar_limit)

    def _top_features(self, z_top: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        config = self.config
        h = self.from_latent(z_top).reshape(
            z_top.shape[0], config.bottleneck_channels, *config.bottom_shape
        )
        return self.top_decoder(self.from_bottleneck(h), cond)

    def _output(
        self, h: torch.Tensor, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        config = self.config
        out = crop_to_shape(
            self.high_decoder(h, cond), config.grid_shape, multiple=config.total_stride
        )
        if config.decoder_output == "mean":
            return out, None
        mean, logvar = out.chunk(2, dim=1)
        return mean, soft_clamp(logvar, limit=config.logvar_limit)

    def forward(
        self,
        x: torch.Tensor,
        *,
        metadata: torch.Tensor | None = None,
        metadata_mask: torch.Tensor | None = None,
    ) -> HierarchicalVAEOutput:
        """Encode both levels, sample (training) or take means (eval), decode both outputs.

        Args:
            x: ``(B, C, I, J, K)`` maps on ``config.grid_shape``.
            metadata: ``(B, M)`` metadata, or ``None``.
            metadata_mask: ``(B, M)`` observed mask, or ``None``.

        Returns:
            The :class:`HierarchicalVAEOutput`.
        """
        cond = self.condition(metadata, metadata_mask)
        features = self.encoder(pad_to_multiple(x, multiple=self.config.total_stride), cond)
        h_mid = features[self.config.bottom_stage]
        mu, logvar = self.top_posterior(self.to_bottleneck(features[-1]).flatten(start_dim=1))
        z = reparameterize(mu, logvar) if self.training else mu
        u = self._top_features(z, cond)
        u_sg = self._sg(u)
        mu_b, logvar_b = self._split(
            self.bottom_posterior(torch.cat([self._sg(h_mid), u_sg], dim=1))
        )
        prior_mu, prior_logvar = self._split(self.bottom_prior(u_sg))
        z_b = reparameterize(mu_b, logvar_b) if self.training else mu_b
        mean_top, logvar_top = self._output(u, cond)
        mean, recon_logvar = self._output(u_sg + self.from_bottom(z_b), cond)
        return HierarchicalVAEOutput(
            reconstruction=mean,
            reconstruction_top=mean_top,
            mu=mu,
            logvar=logvar,
            z=z,
            mu_bottom=mu_b,
            logvar_bottom=logvar_b,
            z_bottom=z_b,
            prior_mu_bottom=prior_mu,
            prior_logvar_bottom=prior_logvar,
            kl_top=kl_standard_normal(mu, logvar),
            kl_bottom=kl_normal(mu_b, logvar_b, prior_mu, prior_logvar),
            reconstruction_logvar=recon_logvar,
            reconstruction_top_logvar=logvar_top,
        )

    def decode(
        self,
        z_top: torch.Tensor,
        z_bottom: torch.Tensor | None = None,
        *,
        metadata: torch.Tensor | None = None,
        metadata_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode latents; without ``z_bottom`` the prior mean ``p(z_bottom | z_top)`` is used.

        Args:
            z_top: ``(B, L)`` top latents.
            z_bottom: ``(B, Cz, i, j, k)`` bottom latents, or ``None``.
            metadata: ``(B, M)`` metadata, or ``None``.
            metadata_mask: ``(B, M)`` observed mask, or ``None``.

        Returns:
            ``(mean, logvar)``: ``(B, C, I, J, K)`` each (``logvar`` ``None`` unless aleatoric).
        """
        cond = self.condition(metadata, metadata_mask)
        u = self._top_features(z_top, cond)
        if z_bottom is None:
            z_bottom, _ = self._split(self.bottom_prior(u))
        return self._output(u + self.from_bottom(z_bottom), cond)

    def encode(
        self,
        x: torch.Tensor,
        *,
        metadata: torch.Tensor | None = None,
        metadata_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posteriors of both levels, the bottom one given ``z_top = mu_top``.

        Args:
            x: ``(B, C, I, J, K)`` maps.
            metadata: ``(B, M)`` metadata, or ``None``.
            metadata_mask: ``(B, M)`` observed mask, or ``None``.

        Returns:
            ``(mu_top, logvar_top, mu_bottom, logvar_bottom)``.
        """
        was_training = self.training
        self.eval()
        try:
            out = self.forward(x, metadata=metadata, metadata_mask=metadata_mask)
        finally:
            self.train(was_training)
        return out.mu, out.logvar, out.mu_bottom, out.logvar_bottom

    def onnx_graphs(self, *, batch_size: int) -> list[OnnxGraph]:
        """Encoder ``x[, metadata, mask] → (mu_top, logvar_top, mu_bottom, logvar_bottom)``, decoder."""
        config = self.config
        x = torch.randn(batch_size, config.in_channels, *config.grid_shape)
        z_top = torch.randn(batch_size, config.top_latent_dim)
        mid = tuple(s * config.total_stride // 2**config.bottom_stage for s in config.bottom_shape)
        z_bottom = torch.randn(batch_size, config.bottom_latent_channels, *mid)
        meta, names = example_metadata(config.metadata_dim, batch_size=batch_size)
        outputs = ("mean",) if config.decoder_output == "mean" else ("mean", "logvar")

        def encode(
            m: HierarchicalVAE, x: torch.Tensor, *meta: torch.Tensor
        ) -> tuple[torch.Tensor, ...]:
            return m.encode(x, **metadata_kwargs(meta))

        def decode(
            m: HierarchicalVAE, zt: torch.Tensor, zb: torch.Tensor, *meta: torch.Tensor
        ) -> tuple[torch.Tensor, ...]:
            return tuple(t for t in m.decode(zt, zb, **metadata_kwargs(meta)) if t is not None)

        latents = ("mu_top", "logvar_top", "mu_bottom", "logvar_bottom")
        return [
            OnnxGraph("encoder", encode, (x, *meta), ("x", *names), latents),
            OnnxGraph(
                "decoder", decode, (z_top, z_bottom, *meta), ("z_top", "z_bottom", *names), outputs
            ),
        ]


def hierarchical_vae_loss(
    output: HierarchicalVAEOutput,
    target: torch.Tensor,
    *,
    beta: float = 1.0,
    top_weight: float = 1.0,
    voxel_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Objective ``recon + top_weight * recon_top + beta * (KL_top + KL_bottom)``, batch mean.

    With ``stop_gradient="skips"`` the top path learns only from ``recon_top`` and ``KL_top``,
    so ``top_weight`` must be positive.

    Args:
        output: The model's output.
        target: ``(B, C, I, J, K)`` maps the model was given.
        beta: KL weight.
        top_weight: Weight of the top-only reconstruction.
        voxel_mask: Broadcastable voxel mask, or ``None``.

    Returns:
        ``{"loss", "reconstruction", "reconstruction_top", "kl_top", "kl_bottom"}`` scalars.
    """
    recon = gaussian_nll(
        target, output.reconstruction, logvar=output.reconstruction_logvar, mask=voxel_mask
    ).mean()
    recon_top = gaussian_nll(
        target, output.reconstruction_top, logvar=output.reconstruction_top_logvar, mask=voxel_mask
    ).mean()
    kl_top, kl_bottom = output.kl_top.mean(), output.kl_bottom.mean()
    loss = recon + top_weight * recon_top + beta * (kl_top + kl_bottom)
    return {
        "loss": loss,
        "reconstruction": recon,
        "reconstruction_top": recon_top,
        "kl_top": kl_top,
        "kl_bottom": kl_bottom,
    }
