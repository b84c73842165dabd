"""KL controller (schedules, target-KL PI control) and the snapshot ensemble."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from brrrr.models.errors import ModelConfigError
from brrrr.models.evaluation import ensemble_predict, load_ensemble
from brrrr.models.training import (
    BetaVAEModule,
    KLConfig,
    KLController,
    OptimConfig,
    SnapshotConfig,
    SnapshotEnsemble,
    kl_schedule,
)
from brrrr.models.training.samples import toy_template


def test_open_loop_schedules() -> None:
    linear = KLConfig(mode="linear", beta=2.0, beta_start=0.0, warmup_steps=10)
    assert [kl_schedule(linear, t) for t in (0, 5, 10, 50)] == [0.0, 1.0, 2.0, 2.0]
    cyclical = KLConfig(mode="cyclical", beta=1.0, warmup_steps=8)
    values = [kl_schedule(cyclical, t) for t in range(10)]
    assert values[:6] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert values[8:] == [0.0, 0.25]
    assert kl_schedule(KLConfig(mode="constant", beta=3.0), 99) == 3.0


def test_target_controller_moves_beta_towards_the_target() -> None:
    config = KLConfig(mode="target", beta=1.0, target_kl=10.0, kp=0.5, ki=0.1)
    high = KLController(config)
    assert high.update(20.0) > 1.0  # KL above target: more pressure
    first = high.beta
    assert high.update(20.0) > first  # the integral keeps pushing
    low = KLController(config)
    assert low.update(2.0) < 1.0
    at = KLController(config)
    assert math.isclose(at.update(10.0), 1.0)
    bounded = KLController(KLConfig(mode="target", target_kl=1.0, kp=50.0, beta_max=4.0))
    assert bounded.update(1e6) == 4.0
    restored = KLController(config)
    restored.load_state_dict(high.state_dict())
    assert restored.beta == high.beta
    assert restored.integral == high.integral
    with pytest.raises(ModelConfigError, match="target_kl"):
        KLConfig(mode="target")


def test_snapshot_learning_rate_is_a_restarted_cosine() -> None:
    callback = SnapshotEnsemble(
        "unused", config=SnapshotConfig(n_snapshots=2, cycle_steps=4, lr_min=0.1), lr_max=1.1
    )
    lrs = [callback.learning_rate(t) for t in range(9)]
    assert lrs[0] == lrs[4] == lrs[8] == pytest.approx(1.1)
    assert lrs[2] == pytest.approx(0.6)
    assert lrs[0] > lrs[1] > lrs[2] > lrs[3] > 0.1


def test_snapshot_first_cycle_can_be_longer() -> None:
    config = SnapshotConfig(n_snapshots=3, cycle_steps=2, lr_min=0.0, first_cycle_steps=6)
    callback = SnapshotEnsemble("unused", config=config, lr_max=1.0)
    lrs = [callback.learning_rate(t) for t in range(11)]
    assert lrs[0] == lrs[6] == lrs[8] == lrs[10] == pytest.approx(1.0)
    assert lrs[3] == pytest.approx(0.5)  # half-way through the first cycle
    assert lrs[7] == pytest.approx(0.5)  # half-way through the second
    # snapshots at the end of each cycle: steps 6, 8, 10
    assert [callback._position(t) for t in (6, 8, 10)] == [(1, 0.0), (2, 0.0), (3, 0.0)]
    lower = SnapshotEnsemble(
        "unused",
        config=SnapshotConfig(
            n_snapshots=3, cycle_steps=2, lr_min=0.0, first_cycle_steps=6, restart_lr=0.2
        ),
        lr_max=1.0,
    )
    assert lower.learning_rate(0) == pytest.approx(1.0)
    assert lower.learning_rate(6) == lower.learning_rate(8) == pytest.approx(0.2)
    assert lower.learning_rate(7) == pytest.approx(0.1)


@pytest.mark.slow
def test_snapshot_ensemble_gives_k_models_and_epistemic_variance(
    tmp_path: Path, tiny_maps: Any, tiny_map_model: dict[str, Any], fit_cpu: Any
) -> None:
    dm = tiny_maps(tmp_path / "cache", n_studies=8, metadata=(), val_fraction=0.25)
    module = BetaVAEModule(
        {**tiny_map_model, "grid_shape": toy_template().shape, "decoder_output": "mean_logvar"},
        optim=OptimConfig(lr=5e-3),
    )
    snapshots = SnapshotEnsemble(
        tmp_path / "snapshots", config=SnapshotConfig(n_snapshots=3, cycle_steps=3), lr_max=5e-3
    )
    kl = KLController(KLConfig(mode="linear", beta=1.0, warmup_steps=4))
    lrs: list[float] = []

    class RecordLR(L.Callback):
        def on_before_optimizer_step(self, trainer: L.Trainer, *args: object) -> None:
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])  # the lr the step uses

    fit_cpu(module, dm, 12, callbacks=[kl, snapshots, RecordLR()])
    assert snapshots.saved == ["snapshot-02", "snapshot-03", "snapshot-04"]  # the last K kept
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == snapshots.saved
    assert lrs[0] == pytest.approx(5e-3)
    assert lrs[3] == pytest.approx(5e-3)
    assert lrs[2] < lrs[1]
    assert module.beta == 1.0
    members = load_ensemble(tmp_path / "snapshots")
    x = torch.stack([dm.dataset("val")[i]["x"] for i in range(2)])
    prediction = ensemble_predict(members, x)
    assert prediction.mean.shape == x.shape == prediction.epistemic_variance.shape
    torch.testing.assert_close(prediction.mean, prediction.members.mean(dim=0))
    torch.testing.assert_close(
        prediction.epistemic_variance, prediction.members.var(dim=0, unbiased=False)
    )
    assert float(prediction.epistemic_variance.mean()) > 0  # the members differ
    assert prediction.aleatoric_variance is not None
    torch.testing.assert_close(
        prediction.total_variance, prediction.epistemic_variance + prediction.aleatoric_variance
    )
