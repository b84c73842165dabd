"""``brrrr train vae|hvae|pointvae --config FILE``, ``brrrr train lesion`` and ``brrrr generate``.

``train`` reads a run file (YAML or JSON, see :mod:`brrrr.models.training.config`); the options
override its ``output_dir`` and trainer settings. A run resumes from
``<output_dir>/checkpoints/last.ckpt`` when one exists (``--no-resume`` starts afresh).

``generate`` decodes maps from a trained model folder (``<output_dir>/model``) and writes NIfTI
files with the template's affine (``template.json`` beside the model, or ``--template``):

* from a latent: ``--latent 0.5,-1,0,...`` (or a ``.npy``/``.txt`` file of one or more rows);
* from metadata: ``--metadata n_peaks=12 --metadata year=2015`` with prior samples
  ``z ~ N(0, I)`` (``--n-samples``), standardised with the run's ``metadata.json``;
* by latent traversal: ``--traverse 0 --traverse 3 --values=-2,0,2`` (plus a PNG grid).

A PointNet++ VAE writes its points (``.csv``, MNI mm) and a Gaussian-kernel map of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from brrrr.core.cli_options import runner_options, with_options

__all__ = ["generate", "generate_maps", "train_app"]

train_app = typer.Typer(
    help="Train and score the models: atlas VAEs (maps, vae, hvae, pointvae, evaluate) and "
    "the lesion segmenter (needs the lightning extra of brrrr-models).",
    no_args_is_help=True,
)

ConfigOption = Annotated[Path, typer.Option("--config", help="Run file (.yaml or .json).")]
OutputOption = Annotated[
    Path | None, typer.Option("--output-dir", help="Run folder (overrides output_dir).")
]
StepsOption = Annotated[int | None, typer.Option(help="Optimizer steps (overrides the file).")]
EpochsOption = Annotated[int | None, typer.Option(help="Epochs (overrides the file).")]
SeedOption = Annotated[int | None, typer.Option(help="Seed (overrides the file).")]
AcceleratorOption = Annotated[str | None, typer.Option(help="auto, cpu, gpu.")]
DevicesOption = Annotated[int | None, typer.Option(help="Devices / processes.")]
StrategyOption = Annotated[str | None, typer.Option(help="auto, ddp, ...")]
ResumeOption = Annotated[bool, typer.Option(help="Resume from checkpoints/last.ckpt.")]
MetricsOption = Annotated[
    Path | None, typer.Option("--metrics", help="Also write the final metrics to this JSON file.")
]
SectionOption = Annotated[
    str | None,
    typer.Option(help="Read the run from this top-level key of the file (e.g. params.yaml's vae)."),
]


def _load_run(config_path: Path, section: str | None) -> Any:
    """The run file, or one top-level section of a larger file such as DVC's params.yaml."""
    from brrrr.models.errors import ModelConfigError
    from brrrr.models.training import load_run_config
    from brrrr.models.training.config import run_config_from_dict

    if section is None:
        return load_run_config(config_path)
    import yaml

    try:
        data = yaml.safe_load(config_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModelConfigError(f"cannot read the run file: {exc}", path=config_path) from None
    if not isinstance(data, dict) or not isinstance(data.get(section), dict):
        raise ModelConfigError(f"no run section {section!r} in the file", path=config_path)
    try:
        return run_config_from_dict(data[section])
    except ModelConfigError as exc:
        raise ModelConfigError(f"section {section!r}: {exc.message}", path=config_path) from None


def _train(
    kind: str,
    config_path: Path,
    *,
    section: str | None = None,
    metrics_path: Path | None = None,
    **overrides: Any,
) -> None:
    import dataclasses

    from brrrr.models.training import train

    config = _load_run(config_path, section)
    output_dir = overrides.pop("output_dir")
    resume = overrides.pop("resume")
    trainer = {k: v for k, v in overrides.items() if v is not None}
    config = dataclasses.replace(
        config,
        trainer=dataclasses.replace(config.trainer, **trainer),
        output_dir=str(output_dir) if output_dir is not None else config.output_dir,
    )
    result = train(kind, config, resume=resume)  # type: ignore[arg-type]
    metrics = {k: float(v) for k, v in result.trainer.callback_metrics.items()}
    if metrics_path is not None:
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    typer.echo(json.dumps({"model": str(result.model_dir), "metrics": metrics}, indent=2))


def _command(kind: str, help_text: str) -> None:
    @train_app.command(kind, help=help_text)
    def command(
        config: ConfigOption,
        section: SectionOption = None,
        output_dir: OutputOption = None,
        metrics: MetricsOption = None,
        max_steps: StepsOption = None,
        max_epochs: EpochsOption = None,
        seed: SeedOption = None,
        accelerator: AcceleratorOption = None,
        devices: DevicesOption = None,
        strategy: StrategyOption = None,
        resume: ResumeOption = True,
    ) -> None:
        _train(
            kind,
            config,
            section=section,
            metrics_path=metrics,
            output_dir=output_dir,
            max_steps=max_steps,
            max_epochs=max_epochs,
            seed=seed,
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            resume=resume,
        )


_command("vae", "Train the conditional 3D β-VAE on kernel maps.")
_command("hvae", "Train the two-level hierarchical VAE on kernel maps.")
_command("pointvae", "Train the PointNet++ conditional VAE on peak point clouds.")


@train_app.command("maps")
@with_options(
    "runner",
    runner_options("compute the maps", merged="the map cache's manifest.json"),
)
def maps(
    config: ConfigOption,
    *,
    section: SectionOption = None,
    output_dir: OutputOption = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Also write the number of maps, their size and the bytes as JSON."
        ),
    ] = None,
    runner: dict[str, Any],
) -> None:
    """Compute a run's kernel maps into its map cache (data.cache_dir) ahead of training.

    Here, as one share of a SLURM array, or on a Dask cluster; `brrrr train vae` with the
    same run file then computes none."""
    import dataclasses

    from brrrr.models.training import build_map_cache, map_cache_dir

    run = _load_run(config, section)
    if output_dir is not None:
        run = dataclasses.replace(run, output_dir=str(output_dir))
    cached = build_map_cache(run, **runner)
    folder = map_cache_dir(run)
    if cached is None:
        typer.echo(
            f"share {runner['shard_index']} of {runner['num_shards']} done in {folder}; the "
            "last share to finish writes the manifest (or run again with --merge)"
        )
        return
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    summary = {
        "maps": len(cached),
        "distinct_maps": len(set(cached.keys)),
        "voxels_per_map": int(np.size(cached[0])) if len(cached) else 0,
        "bytes": size,
        "cache_dir": str(folder),
    }
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=2) + "\n")
    typer.echo(f"{summary['maps']} maps in {folder} ({size / 1e6:.1f} MB)")


