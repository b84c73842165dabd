"""Tiny configurations, data and trainers shared by the tests (CPU, seconds)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

from brrrr.models import BetaVAEConfig, HierarchicalVAEConfig, PointVAEConfig

if TYPE_CHECKING:
    from brrrr.models.training import MapDataModule

ConfigFactory = Callable[..., Any]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _config_factory(config_class: type[Any], **base: object) -> ConfigFactory:
    """A function building ``config_class`` from ``base`` updated with its keyword arguments."""

    def build(**overrides: object) -> Any:
        return config_class(**{**base, **overrides})

    return build


@pytest.fixture
def tiny_beta_config() -> ConfigFactory:
    """A β-VAE on an odd 11×13×11 grid (padded to 12×14×12), two stages."""
    return _config_factory(
        BetaVAEConfig,
        grid_shape=(11, 13, 11),
        channels=(8, 8, 16),
        dilations=(1, 2),
        latent_dim=8,
        bottleneck_channels=8,
        hidden_dim=16,
        metadata_embedding_dim=8,
    )


@pytest.fixture
def tiny_hierarchical_config() -> ConfigFactory:
    """A hierarchical VAE on 8×8×8: bottom latent on 4×4×4, top from 2×2×2."""
    return _config_factory(
        HierarchicalVAEConfig,
        grid_shape=(8, 8, 8),
        channels=(8, 16, 16),
        dilations=(1, 1),
        bottom_stage=1,
        top_latent_dim=4,
        bottom_latent_channels=2,
        bottleneck_channels=8,
        metadata_embedding_dim=8,
    )


@pytest.fixture
def tiny_point_config() -> ConfigFactory:
    """A PointNet++ VAE emitting 16 points from clouds of 32."""
    return _config_factory(
        PointVAEConfig,
        n_points=16,
        latent_dim=4,
        fourier_frequencies=8,
        centroids=(8, 4),
        neighbors=(4, 4),
        sa_channels=(16, 16),
        global_channels=16,
        decoder_hidden=(16,),
        metadata_embedding_dim=8,
    )


@pytest.fixture
def tiny_map_model() -> dict[str, Any]:
    """Fields of a one-stage β-VAE for the toy maps (``grid_shape`` and ``metadata_dim`` apart)."""
    return {
        "channels": (8, 8),
        "dilations": (1,),
        "latent_dim": 4,
        "bottleneck_channels": 8,
        "hidden_dim": 8,
        "metadata_embedding_dim": 8,
    }


@pytest.fixture
def tiny_maps() -> Callable[..., MapDataModule]:
    """A function building a map DataModule of synthetic studies (two analyses each).

    Its arguments: the map cache folder; keywords ``n_studies``, ``metadata`` and
    ``val_fraction`` (no test split). Maps of a 25 mm Gaussian on ``toy_template()``,
    batches of 4.
    """
    from brrrr.models.training import MapDataModule, SplitConfig
    from brrrr.models.training.samples import synthetic_peaks, toy_template
    from brrrr.preprocess.kernels import Gaussian

    def build(
        cache_dir: Path,
        *,
        n_studies: int = 12,
        metadata: Sequence[str] = ("year", "n_peaks"),
        val_fraction: float = 0.2,
    ) -> MapDataModule:
        peaks, groups = synthetic_peaks(n_studies=n_studies, analyses_per_study=2)
        return MapDataModule.from_peaks(
            peaks,
            groups=groups,
            cache_dir=cache_dir,
            kernel=Gaussian(fwhm_mm=25),
            template=toy_template(),
            metadata=metadata,
            split=SplitConfig(val_fraction, 0.0),
            batch_size=4,
        )

    return build


@pytest.fixture
def fit_cpu() -> Callable[..., None]:
    """A function fitting a module on CPU for ``steps`` steps: no logs, checkpoints or validation.

    Its arguments: the module, the DataModule, ``steps``; keyword ``callbacks``.
    """
    import lightning as L

    def fit(
        module: L.LightningModule,
        datamodule: L.LightningDataModule,
        steps: int,
        *,
        callbacks: Sequence[L.Callback] = (),
    ) -> None:
        L.Trainer(
            max_steps=steps,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            use_distributed_sampler=False,
            limit_val_batches=0,
            callbacks=list(callbacks),
        ).fit(module, datamodule=datamodule)

    return fit


@pytest.fixture
def peak_csv() -> Callable[[Path], Path]:
    """A function writing a peak table of 8 synthetic studies (two analyses each) to a ``.csv``.

    Columns ``id, study_id, x, y, z, year`` (year empty where unknown); returns the path.
    """
    from brrrr.models.training.samples import synthetic_peaks

    def write(path: Path) -> Path:
        peaks, groups = synthetic_peaks(n_studies=8, analyses_per_study=2)
        lines = ["id,study_id,x,y,z,year"]
        for row, (study, group) in enumerate(zip(peaks.study_ids, groups, strict=True)):
            year = "" if np.isnan(peaks.years[row]) else str(peaks.years[row])
            for x, y, z in peaks.study_peaks(row):
                lines.append(f"{study},{group},{x},{y},{z},{year}")
        path.write_text("\n".join(lines) + "\n")
        return path

    return write
