"""DDP across 2 CPU processes (gloo): ranks train on disjoint studies and end identical.

Lightning's ``strategy="ddp"`` re-launches the running script for rank 1, so the training runs in
a small script started with ``subprocess`` (not inside pytest's own process), bounded by a
timeout. Each rank writes the indices it trained on and a checksum of its weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json, sys
from pathlib import Path

import lightning as L
import torch

from brrrr.models.training import (BetaVAEModule, MapDataModule, SplitConfig, TrainerConfig,
                                   build_trainer)
from brrrr.models.training.samples import synthetic_peaks, toy_template
from brrrr.preprocess.kernels import Gaussian

out = Path(sys.argv[1])
peaks, groups = synthetic_peaks(n_studies=8, analyses_per_study=2)
dm = MapDataModule.from_peaks(peaks, groups=groups, cache_dir=out / "cache",
                              kernel=Gaussian(fwhm_mm=25), template=toy_template(),
                              split=SplitConfig(0.0, 0.0), batch_size=4)
L.seed_everything(0, verbose=False)
module = BetaVAEModule({"grid_shape": toy_template().shape, "channels": (8, 8),
                        "dilations": (1,), "latent_dim": 4, "bottleneck_channels": 8})
seen = []

class Record(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        seen.extend(batch["index"].tolist())

trainer = build_trainer(TrainerConfig(max_steps=2, accelerator="cpu", devices=2, strategy="ddp",
                                      tensorboard=False, progress_bar=False,
                                      checkpoint_every_n_steps=0),
                        output_dir=out / "run", callbacks=[Record()],
                        enable_model_summary=False, limit_val_batches=0)
trainer.fit(module, datamodule=dm)
weights = torch.cat([p.detach().flatten() for p in module.model.parameters()])
(out / f"rank{trainer.global_rank}.json").write_text(json.dumps({
    "world_size": trainer.world_size, "seen": seen,
    "groups": [dm.groups[i] for i in seen],
    "checksum": float(weights.double().sum()), "norm": float(weights.double().norm()),
    "backend": str(torch.distributed.get_backend()) if torch.distributed.is_initialized() else "",
}))
"""


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    process = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in ranks)
    # 16 analyses of 8 studies, 4 per batch: 4 batches, 2 steps each rank, no repeats
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"]) == 8
    assert not set(ranks[0]["groups"]) & set(ranks[1]["groups"])  # disjoint studies
    assert ranks[0]["checksum"] == ranks[1]["checksum"]  # gradients were all-reduced
    assert ranks[0]["norm"] == ranks[1]["norm"]
