"""brrrr.models: generative atlas models (β-VAE, hierarchical VAE, PointNet++ VAE).

Subpackages:
    layers: padding to the network stride, Gaussian heads, receptive fields.
    blocks: FiLM, metadata embedding and imputation, gradient reversal, residual 3D blocks.
    pointnet: farthest-point sampling, ball query, set abstraction, random Fourier features.
    losses: KL, reconstruction NLL, masked MSE, Chamfer, Sinkhorn divergence.
    nets: the three networks and their objectives.
    training: Lightning modules, DataModules over brrrr-preprocess caches, KL controller,
        snapshot ensembles, resumable runs (extra ``brrrr-models[lightning]``; import
        ``brrrr.models.training`` explicitly).
    evaluation: reconstruction error, ECE, improved precision/recall, ensemble inference,
        latent traversals and plots.

Modules:
    export: ONNX export of encoders and decoders, checked with onnxruntime.
    hub: save/load as safetensors + JSON config, locally or on the Hugging Face Hub.
    cli: ``brrrr train vae|hvae|pointvae --config FILE`` and ``brrrr generate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from brrrr.models.export import OnnxExport, export_onnx
    from brrrr.models.hub import HubMixin
    from brrrr.models.nets import (
        BetaVAE,
        BetaVAEConfig,
        HierarchicalVAE,
        HierarchicalVAEConfig,
        HierarchicalVAEOutput,
        PointVAE,
        PointVAEConfig,
        VAEOutput,
        beta_vae_loss,
        hierarchical_vae_loss,
        point_vae_loss,
    )

__all__ = [
    "BetaVAE",
    "BetaVAEConfig",
    "HierarchicalVAE",
    "HierarchicalVAEConfig",
    "HierarchicalVAEOutput",
    "HubMixin",
    "OnnxExport",
    "PointVAE",
    "PointVAEConfig",
    "VAEOutput",
    "beta_vae_loss",
    "export_onnx",
    "hierarchical_vae_loss",
    "point_vae_loss",
]


# The public names are imported on first use (PEP 562, through lazy_loader), so that
# `brrrr --help` and every other command do not pay for importing torch through this package.
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "export": ["OnnxExport", "export_onnx"],
        "hub": ["HubMixin"],
        "nets": [name for name in __all__ if name not in ("HubMixin", "OnnxExport", "export_onnx")],
    },
)
