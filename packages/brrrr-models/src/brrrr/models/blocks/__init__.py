"""Building blocks: FiLM, metadata embedding/imputation, gradient reversal, residual 3D blocks."""

from brrrr.models.blocks.adversary import NuisanceAdversary
from brrrr.models.blocks.decoder import ResNetDecoder3d
from brrrr.models.blocks.encoder import ResNetEncoder3d
from brrrr.models.blocks.film import FiLM
from brrrr.models.blocks.gradient_reversal import GradientReversal, gradient_reversal
from brrrr.models.blocks.metadata import (
    MetadataEncoder,
    MetadataImputationHead,
    hold_out_metadata,
)
from brrrr.models.blocks.resnet import Downsample3d, ResBlock3d, ResStage3d, Upsample3d, group_norm

__all__ = [
    "Downsample3d",
    "FiLM",
    "GradientReversal",
    "MetadataEncoder",
    "MetadataImputationHead",
    "NuisanceAdversary",
    "ResBlock3d",
    "ResNetDecoder3d",
    "ResNetEncoder3d",
    "ResStage3d",
    "Upsample3d",
    "gradient_reversal",
    "group_norm",
    "hold_out_metadata",
]
