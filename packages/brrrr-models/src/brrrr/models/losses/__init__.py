"""Loss functions on plain tensors: KL, reconstruction NLL, masked MSE, Chamfer, Sinkhorn."""

from brrrr.models.losses.chamfer import chamfer_distance, pairwise_squared_distances
from brrrr.models.losses.kl import kl_normal, kl_standard_normal
from brrrr.models.losses.masked import masked_mse
from brrrr.models.losses.reconstruction import detached_variance_nll, gaussian_nll
from brrrr.models.losses.sinkhorn import sinkhorn_divergence, uniform_weights

__all__ = [
    "chamfer_distance",
    "detached_variance_nll",
    "gaussian_nll",
    "kl_normal",
    "kl_standard_normal",
    "masked_mse",
    "pairwise_squared_distances",
    "sinkhorn_divergence",
    "uniform_weights",
]
