"""A run killed mid-epoch and resumed from its last checkpoint ends with the same weights.

Both runs: CPU, fp32, ``deterministic=True``, 14 steps over epochs of 5 batches, mid-epoch
checkpoints every 3 steps, the target-KL controller and a cosine schedule (so every piece of
state matters). The interrupted run dies at the start of step 9; its ``last.ckpt`` is from step
6 (one batch into the second epoch). The resumed run must equal the uninterrupted one bit for
bit. The control tests show the check is sharp: without the loader's position, or without the
RNG states, the weights differ.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import pytest
import torch

from brrrr.models.training import (
    BetaVAEModule,
    KLConfig,
    KLController,
    MapDataModule,
    OptimConfig,
    TrainerConfig,
    build_trainer,
)
from brrrr.models.training.data import ResumableDataLoader
from brrrr.models.training.modules import VAEModule
from brrrr.models.training.samples import toy_template

STEPS, KILL_AT, EVERY = 14, 8, 3


class Tiny(NamedTuple):
    """The toy maps (``tiny_maps``) and model fields (``tiny_map_model``) of the conftest."""

    maps: Callable[..., MapDataModule]
    model: dict[str, Any]


class Killed(Exception):
    """Stands for the process dying."""


class KillAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise Killed


def _run(
    root: Path, out: str, *, kill: int | None = None, resume: bool = False, tiny: Tiny
) -> dict[str, torch.Tensor]:
    dm = tiny.maps(root / "cache")
    L.seed_everything(0, verbose=False)
    module = BetaVAEModule(
        {**tiny.model, "grid_shape": toy_template().shape, "metadata_dim": 2},
        optim=OptimConfig(lr=3e-3, warmup_steps=2, schedule="cosine"),
    )
    callbacks: list[L.Callback] = [KLController(KLConfig(mode="target", target_kl=2.0))]
    if kill is not None:
        callbacks.append(KillAt(kill))
    trainer = build_trainer(
        TrainerConfig(
            max_steps=STEPS,
            accelerator="cpu",
            deterministic=True,
            checkpoint_every_n_steps=EVERY,
            tensorboard=False,
            progress_bar=False,
        ),
        output_dir=root / out,
        callbacks=callbacks,
        enable_model_summary=False,
    )
    last = root / out / "checkpoints" / "last.ckpt"
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None)
    except Killed:
        assert trainer.global_step == kill
    return {k: v.clone() for k, v in module.model.state_dict().items()}


def _interrupted(root: Path, tiny: Tiny) -> dict[str, torch.Tensor]:
    _run(root, "b", kill=KILL_AT, tiny=tiny)
    state = torch.load(root / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 6  # mid-epoch: 5 batches per epoch
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "position": 1}
    ]
    return _run(root, "b", resume=True, tiny=tiny)


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def tiny(tiny_maps: Callable[..., MapDataModule], tiny_map_model: dict[str, Any]) -> Tiny:
    return Tiny(tiny_maps, tiny_map_model)


@pytest.mark.slow
def test_resumed_run_reaches_the_same_weights(tmp_path: Path, tiny: Tiny) -> None:
    reference = _run(tmp_path, "a", tiny=tiny)
    resumed = _interrupted(tmp_path, tiny)
    assert _equal(reference, resumed)


@pytest.mark.slow
@pytest.mark.parametrize("drop", ["loader position", "rng states"])
def test_the_check_fails_without_each_mechanism(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, drop: str, tiny: Tiny
) -> None:
    reference = _run(tmp_path, "a", tiny=tiny)
    if drop == "loader position":
        monkeypatch.setattr(ResumableDataLoader, "load_state_dict", lambda self, state: None)
    else:
        monkeypatch.setattr(VAEModule, "on_train_start", lambda self: None)
    assert not _equal(reference, _interrupted(tmp_path, tiny))
