"""Tiny configurations shared by the tests (CPU, seconds)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from brrrr.models import BetaVAEConfig, HierarchicalVAEConfig, PointVAEConfig

ConfigFactory = Callable[..., Any]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _tiny_beta_config(**overrides: object) -> BetaVAEConfig:
    """A β-VAE on an odd 11×13×11 grid (padded to 12×14×12), two stages."""
    base: dict[str, object] = {
        "grid_shape": (11, 13, 11),
        "channels": (8, 8, 16),
        "dilations": (1, 2),
        "latent_dim": 8,
        "bottleneck_channels": 8,
        "hidden_dim": 16,
        "metadata_embedding_dim": 8,
    }
    return BetaVAEConfig(**{**base, **overrides})  # type: ignore[arg-type]


def _tiny_hierarchical_config(**overrides: object) -> HierarchicalVAEConfig:
    """A hierarchical VAE on 8×8×8: bottom latent on 4×4×4, top from 2×2×2."""
    base: dict[str, object] = {
        "grid_shape": (8, 8, 8),
        "channels": (8, 16, 16),
        "dilations": (1, 1),
        "bottom_stage": 1,
        "top_latent_dim": 4,
        "bottom_latent_channels": 2,
        "bottleneck_channels": 8,
        "metadata_embedding_dim": 8,
    }
    return HierarchicalVAEConfig(**{**base, **overrides})  # type: ignore[arg-type]


def _tiny_point_config(**overrides: object) -> PointVAEConfig:
    """A PointNet++ VAE emitting 16 points from clouds of 32."""
    base: dict[str, object] = {
        "n_points": 16,
        "latent_dim": 4,
        "fourier_frequencies": 8,
        "centroids": (8, 4),
        "neighbors": (4, 4),
        "sa_channels": (16, 16),
        "global_channels": 16,
        "decoder_hidden": (16,),
        "metadata_embedding_dim": 8,
    }
    return PointVAEConfig(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def tiny_beta_config() -> ConfigFactory:
    return _tiny_beta_config


@pytest.fixture
def tiny_hierarchical_config() -> ConfigFactory:
    return _tiny_hierarchical_config


@pytest.fixture
def tiny_point_config() -> ConfigFactory:
    return _tiny_point_config