@train_app.command("evaluate")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run folder of a vae/hvae run (its output_dir).")],
    split: Annotated[str, typer.Option(help="test or val.")] = "test",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the metrics as JSON (DVC metrics).")
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write one row per held-out map (DVC plots).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the precision/recall draws.")] = 0,
) -> None:
    """Score a trained atlas run (vae, hvae) on its held-out split: the atlas metrics.

    Reconstruction r/MSE/MAE against the mean training map, calibration (ECE), latent and
    feature-space precision/recall; one CSV row per held-out map."""
    import csv

    from brrrr.models.training import evaluate_run

    if split not in ("test", "val"):
        raise typer.BadParameter("use test or val", param_hint="--split")
    result = evaluate_run(run_dir, split=split, seed=seed)  # type: ignore[arg-type]
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.metrics, indent=2, default=str) + "\n")
    if csv_out is not None:
        csv_out.parent.mkdir(parents=True, exist_ok=True)
        with csv_out.open("w", newline="") as handle:
            fields = [
                "analysis",
                "study",
                "correlation",
                "baseline_correlation",
                "mse",
                "baseline_mse",
            ]
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(result.per_map)
    model, baseline = result.metrics["reconstruction"], result.metrics["baseline"]
    typer.echo(
        f"{result.metrics['n_maps']} {split} maps: r = {model['correlation']:.3f} "
        f"(mean map {baseline['correlation']:.3f}), MSE = {model['mse']:.3g} "
        f"(mean map {baseline['mse']:.3g})"
    )


