"""Small stateless pieces shared by the networks: padding, Gaussian heads, receptive fields."""

from brrrr.models.layers.gaussian import GaussianHead, reparameterize, soft_clamp
from brrrr.models.layers.padding import crop_to_shape, pad_to_multiple, pad_widths, padded_shape
from brrrr.models.layers.receptive_field import ConvSpec, conv_spec, receptive_field

__all__ = [
    "ConvSpec",
    "GaussianHead",
    "conv_spec",
    "crop_to_shape",
    "pad_to_multiple",
    "pad_widths",
    "padded_shape",
    "receptive_field",
    "reparameterize",
    "soft_clamp",
]
