"""Trainer settings: precision from the accelerator, CSV logs, the TensorBoard fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from brrrr.models.training import TrainerConfig, build_trainer, resolve_precision
from brrrr.models.training import trainer as trainer_module


def test_precision_follows_the_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision("cpu") == "32-true"
    assert resolve_precision("gpu", "16-mixed") == "16-mixed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto") == "bf16-mixed"
    assert resolve_precision("cuda") == "bf16-mixed"
    assert resolve_precision("cpu") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("gpu") == "16-mixed"


def test_cpu_trainer_is_fp32_deterministic_with_csv_logs_and_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(trainer_module, "tensorboard_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="brrrr.models.training"):
        trainer = build_trainer(
            TrainerConfig(
                max_steps=3, accelerator="auto", deterministic=True, checkpoint_every_n_steps=2
            ),
            output_dir=tmp_path,
        )
    assert "TensorBoard is not installed" in caplog.text
    assert trainer.precision == "32-true"
    assert isinstance(trainer.logger, CSVLogger)
    assert len(trainer.loggers) == 1
    assert torch.are_deterministic_algorithms_enabled()
    checkpoint = next(c for c in trainer.callbacks if isinstance(c, ModelCheckpoint))
    assert checkpoint.save_last
    assert checkpoint.dirpath == str(tmp_path / "checkpoints")
    torch.use_deterministic_algorithms(False)


def test_tensorboard_logger_when_installed(tmp_path: Path) -> None:
    if not trainer_module.tensorboard_available():
        pytest.skip("tensorboard is not installed")
    trainer = build_trainer(TrainerConfig(max_steps=1, accelerator="cpu"), output_dir=tmp_path)
    assert len(trainer.loggers) == 2
