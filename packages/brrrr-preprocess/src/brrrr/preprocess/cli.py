"""``brrrr preprocess …``: the preprocessing steps as commands (heavy imports inside each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["preprocess_app"]

preprocess_app = typer.Typer(
    help="Preprocess volumes: prepared-volume caches, microscopy preparation, controlled drift.",
    no_args_is_help=True,
)


@preprocess_app.command("microscopy")
def microscopy(
    root: Annotated[
        Path, typer.Argument(help="MiniVess-layout folder (imagesTr/labelsTr or raw/seg).")
    ],
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    spacing_um: Annotated[float, typer.Option(help="Target isotropic voxel size in µm.")] = 1.0,
    memory_budget_mb: Annotated[
        int, typer.Option(help="Largest output array allowed, in MB.")
    ] = 2048,
    over_budget: Annotated[
        str, typer.Option(help="refuse or tile a resample over budget.")
    ] = "refuse",
) -> None:
    """Resample image/label pairs to one voxel size and write a validation report."""
    from brrrr.preprocess.microscopy.dataset import prepare_dataset

    if over_budget not in ("refuse", "tile"):
        raise typer.BadParameter("use refuse or tile", param_hint="--over-budget")
    reports = prepare_dataset(
        root,
        out,
        target_spacing_um=spacing_um,
        memory_budget_bytes=memory_budget_mb * 1_000_000,
        over_budget=over_budget,  # type: ignore[arg-type]
    )
    typer.echo(f"prepared {len(reports)} volume pairs into {out}")


@preprocess_app.command("drift")
def drift(
    src: Annotated[Path, typer.Argument(help="Folder of NIfTI files (or MiniVess pairs).")],
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    kind: Annotated[str, typer.Option(help="Drift kind, e.g. brighten, darken, noise.")],
    severity: Annotated[float, typer.Option(help="Severity in [0, 1].")],
    seed: Annotated[int, typer.Option(help="Base seed.")] = 0,
    schedule: Annotated[
        str, typer.Option(help="constant, linear, exponential or step.")
    ] = "constant",
) -> None:
    """Write a drifted copy of a dataset and its JSON manifest."""
    from brrrr.preprocess.drift import DriftConfig, generate_drifted_dataset

    config = DriftConfig.from_mapping(
        {"kind": kind, "severity": severity, "seed": seed, "schedule": schedule}
    )
    manifest = generate_drifted_dataset(src, out, config)
    typer.echo(f"drifted {len(manifest.affected_files)} files; manifest in {out}")


@preprocess_app.command("cache")
def cache(
    root: Annotated[Path, typer.Argument(help="Dataset root holding raw/<study>/<image>.")],
    mode: Annotated[
        list[str],
        typer.Option(help="PATTERN=mri|ct, tried in order (study id, study/file or glob)."),
    ] = ["*=mri"],  # noqa: B006 - Typer reads the default, it is never mutated
    workers: Annotated[int, typer.Option(help="Parallel worker processes.")] = 1,
    force: Annotated[bool, typer.Option(help="Rebuild every entry.")] = False,
    shard_index: Annotated[
        int | None,
        typer.Option(
            "--shard-index",
            help="Build only this share of the images (0-based; e.g. $SLURM_ARRAY_TASK_ID). "
            "The share that finds every share finished writes cache/manifest.json.",
        ),
    ] = None,
    num_shards: Annotated[
        int | None,
        typer.Option("--num-shards", help="Number of shares (the SLURM array's size)."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Build as Dask tasks: a scheduler address (tcp://host:8786) or local:N "
            "for N local worker processes (needs the dask extra of brrrr-core)."
        ),
    ] = None,
    cluster: Annotated[
        Path | None,
        typer.Option(
            help="Start a dask-jobqueue cluster from this YAML spec (cluster: slurm|pbs, "
            "jobs, options) and build on it."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per Dask task.")] = 4,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="Only merge the share manifests of a finished sharded build into "
            "cache/manifest.json (metadata.json is not rescanned).",
        ),
    ] = False,
) -> None:
    """Scan the dataset, write metadata.json, and build (or resume) the uint8 cache:
    here, as one share of a SLURM array, or on a Dask cluster."""
    from brrrr.preprocess.neurovfm.cache import CacheManager
    from brrrr.preprocess.neurovfm.metadata import DatasetMetadata

    mapping: dict[str, str] = {}
    for item in mode:
        pattern, sep, value = item.partition("=")
        if not sep or value not in ("mri", "ct"):
            raise typer.BadParameter(
                f"{item!r}: use PATTERN=mri or PATTERN=ct", param_hint="--mode"
            )
        mapping[pattern] = value
    manager = CacheManager(root)
    if merge:
        report = manager.merge_shares()
    else:
        # Every share scans the same tree into the same bytes (written atomically).
        DatasetMetadata.from_directory(root, mapping).save(root / "metadata.json")
        report = manager.build(
            num_workers=workers,
            force=force,
            shard_index=shard_index,
            num_shards=num_shards,
            scheduler=scheduler,
            cluster_spec=cluster,
            batch_size=batch_size,
        )
    stats = manager.stats()
    where = "" if shard_index is None else f"share {shard_index} of {num_shards}: "
    typer.echo(
        f"{where}built {len(report.built)}, rebuilt {len(report.rebuilt)}, "
        f"reused {len(report.reused)}, failed {len(report.failed)}; cache holds "
        f"{stats.cached}/{stats.images} images ({stats.bytes / 1e6:.1f} MB)"
    )
    for name, error in report.failed.items():
        typer.echo(f"failed: {name}: {error}", err=True)
    if report.failed:
        raise typer.Exit(1)
