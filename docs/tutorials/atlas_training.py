# ruff: noqa: E402  (a tutorial imports each tool in the cell that first uses it)
"""Tutorial: train the conditional 3D β-VAE atlas on coordinate maps, then generate maps.

Runs offline on CPU in a couple of minutes on 120 of the 320 studies of NiMARE's shipped
studyset ``nback_vs_flanker_studyset_2026-07`` and writes its figure to the output folder. The run is tiny, to show the API; it is not a useful model:

    python docs/tutorials/atlas_training.py [OUT]      # or BRRRR_TUTORIAL_OUT=OUT
"""

# %% Setup
# --8<-- [start:setup]
import os
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

OUT = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BRRRR_TUTORIAL_OUT", "tutorial-output")
)
OUT.mkdir(parents=True, exist_ok=True)
warnings.filterwarnings("ignore", module="lightning")  # notes on the tiny run's few batches
# --8<-- [end:setup]

# %% A tiny run
# --8<-- [start:config]
from brrrr.models.training import run_config_from_dict

# The sections of a run file (packages/brrrr-models/configs/atlas_vae.yaml is the full recipe).
config = run_config_from_dict(
    {
        "model": {  # a small two-stage network; the recipe's default is five stages
            "latent_dim": 8,
            "channels": [8, 16, 32],
            "dilations": [1, 2],
            "bottleneck_channels": 8,
            "metadata_embedding_dim": 8,
            "hidden_dim": 32,
            "decoder_output": "mean_logvar",  # a per-voxel variance as well as the mean
            "reference_maps": True,  # decode departures from the training maps' mean
            "variance_gradient": "stopped",
        },
        "module": {"beta": 0.1, "variance_fit": "detached"},
        "data": {
            "source": "nimare:nback_vs_flanker",  # NiMARE's shipped studyset, split by study
            "max_studies": 120,  # of its 320 studies, to keep the run short
            "kernel": {"name": "gaussian", "fwhm_mm": 16.0},
            "downsample": 4,  # the 2 mm MNI grid coarsened to 8 mm (23×28×23 voxels)
            "metadata": ["year", "sample_size", "n_peaks"],
            "batch_size": 16,
        },
        "optim": {"lr": 0.002},
        "kl": {"mode": "linear", "beta": 0.1, "warmup_steps": 30},
        "trainer": {
            "max_steps": 80,
            "accelerator": "cpu",
            "checkpoint_every_n_steps": 80,
            "val_every_n_steps": 40,
            "log_every_n_steps": 20,
            "tensorboard": False,
            "progress_bar": False,
        },
        "output_dir": str(OUT / "run"),
    }
)
# --8<-- [end:config]

# %% Train
# --8<-- [start:train]
from brrrr.models.training import train

# Builds the map cache (run/map-cache), splits by study, fits with Lightning and writes
# run/checkpoints, run/logs/version_0/metrics.csv and the final network in run/model.
result = train("vae", config, resume=False, enable_model_summary=False)
datamodule, model = result.datamodule, result.module.model.cpu().eval()
print(f"splits {datamodule.split_sizes()}, grid {datamodule.template.shape}")
print(f"model saved in {result.model_dir}")
# --8<-- [end:train]

# %% Metrics on the test split
# --8<-- [start:metrics]
from brrrr.models.training import evaluate_run

# The atlas metrics of the finished run on its held-out test studies (what
# `brrrr train evaluate OUT/run --json atlas.json` writes): the model's reconstruction against
# predicting every map by the mean training map, calibration, precision/recall.
metrics = evaluate_run(result.output_dir, split="test").metrics
for name in ("reconstruction", "baseline"):
    scores = metrics[name]
    print(
        f"{name:>14}: r = {scores['correlation']:.3f}, "
        f"MSE = {scores['mse']:.3g}, MAE = {scores['mae']:.3g}"
    )
print(f"aleatoric ECE {metrics['ece_aleatoric']:.3f} on {metrics['n_maps']} test maps")
test = next(iter(datamodule.test_dataloader()))  # one batch of held-out studies
voxel_mask = result.module.voxel_mask
# --8<-- [end:metrics]

# %% Generate a map from study facts
# --8<-- [start:generate]
from brrrr.models.evaluation import decode_maps, latent_traversal
from brrrr.models.training import MetadataTable

