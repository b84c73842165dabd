"""LightningModules: each trains (loss falls on CPU), AdamW β₂ = 0.995, checkpoint round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch

from brrrr.models.training import (
    BetaVAEModule,
    HierarchicalVAEModule,
    OptimConfig,
    PointCloudDataModule,
    PointVAEModule,
    SplitConfig,
    build_module,
    run_config_from_dict,
)
from brrrr.models.training.samples import synthetic_peaks, toy_template
from brrrr.preprocess.pointclouds import save_point_clouds, to_point_clouds


@torch.no_grad()
def _loss(module: L.LightningModule, dm: L.LightningDataModule) -> float:
    module.eval()
    batches = list(dm.train_dataloader())
    losses = [float(module.compute_loss(b)["loss"].detach()) for b in batches]  # type: ignore[operator]
    module.train()
    return float(np.mean(losses))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vae", "hvae"])
def test_map_modules_lower_the_loss(
    tmp_path: Path,
    kind: str,
    tiny_maps: Any,
    tiny_map_model: dict[str, Any],
    tiny_hierarchical_config: Any,
    fit_cpu: Any,
) -> None:
    dm = tiny_maps(tmp_path / "cache")
    grid = toy_template().shape
    if kind == "vae":
        module: L.LightningModule = BetaVAEModule(
            {**tiny_map_model, "grid_shape": grid, "metadata_dim": 2}, optim=OptimConfig(lr=3e-3)
        )
    else:
        module = HierarchicalVAEModule(
            tiny_hierarchical_config(grid_shape=grid, channels=(8, 8, 8), metadata_dim=2),
            optim=OptimConfig(lr=3e-3),
        )
    before = _loss(module, dm)
    fit_cpu(module, dm, 10)
    assert _loss(module, dm) < before


def test_point_module_lowers_the_loss(tmp_path: Path, tiny_point_config: Any, fit_cpu: Any) -> None:
    peaks, groups = synthetic_peaks(n_studies=8, analyses_per_study=1)
    save_point_clouds(to_point_clouds(peaks, n_points=12), tmp_path / "clouds")
    dm = PointCloudDataModule.from_folder(
        tmp_path / "clouds",
        groups=groups,
        split=SplitConfig(0.25, 0.0),
        batch_size=4,
        metadata=("n_peaks",),
    )
    module = PointVAEModule(
        tiny_point_config(n_points=12, metadata_dim=1), optim=OptimConfig(lr=1e-2), beta=0.01
    )
    before = _loss(module, dm)
    fit_cpu(module, dm, 15)
    assert _loss(module, dm) < before


def test_adamw_with_beta2_0995_and_no_decay_on_biases(tiny_map_model: dict[str, Any]) -> None:
    module = BetaVAEModule({**tiny_map_model, "grid_shape": (4, 4, 4), "latent_dim": 2})
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)
    decay, no_decay = optimizer.param_groups
    assert decay["betas"] == (0.9, 0.995)
    assert decay["weight_decay"] == 1e-4
    assert no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in no_decay["params"])


def test_cosine_schedule_with_warmup(tiny_map_model: dict[str, Any]) -> None:
    module = BetaVAEModule(
        {**tiny_map_model, "grid_shape": (4, 4, 4), "latent_dim": 2},
        optim=OptimConfig(
            lr=1.0, warmup_steps=2, schedule="cosine", min_lr_ratio=0.1, total_steps=6
        ),
    )
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(7):
        lrs.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(lrs[:3], [0.5, 1.0, 1.0])
    np.testing.assert_allclose(lrs[6], 0.1)
    assert lrs[3] > lrs[4] > lrs[5] > lrs[6]


def test_checkpoint_rebuilds_the_module(tmp_path: Path, tiny_map_model: dict[str, Any]) -> None:
    module = BetaVAEModule({**tiny_map_model, "grid_shape": (4, 4, 4), "latent_dim": 2}, beta=2.0)
    trainer = L.Trainer(accelerator="cpu", logger=False, max_steps=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = BetaVAEModule.load_from_checkpoint(tmp_path / "m.ckpt")
    assert loaded.model.config == module.model.config
    assert loaded.beta == 2.0
    for key, value in module.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])


def test_reference_maps_come_from_the_training_split(
    tmp_path: Path, tiny_maps: Any, tiny_map_model: dict[str, Any]
) -> None:
    dm = tiny_maps(tmp_path / "cache")
    train = dm.dataset("train")
    maps = np.stack([train[i]["x"].numpy() for i in range(len(train))]).astype(np.float64)
    mean, variance = dm.voxel_statistics("train")
    np.testing.assert_allclose(mean, maps.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(variance, maps.var(axis=0), atol=1e-6)
    config = run_config_from_dict(
        {
            "model": {
                **tiny_map_model,
                "latent_dim": 2,
                "reference_maps": True,
                "decoder_output": "mean_logvar",
            }
        }
    )
    module = build_module("vae", config, dm)
    assert isinstance(module, BetaVAEModule)
    assert module.model.reference_mean is not None
    assert module.model.reference_logvar is not None
    np.testing.assert_allclose(module.model.reference_mean[0].numpy(), mean, atol=1e-6)
    floor = 0.01 * variance[:, dm.template.mask].mean()
    np.testing.assert_allclose(
        module.model.reference_logvar[0].numpy(), np.log(np.maximum(variance, floor)), rtol=1e-5
    )


def test_detached_variance_fit_trains(
    tmp_path: Path, tiny_maps: Any, tiny_map_model: dict[str, Any], fit_cpu: Any
) -> None:
    dm = tiny_maps(tmp_path / "cache")
    config = run_config_from_dict(
        {
            "model": {
                **tiny_map_model,
                "reference_maps": True,
                "decoder_output": "mean_logvar",
                "variance_gradient": "stopped",
            },
            "module": {"variance_fit": "detached"},
            "optim": {"lr": 3e-3},
        }
    )
    module = build_module("vae", config, dm)
    before = _loss(module, dm)
    fit_cpu(module, dm, 10)
    assert _loss(module, dm) < before
