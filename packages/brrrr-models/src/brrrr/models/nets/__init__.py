"""The networks: conditional 3D β-VAE, hierarchical VAE, PointNet++ conditional VAE."""

from brrrr.models.nets.beta_vae import BetaVAE, BetaVAEConfig, beta_vae_loss
from brrrr.models.nets.hierarchical_vae import (
    HierarchicalVAE,
    HierarchicalVAEConfig,
    HierarchicalVAEOutput,
    hierarchical_vae_loss,
)
from brrrr.models.nets.output import VAEOutput
from brrrr.models.nets.point_vae import PointVAE, PointVAEConfig, point_vae_loss

__all__ = [
    "BetaVAE",
    "BetaVAEConfig",
    "HierarchicalVAE",
    "HierarchicalVAEConfig",
    "HierarchicalVAEOutput",
    "PointVAE",
    "PointVAEConfig",
    "VAEOutput",
    "beta_vae_loss",
    "hierarchical_vae_loss",
    "point_vae_loss",
]