stats = datamodule.metadata.to_dict()  # the training split's statistics (model/metadata.json)
facts = {"year": 2015, "sample_size": 30, "n_peaks": 12}
metadata = torch.from_numpy(MetadataTable.standardise(facts, stats))[None]
z = torch.zeros(1, model.config.latent_dim)  # the prior's mean
with torch.no_grad():
    generated, _ = decode_maps(model, z, metadata=metadata)  # unknown facts: NaN
generated = generated[0, 0] * voxel_mask[0, 0]

# A latent traversal along the dimension the test maps use most (largest KL).
with torch.no_grad():
    posterior = model(test["x"], metadata=test["metadata"], metadata_mask=test["metadata_mask"])
kl = 0.5 * (posterior.mu.square() + posterior.logvar.exp() - 1 - posterior.logvar).mean(0)
dim = int(kl.argmax())
values = [-2.0, 0.0, 2.0]
traversal = latent_traversal(model, dims=[dim], values=values, metadata=metadata[0])
traversal = traversal[0] * voxel_mask[0, 0]
print(f"traversal of z[{dim}] ({float(kl[dim]):.2f} nats): {tuple(traversal.shape)} maps")
# The same from the command line:
#   brrrr generate OUT/run/model maps/ --metadata year=2015 --metadata sample_size=30
#   brrrr generate OUT/run/model maps/ --traverse 0 --values=-2,0,2
# --8<-- [end:generate]

# %% Plot over the MNI152 template
# --8<-- [start:plot]
from brrrr.core import samples

t1 = samples.mni_t1(resolution_mm=2)  # NiMARE's (or nilearn's) MNI152 T1
template = datamodule.template  # the 8 mm grid of the maps


def on_t1(grid: torch.Tensor) -> np.ndarray:
    """A map of the 8 mm grid resampled onto the 2 mm T1's grid."""
    return template.to_volume(grid.numpy()).resample(like=t1, interpolation="linear").data


maps = [("generated from the facts", on_t1(generated))]
maps += [(f"z[{dim}] = {v:+g}", on_t1(m)) for v, m in zip(values, traversal, strict=True)]
i, j, k = np.unravel_index(np.argmax(maps[0][1]), t1.shape)  # slices through the peak
vmax = max(float(m.max()) for _, m in maps)


def show(ax: plt.Axes, anatomy: np.ndarray, overlay: np.ndarray, title: str) -> None:
    ax.imshow(np.rot90(anatomy), cmap="gray")
    shown = np.ma.masked_less(np.rot90(overlay), 0.2 * vmax)  # hide the weakest fifth
    ax.imshow(shown, cmap="hot", vmin=0.2 * vmax, vmax=vmax, alpha=0.8)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


fig, axes = plt.subplots(2, 4, figsize=(13, 6.4))
volume = maps[0][1]
planes = [(np.s_[i, :, :], "sagittal"), (np.s_[:, j, :], "coronal"), (np.s_[:, :, k], "axial")]
for ax, (cut, plane) in zip(axes[0, :3], planes, strict=True):
    show(ax, t1.data[cut], volume[cut], f"{maps[0][0]}, {plane}")
for ax, (title, volume) in zip(axes[1, :3], maps[1:], strict=True):
    show(ax, t1.data[:, :, k], volume[:, :, k], f"traversal {title}, axial")

# The loss curves Lightning logged (one row per logging step; validation rows apart).
import csv

metrics_csv = sorted((result.output_dir / "logs").glob("version_*/metrics.csv"))[-1]
with metrics_csv.open() as handle:
    rows = list(csv.DictReader(handle))
for ax, key, label in ((axes[0, 3], "loss", "loss (β-weighted)"), (axes[1, 3], "kl", "KL (nats)")):
    for split, style in (("train", "-o"), ("val", "-s")):
        points = [(int(r["step"]), float(r[f"{split}/{key}"])) for r in rows if r[f"{split}/{key}"]]
        if points:
            ax.plot(*zip(*points, strict=True), style, markersize=3, label=split)
    ax.set_xlabel("step")
    ax.set_title(label, fontsize=9)
    ax.legend(fontsize=8)
fig.suptitle(
    f"Tiny β-VAE ({config.trainer.max_steps} steps on CPU): year {facts['year']}, "
    f"n = {facts['sample_size']}, {facts['n_peaks']} peaks",
    fontsize=10,
)
fig.tight_layout()
fig.savefig(OUT / "atlas_training.png", dpi=100)
# --8<-- [end:plot]
