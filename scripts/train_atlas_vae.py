"""Train the conditional β-VAE atlas on NiMARE's shipped n-back vs flanker studyset, and evaluate.

The real data: 906 analyses (320 studies, 9492 peaks) of NiMARE's
``nback_vs_flanker_studyset_2026-07``, as Gaussian-kernel maps (FWHM 12 mm; 16 mm on the coarse
grid) in a map cache, split by *study* (train / val / test). With no arguments it runs a quick
version on 2 CPU cores in about two minutes: the 2 mm MNI grid coarsened 4× (8 mm, 23×28×23), a
small two-stage aleatoric β-VAE, 384 steps with a cyclical learning rate (one long cycle, then two
short ones restarted at a quarter of the rate) giving a 3-member snapshot ensemble. ``--full``
trains the recipe of ``packages/brrrr-models/configs/atlas_vae.yaml`` as it is: the 2 mm grid
(91×109×91), the default architecture, 3000 steps (GPU recommended). The quick run is that
recipe with the changes in ``QUICK_MODEL`` and ``QUICK_*``; ``--steps`` rescales the schedules.

What makes the quick run learn more than the average map (see ``metrics.json``):

* the decoder predicts departures from the training maps' voxel-wise mean and log-variance
  (``reference_maps``), so it starts at the mean-map prediction instead of at noise;
* the mean is fitted under the reference variance, the aleatoric variance to the residuals of
  the stopped mean (``variance_fit="detached"``) from the decoder's stopped last features
  (``variance_gradient="stopped"``). With the joint Gaussian NLL the decoder shrinks the
  variance where maps are almost always zero and leaves the mean at the average; with a shared
  gradient the latent spends its KL on recording where a map is zero, for the variance;
* β = 0.1 on the 8 mm grid: the reconstruction term sums over ~4,300 voxels there, ~50× fewer
  than on the 2 mm grid (``--full`` keeps β = 1), and β ≥ 0.3 collapses the posterior within
  a few hundred steps (validation split).

Writes to ``--out`` (default: a new temporary folder, printed at the end):
``metrics.json`` (test loss before/after training; reconstruction error of the model, the
snapshot ensemble and the mean-training-map baseline on the *test* split, and how often the
model beats the baseline; ECE of the aleatoric and the ensemble predictions; improved
precision/recall in latent space and in a fixed PCA feature space of the training maps),
``loss_curves.png``, ``calibration.png``, ``traversal.png``, ``ensemble_maps.png``, and the run
folder (checkpoints, CSV logs, ``model/``, ``snapshots/``).

    uv run python scripts/train_atlas_vae.py [--out DIR] [--full] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import lightning as L
import torch

from brrrr.models.evaluation import (
    ensemble_predict,
    latent_traversal,
    load_ensemble,
    plot_calibration,
    plot_loss_curves,
    plot_map_columns,
    save_traversal_png,
)
from brrrr.models.training import (
    RunConfig,
    VAEModule,
    build_datamodule,
    build_module,
    evaluate_run,
    load_run_config,
    train,
)

RECIPE = Path(__file__).resolve().parents[1] / "packages/brrrr-models/configs/atlas_vae.yaml"
# What the quick run changes in the recipe; everything else comes from RECIPE.
QUICK_MODEL = {
    # Two stages: the deepest grid is 6×8×6 (32 mm cells), so the latent reaches a grid on which
    # 16 mm blobs can be placed; with three stages (64 mm cells) the decoder learned to use the
    # latent only for some seeds within the quick run (validation split).
    "channels": [8, 16, 32],
    "dilations": [1, 2],
    "latent_dim": 16,
    "bottleneck_channels": 8,
    "metadata_embedding_dim": 16,
    "hidden_dim": 32,
}
QUICK_BETA = 0.1
QUICK_FWHM_MM = 16.0  # 16 mm on the 8 mm grid so a blob spans more than a voxel
QUICK_STEPS = 384


def run_config(args: argparse.Namespace, out: Path) -> RunConfig:
    """The run: ``--full`` is :data:`RECIPE` as it is; the quick run is that recipe with the
    ``QUICK_*`` changes (a smaller model, β, kernel and grid; no loader workers).

    Both take the output folder, the seed and the accelerator from ``args``; ``--steps``
    rescales the schedules (:func:`with_steps`).
    """
    config = load_run_config(RECIPE)
    if not args.full:
        config = replace(
            config,
            model={**config.model, **QUICK_MODEL},
            module={**config.module, "beta": QUICK_BETA},
            data=replace(
                config.data,
                kernel={**config.data.kernel, "fwhm_mm": QUICK_FWHM_MM},
                downsample=args.downsample,
                num_workers=0,  # 2 CPU cores: the main process reads the small maps
            ),
            kl=None if config.kl is None else replace(config.kl, beta=QUICK_BETA),
        )
    config = with_steps(
        config, args.steps or (config.trainer.max_steps if args.full else QUICK_STEPS)
    )
    return replace(
        config,
        trainer=replace(
            config.trainer, seed=args.seed, accelerator=args.accelerator, progress_bar=False
        ),
        output_dir=str(out / "run"),
    )


def with_steps(config: RunConfig, steps: int) -> RunConfig:
    """``config`` for a run of ``steps`` optimizer steps.

    The KL warm-up, the long first snapshot cycle and the checkpoint, validation and log
    intervals keep their share of the run; the short snapshot cycles share what is left.
    """
    total = config.trainer.max_steps

    def share(n: int) -> int:
        return max(1, n * steps // total) if n > 0 else n

    snapshots = config.snapshots
    if snapshots.first_cycle_steps is not None and snapshots.n_snapshots > 1:
        first = share(snapshots.first_cycle_steps)
        rest = max(1, (steps - first) // (snapshots.n_snapshots - 1))
        snapshots = replace(snapshots, first_cycle_steps=first, cycle_steps=rest)
    else:
        snapshots = replace(snapshots, cycle_steps=share(snapshots.cycle_steps))
    kl = config.kl
    if kl is not None:
        kl = replace(kl, warmup_steps=share(kl.warmup_steps))
    trainer = config.trainer
    val_every = trainer.val_every_n_steps
    return replace(
        config,
        kl=kl,
        snapshots=snapshots,
        trainer=replace(
            trainer,
            max_steps=steps,
            checkpoint_every_n_steps=share(trainer.checkpoint_every_n_steps),
            val_every_n_steps=None if val_every is None else share(val_every),
            log_every_n_steps=share(trainer.log_every_n_steps),
        ),
    )


@torch.no_grad()
def test_loss(module: VAEModule, batches: list[dict[str, torch.Tensor]]) -> float:
    """Mean loss of the test batches in eval mode (z = μ, β as during training)."""
    module.eval()
    losses = [float(module.compute_loss(b)["loss"]) for b in batches]
    return sum(losses) / len(losses)


def collate(batches: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: temp)")
    parser.add_argument(
        "--full", action="store_true", help="the recipe file as it is: 2 mm grid, 3000 steps"
    )
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps")
    parser.add_argument("--downsample", type=int, default=4, help="coarsening of the 2 mm grid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="auto", help="auto, cpu or gpu")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="lightning")
    started = time.perf_counter()
    out = args.out or Path(tempfile.mkdtemp(prefix="brrrr-atlas-"))
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(args, out)

    # Data once (NiMARE's studyset → map cache); the untrained model is the one `train` starts
    # from (same seed), so its test loss is the "before" figure.
    datamodule = build_datamodule("vae", config)
    L.seed_everything(args.seed, verbose=False)
    untrained = build_module("vae", config, datamodule)
    test_batches = list(datamodule.test_dataloader())
    before = test_loss(untrained, test_batches)
    print(
        f"data: {datamodule.split_sizes()} analyses (split by study), "
        f"grid {datamodule.template.shape}; test loss before training {before:.2f}"
    )

    result = train("vae", config, resume=False, datamodule=datamodule, enable_model_summary=False)
    module = result.module.cpu()
    after = test_loss(module, test_batches)
    test = collate(test_batches)
    mask = module.voxel_mask
    assert mask is not None
    ensemble = load_ensemble(result.snapshots) if len(result.snapshots) >= 2 else []
    # The run's atlas metrics (what `brrrr train evaluate` writes): the baseline and the PCA
    # feature space come from the training split only; every score is on the test split,
    # which no choice in this script looked at.
    evaluation = evaluate_run(result.output_dir, split="test")
    metrics, curves = evaluation.metrics, evaluation.curves
    model_r, base_r = metrics["reconstruction"], metrics["baseline"]
    metrics = {
        "studyset": "nimare nback_vs_flanker_studyset_2026-07",
        "splits": datamodule.split_sizes(),
        "grid": list(datamodule.template.shape),
        "steps": config.trainer.max_steps,
        "test_loss_before": before,
        "test_loss_after": after,
        "baseline_comparison": {
            "what": "test maps: the model's reconstruction (z = posterior mean) against "
            "predicting every map by the mean training map",
            "correlation": {"model": model_r["correlation"], "baseline": base_r["correlation"]},
            "mse": {"model": model_r["mse"], "baseline": base_r["mse"]},
            "mae": {"model": model_r["mae"], "baseline": base_r["mae"]},
            "model_better": {
                "correlation": model_r["correlation"] > base_r["correlation"],
                "mse": model_r["mse"] < base_r["mse"],
                "mae": model_r["mae"] < base_r["mae"],
            },
        },
        **metrics,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    csv = next((out / "run" / "logs").glob("version_*/metrics.csv"))
    plot_loss_curves(csv, out / "loss_curves.png")
    plot_calibration(curves, out / "calibration.png")
    plot_maps(module, test, mask=mask, ensemble=ensemble, out=out)
    print(json.dumps({k: metrics[k] for k in ("test_loss_before", "test_loss_after")}, indent=1))
    print(json.dumps(metrics["baseline_comparison"], indent=1))
    print(f"loss {before:.2f} -> {after:.2f}; metrics and plots in {out}")


@torch.no_grad()
def plot_maps(
    module: VAEModule,
    test: dict[str, torch.Tensor],
    *,
    mask: torch.Tensor,
    ensemble: list[torch.nn.Module],
    out: Path,
) -> None:
    """``traversal.png`` (the most used latent dimensions) and ``ensemble_maps.png``."""
    model = module.model
    model.eval()
    posterior = model(test["x"], metadata=test["metadata"], metadata_mask=test["metadata_mask"])
    kl_per_dim = 0.5 * (posterior.mu.square() + posterior.logvar.exp() - 1 - posterior.logvar)
    dims = kl_per_dim.mean(dim=0).argsort(descending=True)[:4].tolist()
    values = [-2.0, -1.0, 0.0, 1.0, 2.0]
    # A typical study: every standardised fact at its training mean (0), all observed.
    typical = torch.zeros(test["metadata"].shape[1])
    maps = latent_traversal(
        model, dims=dims, values=values, metadata=typical, metadata_mask=typical == 0
    )
    save_traversal_png(
        maps * mask[0], out / "traversal.png", dims=dims, values=values, view="slice"
    )
    if ensemble:
        pred = ensemble_predict(
            ensemble,
            test["x"][:4],
            metadata=test["metadata"][:4],
            metadata_mask=test["metadata_mask"][:4],
        )
        panels = {
            "test map": test["x"][:4, 0],
            "ensemble mean": pred.mean[:, 0],
            "epistemic variance": pred.epistemic_variance[:, 0],
        }
        if pred.aleatoric_variance is not None:
            panels["aleatoric variance"] = pred.aleatoric_variance[:, 0]
        plot_map_columns(
            {k: (v * mask[0]).numpy() for k, v in panels.items()},
            out / "ensemble_maps.png",
            title=f"snapshot ensemble of {len(ensemble)} (maximum-intensity projections, brain mask)",
        )


if __name__ == "__main__":
    main()
