"""Conditional 3D β-VAE for brain maps on the MNI152 2 mm grid.

Architecture (defaults):

* input ``(B, 1, 91, 109, 91)``, zero-padded to ``96×112×96`` (divisible by the total stride
  16; see :mod:`brrrr.models.layers.padding`), output cropped back to ``91×109×91``;
* encoder: 3×3×3 stem (16 ch) and four stages ``32, 64, 128, 256`` ch, each a strided 3×3×3
  convolution and a residual block (GroupNorm(8), SiLU, FiLM) of dilation ``1, 1, 2, 2``; the
  deepest grid is ``6×7×6``. Receptive field of one deepest unit: **249 voxels = 498 mm** at
  2 mm (:meth:`BetaVAE.receptive_field_mm`; anything over 75 voxels already spans 150 mm);
* 1×1×1 convolution to 32 ch, flatten, linear to ``(mu, logvar)`` of ``latent_dim`` (128);
* decoder: the mirror image (linear, residual blocks, nearest upsampling + conv), ending in one
  channel (mean) or two (mean and per-voxel log-variance, ``decoder_output="mean_logvar"``).
  With ``reference_maps=True`` the decoder's output is a departure from stored reference maps
  (buffers ``reference_mean`` and ``reference_logvar``, saved with the weights; set them with
  :meth:`BetaVAE.set_reference`, e.g. to the training split's voxel-wise mean and log-variance).
  A freshly built network then starts at the "mean map" prediction with per-voxel variances
  instead of at noise around zero, and training spends its steps on what the latent adds.
  With ``variance_gradient="stopped"`` the log-variance channel is the output convolution
  applied to the decoder's last features with their gradient stopped: fitting the variance
  then cannot change what the latent encodes (otherwise a cheap KL lets the latent record
  where a map is exactly zero, so that the variance can shrink there).

Conditioning (``metadata_dim > 0``): a :class:`MetadataEncoder` embeds metadata and its
missing-value mask; the embedding drives the FiLM layers of encoder *and* decoder. A
:class:`MetadataImputationHead` predicts the metadata from the encoder's flattened features
(before the latent). With ``nuisance_dim > 0`` a :class:`NuisanceAdversary` predicts the
nuisance (e.g. standardised publication year) from ``mu`` through gradient reversal.

Example:
    >>> import torch
    >>> config = BetaVAEConfig(grid_shape=(12, 14, 12), channels=(8, 8, 16), dilations=(1, 2),
    ...                        latent_dim=8, bottleneck_channels=8)
    >>> out = BetaVAE(config)(torch.randn(2, 1, 12, 14, 12))
    >>> out.reconstruction.shape, out.mu.shape, out.kl.shape
    (torch.Size([2, 1, 12, 14, 12]), torch.Size([2, 8]), torch.Size([2]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from brrrr.models.blocks.adversary import NuisanceAdversary
from brrrr.models.blocks.decoder import ResNetDecoder3d
from brrrr.models.blocks.metadata import MetadataImputationHead
from brrrr.models.errors import ModelConfigError
from brrrr.models.export import OnnxGraph, example_metadata, metadata_kwargs
from brrrr.models.hub import HubMixin
from brrrr.models.layers.gaussian import GaussianHead, reparameterize, soft_clamp
from brrrr.models.layers.padding import crop_to_shape, pad_to_multiple
from brrrr.models.losses.kl import kl_standard_normal
from brrrr.models.losses.masked import masked_mse
from brrrr.models.losses.reconstruction import detached_variance_nll, gaussian_nll
from brrrr.models.nets._trunk import ConditionedVolumeTrunk, VolumeGridConfig
from brrrr.models.nets.output import VAEOutput

__all__ = ["BetaVAE", "BetaVAEConfig", "beta_vae_loss"]


@dataclass(frozen=True)
class BetaVAEConfig(VolumeGridConfig):
    """Configuration of :class:`BetaVAE` (see the module docstring for the defaults' shapes).

    Attributes:
        grid_shape: Spatial shape of the input maps.
        in_channels: Input channels.
        channels: Stem and stage channels; each must be divisible by ``norm_groups``.
        dilations: Dilation of each stage's residual blocks.
        blocks_per_stage: Residual blocks per stage.
        bottleneck_channels: Channels before flattening into the latent heads.
        latent_dim: Latent size ``L``.
        decoder_output: ``"mean"``, or ``"mean_logvar"`` for an aleatoric decoder.
        metadata_dim: Metadata entries ``M`` (0: unconditional).
        metadata_embedding_dim: Size of the metadata embedding that drives FiLM.
        nuisance_dim: Outputs of the nuisance adversary (0: no adversary).
        adversary_scale: Gradient reversal strength.
        hidden_dim: Width of the imputation head and the adversary.
        norm_groups: GroupNorm groups.
        logvar_limit: Log-variances are soft-clamped to ``(-logvar_limit, logvar_limit)``.
        reference_maps: Add stored reference maps to the decoder's mean (and log-variance)
            output; see :meth:`BetaVAE.set_reference`.
        variance_gradient: ``"shared"``: the log-variance trains the whole decoder (and,
            through the latent, the encoder); ``"stopped"``: only the output convolution's
            log-variance filters (see the module docstring).
    """

    grid_shape: tuple[int, int, int] = (91, 109, 91)
    in_channels: int = 1
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    dilations: tuple[int, ...] = (1, 1, 2, 2)
    blocks_per_stage: int = 1
    bottleneck_channels: int = 32
    latent_dim: int = 128
    decoder_output: Literal["mean", "mean_logvar"] = "mean"
    metadata_dim: int = 0
    metadata_embedding_dim: int = 64
    nuisance_dim: int = 0
    adversary_scale: float = 1.0
    hidden_dim: int = 64
    norm_groups: int = 8
    logvar_limit: float = 10.0
    reference_maps: bool = False
    variance_gradient: Literal["shared", "stopped"] = "shared"

    def __post_init__(self) -> None:
        self.check_stages()
        bad = [c for c in (*self.channels, self.bottleneck_channels) if c % self.norm_groups]
        if bad:
            raise ModelConfigError(
                f"channels {bad} are not divisible by norm_groups={self.norm_groups}"
            )
        if self.variance_gradient not in ("shared", "stopped"):
            raise ModelConfigError(
                f"variance_gradient must be 'shared' or 'stopped', got {self.variance_gradient!r}"
            )


class BetaVAE(ConditionedVolumeTrunk, HubMixin):
    """Conditional 3D β-VAE; ``forward`` returns a :class:`VAEOutput`.

    Args:
        config: The configuration (default: :class:`BetaVAEConfig()`).
    """

    config_class = BetaVAEConfig

    def __init__(self, config: BetaVAEConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or BetaVAEConfig()
        trunk, flat = self.build_trunk(config, latent_dim=config.latent_dim)
        self.posterior = GaussianHead(
            flat, latent_dim=config.latent_dim, logvar_limit=config.logvar_limit
        )
        out_channels = config.in_channels * (2 if config.decoder_output == "mean_logvar" else 1)
        self.decoder = ResNetDecoder3d(out_channels, **trunk)
        self.imputation = (
            MetadataImputationHead(
                flat, metadata_dim=config.metadata_dim, hidden_dim=config.hidden_dim
            )
            if config.metadata_dim > 0
            else None
        )
        self.adversary = (
            NuisanceAdversary(
                config.latent_dim,
                out_dim=config.nuisance_dim,
                hidden_dim=config.hidden_dim,
                scale=config.adversary_scale,
            )
            if config.nuisance_dim > 0
            else None
        )
        self.reference_mean: torch.Tensor | None
        self.reference_logvar: torch.Tensor | None
        if config.reference_maps:
            shape = (1, config.in_channels, *config.grid_shape)
            self.register_buffer("reference_mean", torch.zeros(shape))
            self.register_buffer("reference_logvar", torch.zeros(shape))
        else:
            self.reference_mean = self.reference_logvar = None

    @torch.no_grad()
    def set_reference(self, mean: torch.Tensor, *, logvar: torch.Tensor | None = None) -> None:
        """Store the reference maps the decoder's output departs from.

        Args:
            mean: Broadcastable to ``(1, C, I, J, K)``: e.g. the training maps' voxel-wise mean.
            logvar: Broadcastable to ``(1, C, I, J, K)``: e.g. the log of their voxel-wise
                variance (aleatoric decoders); ``None`` keeps the current one.

        Raises:
            ModelConfigError: The model was built without ``reference_maps=True``.
        """
        if self.reference_mean is None or self.reference_logvar is None:
            raise ModelConfigError(
                "this BetaVAE has no reference maps; build it with reference_maps=True"
            )
        self.reference_mean.copy_(torch.broadcast_to(mean, self.reference_mean.shape))
        if logvar is not None:
            self.reference_logvar.copy_(torch.broadcast_to(logvar, self.reference_logvar.shape))

    def _features(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = self.encoder(pad_to_multiple(x, multiple=self.config.total_stride), cond)[-1]
        return self.to_bottleneck(h).flatten(start_dim=1)

    def encode(
        self,
        x: torch.Tensor,
        *,
        metadata: torch.Tensor | None = None,
        metadata_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior of the latent.

        Args:
            x: ``(B, C, I, J, K)`` maps on ``config.grid_shape``.
            metadata: ``(B, M)`` metadata, or ``None``.
            metadata_mask: ``(B, M)`` observed mask, or ``None``.

        Returns:
            ``(mu, logvar)``, each ``(B, L)``.
        """
        return self.posterior(self._features(x, self.condition(metadata, metadata_mask)))

    def decode(
        self,
        z: torch.Tensor,
        *,
        metadata: torch.Tensor | None = None,
        metadata_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode latents to maps.

        Args:
            z: ``(B, L)`` latents.
            metadata: ``(B, M)`` metadata, or ``None``.
            metadata_mask: ``(B, M)`` observed mask, or ``None``.

        Returns:
            ``(mean, logvar)``: ``(B, C, I, J, K)`` each; ``logvar`` is ``None`` unless the
            decoder is aleatoric.
        """
        return self._decode(z, self.condition(metadata, metadata_mask))

    def _decode(
        self, z: torch.Tensor, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        config = self.config
        h = self.from_latent(z).reshape(
            z.shape[0], config.bottleneck_channels, *config.bottom_shape
        )
        h = self.from_bottleneck(h)
        logvar: torch.Tensor | None
        if config.decoder_output == "mean":
            mean, logvar = self.decoder(h, cond), None
        elif config.variance_gradient == "shared":
            mean, logvar = self.decoder(h, cond).chunk(2, dim=1)
        else:
            features = self.decoder.head_features(h, cond)
            conv = self.decoder.output_conv
            weight, bias = conv.weight.split(config.in_channels), conv.bias
            biases = (None, None) if bias is None else bias.split(config.in_channels)
            mean = F.conv3d(features, weight[0], biases[0], padding=conv.padding)
            logvar = F.conv3d(features.detach(), weight[1], biases[1], padding=conv.padding)
        mean = crop_to_shape(mean, config.grid_shape, multiple=config.total_stride)
        if logvar is not None:
            logvar = crop_to_shape(logvar, config.grid_shape, multiple=config.total_stride)
        if self.reference_mean is not None and self.reference_logvar is not None:
            mean = mean + self.reference_mean
            logvar = None if logvar is None else logvar + self.reference_logvar
        return mean, None if logvar is None else soft_clamp(logvar, limit=config.logvar_limit)

    def forward(
        self,
        x: torch.Tensor,
        *,
        metadata: torch.Tensor | None = None,
        metadata_mask: torch.Tensor | None = None,
    ) -> VAEOutput:
        """Encode, sample (training mode) or take the mean (eval mode), decode.

        Args:
            x: ``(B, C, I, J, K)`` maps on ``config.grid_shape``.
            metadata: ``(B, M)`` metadata, or ``None``.
            metadata_mask: ``(B, M)`` observed mask, or ``None``.

        Returns:
            The :class:`VAEOutput`.
        """
        cond = self.condition(metadata, metadata_mask)
        features = self._features(x, cond)
        mu, logvar = self.posterior(features)
        z = reparameterize(mu, logvar) if self.training else mu
        mean, recon_logvar = self._decode(z, cond)
        return VAEOutput(
            reconstruction=mean,
            mu=mu,
            logvar=logvar,
            z=z,
            kl=kl_standard_normal(mu, logvar),
            reconstruction_logvar=recon_logvar,
            metadata_prediction=None if self.imputation is None else self.imputation(features),
            nuisance_prediction=None if self.adversary is None else self.adversary(mu),
        )

    def receptive_field_voxels(self) -> int:
        """Receptive field of one unit of the deepest encoder grid, in input voxels."""
        return self.encoder.receptive_field_voxels()

    def receptive_field_mm(self, *, spacing_mm: float = 2.0) -> float:
        """Receptive field of one unit of the deepest encoder grid, in mm.

        Args:
            spacing_mm: Voxel size of the input grid.

        Returns:
            ``receptive_field_voxels() * spacing_mm``.
        """
        return self.receptive_field_voxels() * spacing_mm

    def onnx_graphs(self, *, batch_size: int) -> list[OnnxGraph]:
        """Encoder ``(x[, metadata, metadata_mask]) → (mu, logvar)`` and decoder graphs."""
        config = self.config
        x = torch.randn(batch_size, config.in_channels, *config.grid_shape)
        z = torch.randn(batch_size, config.latent_dim)
        meta, names = example_metadata(config.metadata_dim, batch_size=batch_size)
        outputs = ("mean",) if config.decoder_output == "mean" else ("mean", "logvar")

        def encode(m: BetaVAE, x: torch.Tensor, *meta: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return m.encode(x, **metadata_kwargs(meta))

        def decode(m: BetaVAE, z: torch.Tensor, *meta: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return tuple(t for t in m.decode(z, **metadata_kwargs(meta)) if t is not None)

        return [
            OnnxGraph("encoder", encode, (x, *meta), ("x", *names), ("mu", "logvar")),
            OnnxGraph("decoder", decode, (z, *meta), ("z", *names), outputs),
        ]


def beta_vae_loss(
    output: VAEOutput,
    target: torch.Tensor,
    *,
    beta: float = 1.0,
    voxel_mask: torch.Tensor | None = None,
    metadata: torch.Tensor | None = None,
    held_out_mask: torch.Tensor | None = None,
    imputation_weight: float = 1.0,
    nuisance: torch.Tensor | None = None,
    nuisance_mask: torch.Tensor | None = None,
    adversary_weight: float = 1.0,
    variance_fit: Literal["joint", "detached"] = "joint",
    reference_logvar: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """β-VAE objective, averaged over the batch, with its terms for logging.

    ``loss = recon + beta * kl + imputation_weight * imputation + adversary_weight * adversary``.
    The adversary term is *added*: its gradient trains the adversary, and the gradient reversal
    inside the model turns it into a de-biasing gradient for the encoder.

    Args:
        output: The model's output.
        target: ``(B, C, I, J, K)`` maps the model was given.
        beta: KL weight.
        voxel_mask: Broadcastable voxel mask (e.g. a brain mask), or ``None``.
        metadata: ``(B, M)`` true metadata, for the imputation loss.
        held_out_mask: ``(B, M)`` entries hidden from the input and scored
            (see :func:`brrrr.models.blocks.hold_out_metadata`).
        imputation_weight: Weight of the imputation loss.
        nuisance: ``(B, P)`` nuisance targets (e.g. standardised year), for the adversary.
        nuisance_mask: ``(B, P)`` where the nuisance is known (``None``: where finite).
        adversary_weight: Weight of the adversary loss.
        variance_fit: For an aleatoric decoder: ``"joint"`` (the Gaussian NLL, which lets the
            variance decide how much the mean matters) or ``"detached"``
            (:func:`~brrrr.models.losses.detached_variance_nll`: the mean under
            ``reference_logvar``, the variance on the stopped mean's residuals).
        reference_logvar: Fixed log-variance of the ``"detached"`` fit (e.g. the model's
            ``reference_logvar``); ``None``: unit variance.

    Returns:
        ``{"loss", "reconstruction", "kl"}`` and, when scored, ``"imputation"``, ``"adversary"``;
        scalars.
    """
    if variance_fit not in ("joint", "detached"):
        raise ModelConfigError(f"variance_fit must be 'joint' or 'detached', got {variance_fit!r}")
    if variance_fit == "detached" and output.reconstruction_logvar is not None:
        per_sample = detached_variance_nll(
            target,
            output.reconstruction,
            logvar=output.reconstruction_logvar,
            reference_logvar=reference_logvar,
            mask=voxel_mask,
        )
    else:
        per_sample = gaussian_nll(
            target, output.reconstruction, logvar=output.reconstruction_logvar, mask=voxel_mask
        )
    recon = per_sample.mean()
    kl = output.kl.mean()
    terms = {"reconstruction": recon, "kl": kl}
    loss = recon + beta * kl
    if (
        output.metadata_prediction is not None
        and metadata is not None
        and held_out_mask is not None
    ):
        terms["imputation"] = masked_mse(output.metadata_prediction, metadata, held_out_mask)
        loss = loss + imputation_weight * terms["imputation"]
    if output.nuisance_prediction is not None and nuisance is not None:
        known = torch.isfinite(nuisance) if nuisance_mask is None else nuisance_mask
        terms["adversary"] = masked_mse(output.nuisance_prediction, nuisance, known)
        loss = loss + adversary_weight * terms["adversary"]
    return {"loss": loss, **terms}