@train_app.command("lesion")
def lesion(
    out: Annotated[Path, typer.Option("--out", help="Model folder: safetensors + JSON config.")],
    recipe: Annotated[
        Path | None,
        typer.Option(help="Recipe file with model and training sections (default: shipped)."),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Optimiser steps (overrides the recipe).")
    ] = None,
    cases: Annotated[
        int | None, typer.Option(help="Synthetic training cases (overrides the recipe).")
    ] = None,
    val_cases: Annotated[
        int | None, typer.Option(help="Held-out synthetic cases (overrides the recipe).")
    ] = None,
    seed: SeedOption = None,
) -> None:
    """Train the small lesion SegResNet on synthetic DWI/ADC/FLAIR cases (CPU, seeded)."""
    from brrrr.models.segmentation.training import (
        WEIGHTS_NAME,
        load_lesion_recipe,
        train_lesion_model,
    )

    metrics = train_lesion_model(
        None if recipe is None else load_lesion_recipe(recipe),
        out=out,
        steps=steps,
        train_cases=cases,
        val_cases=val_cases,
        seed=seed,
        log=typer.echo,
    )
    held = metrics["held_out"]
    dice = f"held-out Dice {held['dice']['mean']:.3f}" if held["seeds"] else "no held-out cases"
    typer.echo(f"{dice}; wrote {out / WEIGHTS_NAME}, metrics.json and loss.csv")


def _parse_floats(text: str) -> list[float]:
    return [float(v) for v in text.replace(" ", "").split(",") if v]


def _latents(spec: str, dim: int) -> np.ndarray:
    path = Path(spec)
    if path.suffix in (".npy", ".txt") and path.exists():
        array = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
    else:
        array = np.asarray([_parse_floats(spec)])
    array = np.atleast_2d(np.asarray(array, dtype=np.float32))
    if array.shape[1] != dim:
        raise typer.BadParameter(f"the model's latent has {dim} entries, got {array.shape[1]}")
    return array


def _template_affine(model_dir: Path, template: Path | None, shape: tuple[int, ...]) -> np.ndarray:
    from brrrr.core import load_volume
    from brrrr.models.errors import ModelConfigError

    if template is not None:
        affine = np.asarray(load_volume(template).affine)
    elif (model_dir / "template.json").exists():
        saved = json.loads((model_dir / "template.json").read_text())
        affine = np.asarray(saved["affine"], dtype=np.float64)
    elif tuple(shape) == (91, 109, 91):
        from brrrr.preprocess.kernels import Template

        affine = Template.mni152(resolution_mm=2).affine
    else:
        raise ModelConfigError(
            f"no template.json beside the model and the grid {shape} is not MNI152 2 mm; "
            "pass --template",
            path=model_dir,
        )
    return affine


