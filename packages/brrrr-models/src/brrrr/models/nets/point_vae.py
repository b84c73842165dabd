"""PointNet++ conditional VAE for per-study peak coordinates (MNI mm).

Encoder: coordinates are divided by ``coordinate_scale_mm`` (100 mm) and mapped to Gaussian
random Fourier features; two :class:`SetAbstraction` layers (farthest-point sampling, ball
query, shared MLP, max-pool) and a :class:`GlobalSetAbstraction` give one vector per study,
which is joined with the metadata embedding and mapped to ``(mu, logvar)``. Padded points
(``mask`` false, e.g. ``is_real`` from :mod:`brrrr.preprocess.pointclouds`) are ignored.

Decoder: an MLP from ``[z, metadata embedding]`` to ``n_points × 3`` coordinates (mm).

Loss (:func:`point_vae_loss`): ``chamfer_weight * Chamfer + sinkhorn_weight * Sinkhorn +
beta * KL``, the point terms on coordinates in units of ``coordinate_scale_mm`` (so a
``blur`` of 0.02 is 2 mm) and only over the target's real points.

Example:
    >>> import torch
    >>> model = PointVAE(PointVAEConfig(n_points=16, latent_dim=4))
    >>> out = model(torch.randn(2, 32, 3) * 50)
    >>> out.reconstruction.shape, out.kl.shape
    (torch.Size([2, 16, 3]), torch.Size([2]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from brrrr.models.blocks.metadata import MetadataEncoder
from brrrr.models.errors import ModelConfigError
from brrrr.models.export import OnnxGraph, example_metadata, metadata_kwargs
from brrrr.models.hub import HubMixin
from brrrr.models.layers.gaussian import GaussianHead, reparameterize
from brrrr.models.losses.chamfer import chamfer_distance
from brrrr.models.losses.kl import kl_standard_normal
from brrrr.models.losses.sinkhorn import sinkhorn_divergence
from brrrr.models.nets.output import VAEOutput
from brrrr.models.pointnet.fourier import GaussianFourierFeatures
from brrrr.models.pointnet.set_abstraction import GlobalSetAbstraction, SetAbstraction

__all__ = ["PointVAE", "PointVAEConfig", "point_vae_loss"]


@dataclass(frozen=True)
class PointVAEConfig:
    """Configuration of :class:`PointVAE`.

    Attributes:
        n_points: Points the decoder emits.
        latent_dim: Latent size ``L``.
        coordinate_scale_mm: Coordinates are divided by this before encoding.
        fourier_frequencies: Random Fourier frequencies ``F`` (features: ``2F``).
        fourier_sigma: Their standard deviation, in cycles per ``coordinate_scale_mm``.
        fourier_seed: Seed of the frequency draw.
        centroids: Centroids of each set-abstraction layer.
        radii: Ball radius of each layer, in units of ``coordinate_scale_mm``.
        neighbors: Points per ball in each layer.
        sa_channels: MLP widths of each layer (one output width per layer; hidden = output).
        global_channels: Width of the global feature.
        decoder_hidden: Hidden widths of the decoder MLP.
        metadata_dim: Metadata entries ``M`` (0: unconditional).
        metadata_embedding_dim: Size of the metadata embedding.
        logvar_limit: Log-variances are soft-clamped to ``(-logvar_limit, logvar_limit)``.
    """

    n_points: int = 128
    latent_dim: int = 32
    coordinate_scale_mm: float = 100.0
    fourier_frequencies: int = 32
    fourier_sigma: float = 2.0
    fourier_seed: int = 0
    centroids: tuple[int, ...] = (64, 16)
    radii: tuple[float, ...] = (0.25, 0.5)
    neighbors: tuple[int, ...] = (16, 16)
    sa_channels: tuple[int, ...] = (64, 128)
    global_channels: int = 256
    decoder_hidden: tuple[int, ...] = (256, 256)
    metadata_dim: int = 0
    metadata_embedding_dim: int = 32
    logvar_limit: float = 10.0

    def __post_init__(self) -> None:
        lengths = {len(self.centroids), len(self.radii), len(self.neighbors), len(self.sa_channels)}
        if len(lengths) != 1:
            raise ModelConfigError(
                "centroids, radii, neighbors and sa_channels need one value per layer, got "
                f"{self.centroids}, {self.radii}, {self.neighbors}, {self.sa_channels}"
            )


class PointVAE(nn.Module, HubMixin):
    """PointNet++ conditional VAE; ``forward`` returns a :class:`VAEOutput`.

    Args:
        config: The configuration (default: :class:`PointVAEConfig()`).
    """

    config_class = PointVAEConfig

    def __init__(self, config: PointVAEConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PointVAEConfig()
        cond_dim = config.metadata_embedding_dim if config.metadata_dim > 0 else 0
        self.metadata_encoder = (
            MetadataEncoder(config.metadata_dim, embedding_dim=cond_dim) if cond_dim else None
        )
        self.fourier = GaussianFourierFeatures(
            3,
            n_frequencies=config.fourier_frequencies,
            sigma=config.fourier_sigma,
            seed=config.fourier_seed,
        )
        width = self.fourier.out_features
        self.set_abstractions = nn.ModuleList()
        for n_centroids, radius, k, out in zip(
            config.centroids, config.radii, config.neighbors, config.sa_channels, strict=True
        ):
            self.set_abstractions.append(
                SetAbstraction(
                    width,
                    n_centroids=n_centroids,
                    radius=radius,
                    n_neighbors=k,
                    mlp_channels=(out, out),
                )
            )
            width = out
        self.global_abstraction = GlobalSetAbstraction(
            width, mlp_channels=(config.global_channels,) * 2
        )
        self.posterior = GaussianHead(
            config.global_channels + cond_dim,
            latent_dim=config.latent_dim,
            logvar_limit=config.logvar_limit,
        )
        layers: list[nn.Module] = []
        width = config.latent_dim + cond_dim
        for hidden in config.decoder_hidden:
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.GELU()]
            width = hidden
        layers.append(nn.Linear(width, 3 * config.n_points))
        self.decoder = nn.Sequential(*layers)

    def condition(
        self, metadata: torch.Tensor | None, metadata_mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Embed metadata; ``None`` when the model has none.

        Args:
            metadata: ``(B, M)`` values (missing ones may be NaN).
            metadata_mask: ``(B, M)`` true where observed (``None``: where finite).

        Returns:
            ``(B, E)`` embedding or ``None``.

        Raises:
            ValueError: If the model is conditional and ``metadata`` is missing.
        """
        if self.metadata_encoder is None:
            return None
        if metadata is None:
            raise ValueError("this PointVAE is conditional: pass metadata (NaN where unknown)")
        return self.metadata_encoder(metadata, metadata_mask)

    def _encode(
        self, points: torch.Tensor, mask: torch.Tensor | None, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xyz = points / self.config.coordinate_scale_mm
        features: torch.Tensor = self.fourier(xyz)
        for layer in self.set_abstractions:
            xyz, features = layer(xyz, features, mask)
            mask = None  # centroids are always real points
        pooled = self.global_abstraction(xyz, features)
        if cond is not None:
            pooled = torch.cat([pooled, cond], dim=-1)
        return self.posterior(pooled)

    def _decode(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = z if cond is None else torch.cat([z, cond], dim=-1)
        out = self.decoder(h).reshape(z.shape[0], self.config.n_points, 3)
        return out * self.config.coordinate_scale_mm

    def encode(
        self,
        points: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        metadata: torch.Tensor | None = None,
        metadata_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior of the latent.

        Args:
            points: ``(B, N, 3)`` coordinates in mm.
            mask: ``(B, N)`` bool, true for real points (``None``: all real).
            metadata: ``(B, M)`` metadata (required when ``metadata_dim > 0``).
            metadata_mask: ``(B, M)`` observed mask.

        Returns:
            ``(mu, logvar)``, each ``(B, L)``.
        """
        return self._encode(points, mask, self.condition(metadata, metadata_mask))

    def decode(
        self,
        z: torch.Tensor,
        *,
        metadata: torch.Tensor | None = None,
        metadata_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decode latents to point sets.

        Args:
            z: ``(B, L)`` latents.
            metadata: ``(B, M)`` metadata (required when ``metadata_dim > 0``).
            metadata_mask: ``(B, M)`` observed mask.

        Returns:
            ``(B, n_points, 3)`` coordinates in mm.
        """
        return self._decode(z, self.condition(metadata, metadata_mask))

    def forward(
        self,
        points: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        metadata: torch.Tensor | None = None,
        metadata_mask: torch.Tensor | None = None,
    ) -> VAEOutput:
        """Encode, sample (training mode) or take the mean (eval mode), decode.

        Args:
            points: ``(B, N, 3)`` coordinates in mm.
            mask: ``(B, N)`` bool, true for real points.
            metadata: ``(B, M)`` metadata (required when ``metadata_dim > 0``).
            metadata_mask: ``(B, M)`` observed mask.

        Returns:
            The :class:`VAEOutput` (reconstruction ``(B, n_points, 3)`` in mm).
        """
        cond = self.condition(metadata, metadata_mask)
        mu, logvar = self._encode(points, mask, cond)
        z = reparameterize(mu, logvar) if self.training else mu
        return VAEOutput(
            reconstruction=self._decode(z, cond),
            mu=mu,
            logvar=logvar,
            z=z,
            kl=kl_standard_normal(mu, logvar),
        )

    def onnx_graphs(self, *, batch_size: int) -> list[OnnxGraph]:
        """Encoder ``(points, mask[, metadata, metadata_mask]) → (mu, logvar)``, decoder graphs."""
        config = self.config
        n_in = max(config.centroids[0], config.n_points)
        points = torch.randn(batch_size, n_in, 3) * 40.0
        mask = torch.ones(batch_size, n_in)
        mask[:, n_in // 2 + 1 :] = torch.rand(batch_size, n_in - n_in // 2 - 1).round()
        z = torch.randn(batch_size, config.latent_dim)
        meta, names = example_metadata(config.metadata_dim, batch_size=batch_size)

        def encode(
            m: PointVAE, p: torch.Tensor, k: torch.Tensor, *meta: torch.Tensor
        ) -> tuple[torch.Tensor, ...]:
            return m.encode(p, mask=k > 0.5, **metadata_kwargs(meta))

        def decode(m: PointVAE, z: torch.Tensor, *meta: torch.Tensor) -> torch.Tensor:
            return m.decode(z, **metadata_kwargs(meta))

        return [
            OnnxGraph(
                "encoder",
                encode,
                (points, mask, *meta),
                ("points", "mask", *names),
                ("mu", "logvar"),
            ),
            OnnxGraph("decoder", decode, (z, *meta), ("z", *names), ("points",)),
        ]


def point_vae_loss(
    output: VAEOutput,
    target: torch.Tensor,
    *,
    target_mask: torch.Tensor | None = None,
    coordinate_scale_mm: float = 100.0,
    chamfer_weight: float = 1.0,
    sinkhorn_weight: float = 1.0,
    blur: float = 0.02,
    beta: float = 1.0,
) -> dict[str, torch.Tensor]:
    """PointVAE objective, averaged over the batch, with its terms for logging.

    Args:
        output: The model's output (``reconstruction`` in mm).
        target: ``(B, N, 3)`` input coordinates in mm.
        target_mask: ``(B, N)`` bool, true for real points (``None``: all real).
        coordinate_scale_mm: Both sets are divided by this before the point losses.
        chamfer_weight: Weight of the masked Chamfer distance.
        sinkhorn_weight: Weight of the debiased Sinkhorn divergence.
        blur: Sinkhorn blur in units of ``coordinate_scale_mm``.
        beta: KL weight.

    Returns:
        ``{"loss", "chamfer", "sinkhorn", "kl"}`` scalars.
    """
    pred = output.reconstruction / coordinate_scale_mm
    true = target / coordinate_scale_mm
    chamfer = chamfer_distance(pred, true, y_mask=target_mask).mean()
    sinkhorn = sinkhorn_divergence(pred, true, y_mask=target_mask, blur=blur).mean()
    kl = output.kl.mean()
    loss = chamfer_weight * chamfer + sinkhorn_weight * sinkhorn + beta * kl
    return {"loss": loss, "chamfer": chamfer, "sinkhorn": sinkhorn, "kl": kl}