def generate_maps(
    model: Any,
    *,
    latents: np.ndarray | None = None,
    metadata: np.ndarray | None = None,
    n_samples: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """Decode latents (or prior samples) of a map model.

    Args:
        model: A ``BetaVAE`` or ``HierarchicalVAE``.
        latents: ``(B, L)`` latents, or ``None`` to draw ``n_samples`` from ``N(0, I)``.
        metadata: ``(M,)`` standardised metadata (NaN where unknown), or ``None``.
        n_samples: Prior samples when ``latents`` is ``None``.
        seed: Seed of the prior samples.

    Returns:
        ``(B, I, J, K)`` float32 maps.
    """
    import torch

    from brrrr.models.evaluation import decode_maps, latent_size

    config = model.config
    dim = latent_size(model)
    if latents is None:
        z = torch.randn(n_samples, dim, generator=torch.Generator().manual_seed(seed))
    else:
        z = torch.as_tensor(latents, dtype=torch.float32)
    meta = None
    if metadata is not None and config.metadata_dim > 0:
        meta = torch.as_tensor(metadata, dtype=torch.float32).reshape(1, -1).expand(len(z), -1)
    with torch.no_grad():
        mean, _ = decode_maps(model.eval(), z, metadata=meta)
    return mean[:, 0].numpy().astype(np.float32)


def generate(
    model_dir: Annotated[Path, typer.Argument(help="Trained model folder (save_pretrained).")],
    out: Annotated[Path, typer.Argument(help="Output folder for the NIfTI maps.")],
    latent: Annotated[
        str | None, typer.Option(help="Latent as 'v1,v2,...' or a .npy/.txt file of rows.")
    ] = None,
    metadata: Annotated[
        list[str] | None, typer.Option(help="Study fact NAME=VALUE (year, sample_size, n_peaks).")
    ] = None,
    traverse: Annotated[
        list[int] | None, typer.Option(help="Latent dimension to traverse (repeatable).")
    ] = None,
    values: Annotated[str, typer.Option(help="Traversal values, comma-separated.")] = "-2,-1,0,1,2",
    n_samples: Annotated[int, typer.Option(help="Prior samples without --latent.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the prior samples.")] = 0,
    template: Annotated[
        Path | None, typer.Option(help="NIfTI whose affine the maps get (default: template.json).")
    ] = None,
) -> None:
    """Generate maps from a latent, from metadata, or by latent traversal, as NIfTI files."""
    from brrrr.core import Volume, save_volume
    from brrrr.models.evaluation import (
        latent_size,
        latent_traversal,
        load_model,
        save_traversal_png,
    )
    from brrrr.models.nets import PointVAE
    from brrrr.models.training.data import MetadataTable

    model: Any = load_model(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    standardised = None
    if metadata:
        stats_path = model_dir / "metadata.json"
        if not stats_path.exists():
            raise typer.BadParameter(f"{stats_path} is missing: the model has no metadata")
        raw = {}
        for item in metadata:
            name, _, value = item.partition("=")
            raw[name.strip()] = float(value)
        standardised = MetadataTable.standardise(raw, json.loads(stats_path.read_text()))
    elif getattr(model.config, "metadata_dim", 0):
        standardised = np.full(model.config.metadata_dim, np.nan, dtype=np.float32)
    written: list[Path] = []
    if isinstance(model, PointVAE):
        written = _generate_points(
            model, out, latent, standardised, n_samples, seed, model_dir, template
        )
    elif traverse:
        import torch

        steps = _parse_floats(values)
        dim = latent_size(model)
        start = None if latent is None else torch.from_numpy(_latents(latent, dim)[0])
        meta = None if standardised is None else torch.from_numpy(standardised)
        maps = latent_traversal(model, dims=traverse, values=steps, z=start, metadata=meta)
        affine = _template_affine(model_dir, template, tuple(maps.shape[2:]))
        for r, d in enumerate(traverse):
            for c, v in enumerate(steps):
                volume = Volume(maps[r, c].numpy(), affine, metadata={"latent_dim": d, "value": v})
                written.append(save_volume(volume, out / f"traverse-z{d:02d}-{c:02d}.nii.gz"))
        written.append(save_traversal_png(maps, out / "traversal.png", dims=traverse, values=steps))
    else:
        dim = latent_size(model)
        latents = None if latent is None else _latents(latent, dim)
        samples = generate_maps(
            model, latents=latents, metadata=standardised, n_samples=n_samples, seed=seed
        )
        affine = _template_affine(model_dir, template, samples.shape[1:])
        for i, volume in enumerate(samples):
            written.append(save_volume(Volume(volume, affine), out / f"sample-{i:03d}.nii.gz"))
    typer.echo(f"wrote {len(written)} files to {out}")


def _generate_points(
    model: Any,
    out: Path,
    latent: str | None,
    metadata: np.ndarray | None,
    n_samples: int,
    seed: int,
    model_dir: Path,
    template: Path | None,
) -> list[Path]:
    import torch

    from brrrr.core import Volume, save_volume
    from brrrr.preprocess.kernels import Gaussian, PeakTable, Template, peaks_to_maps

    dim = model.config.latent_dim
    if latent is not None:
        z = torch.from_numpy(_latents(latent, dim))
    else:
        z = torch.randn(n_samples, dim, generator=torch.Generator().manual_seed(seed))
    meta = None
    if metadata is not None:
        meta = torch.from_numpy(metadata).reshape(1, -1).expand(len(z), -1)
    with torch.no_grad():
        points = model.eval().decode(z, metadata=meta).numpy()
    grid = Template.load(template) if template is not None else Template.mni152(resolution_mm=2)
    written = []
    for i, cloud in enumerate(points):
        csv_path = out / f"sample-{i:03d}.csv"
        np.savetxt(csv_path, cloud, delimiter=",", header="x,y,z", comments="", fmt="%.3f")
        table = PeakTable.from_peaks([f"sample-{i}"] * len(cloud), cloud.astype(np.float64))
        values = peaks_to_maps(table, kernel=Gaussian(fwhm_mm=12.0), template=grid)[0]
        volume = Volume(grid.unmask(values.numpy()), grid.affine)
        written += [csv_path, save_volume(volume, out / f"sample-{i:03d}.nii.gz")]
    return written


def _vessels() -> None:
    from brrrr.models.segmentation.vessels.cli import train_vessels_command

    train_app.command(
        "vessels", help="Train a MONAI vessel segmenter on a MiniVess-layout folder (Lightning)."
    )(train_vessels_command)


_vessels()
