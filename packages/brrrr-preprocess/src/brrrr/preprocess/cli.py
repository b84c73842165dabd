"""``brrrr preprocess …``: the preprocessing steps as commands (heavy imports inside each)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from brrrr.core.cli_options import runner_options, with_options

__all__ = ["preprocess_app"]

preprocess_app = typer.Typer(
    help="Preprocess volumes: BIDS to a dataset root, prepared-volume caches, microscopy "
    "preparation, controlled drift.",
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
@with_options("runner", runner_options("build the cache", merged="cache/manifest.json"))
def cache(
    root: Annotated[Path, typer.Argument(help="Dataset root holding raw/<study>/<image>.")],
    *,
    mode: Annotated[
        list[str],
        typer.Option(help="PATTERN=mri|ct, tried in order (study id, study/file or glob)."),
    ] = ["*=mri"],  # noqa: B006 - Typer reads the default, it is never mutated
    workers: Annotated[int, typer.Option(help="Parallel worker processes.")] = 1,
    force: Annotated[bool, typer.Option(help="Rebuild every entry.")] = False,
    batch_size: Annotated[int, typer.Option(help="Images per Dask task.")] = 4,
    in_plane_mm: Annotated[float, typer.Option(help="Prepared voxel size within a slice.")] = 1.0,
    through_plane_mm: Annotated[
        float, typer.Option(help="Prepared voxel size across slices.")
    ] = 4.0,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the cache's counts, bytes and tokens as JSON."),
    ] = None,
    runner: dict[str, Any],
) -> None:
    """Scan the dataset, write metadata.json, and build (or resume) the uint8 cache.

    Here, as one share of a SLURM array, or on a Dask cluster."""
    from brrrr.preprocess.neurovfm.cache import CacheManager
    from brrrr.preprocess.neurovfm.metadata import DatasetMetadata
    from brrrr.preprocess.neurovfm.settings import PrepareSettings

    mapping: dict[str, str] = {}
    for item in mode:
        pattern, sep, value = item.partition("=")
        if not sep or value not in ("mri", "ct"):
            raise typer.BadParameter(
                f"{item!r}: use PATTERN=mri or PATTERN=ct", param_hint="--mode"
            )
        mapping[pattern] = value
    shard_index, num_shards = runner["shard_index"], runner["num_shards"]
    settings = PrepareSettings(in_plane_mm=in_plane_mm, through_plane_mm=through_plane_mm)
    manager = CacheManager(root, settings=settings)
    if runner["merge"]:
        report = manager.merge_shares()
    else:
        # Every share scans the same tree into the same bytes (written atomically).
        DatasetMetadata.from_directory(root, mapping).save(root / "metadata.json")
        report = manager.build(
            num_workers=workers,
            force=force,
            shard_index=shard_index,
            num_shards=num_shards,
            scheduler=runner["scheduler"],
            cluster_spec=runner["cluster_spec"],
            batch_size=batch_size,
        )
    stats = manager.stats()
    where = "" if shard_index is None else f"share {shard_index} of {num_shards}: "
    typer.echo(
        f"{where}built {len(report.built)}, rebuilt {len(report.rebuilt)}, "
        f"reused {len(report.reused)}, failed {len(report.failed)}; cache holds "
        f"{stats.cached}/{stats.images} images ({stats.bytes / 1e6:.1f} MB)"
    )
    if json_out is not None:
        from brrrr.core.files import atomic_write

        tokens = manager.token_counts()
        summary = {
            **dataclasses.asdict(stats),
            "tokens": sum(tokens.values()),
            "tokens_per_image": {
                "min": min(tokens.values(), default=0),
                "max": max(tokens.values(), default=0),
            },
        }
        json_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(json_out, (json.dumps(summary, indent=2) + "\n").encode())
    for name, error in report.failed.items():
        typer.echo(f"failed: {name}: {error}", err=True)
    if report.failed:
        raise typer.Exit(1)


@preprocess_app.command("from-bids")
def from_bids(
    bids_root: Annotated[Path, typer.Argument(help="BIDS dataset (read only).")],
    root: Annotated[Path, typer.Argument(help="Dataset root to create (raw/<study>/<image>).")],
    *,
    datatype: Annotated[
        list[str], typer.Option(help="Datatype folder to take images from (repeatable).")
    ] = ["anat"],  # noqa: B006 - Typer reads the default, it is never mutated
    link: Annotated[
        str, typer.Option(help="copy, hardlink (copies across file systems) or symlink.")
    ] = "copy",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace ROOT/raw.")] = False,
) -> None:
    """Lay a BIDS dataset out as a dataset root for `brrrr preprocess cache`.

    A study per session (sub-01_ses-1), an image per file (T1w.nii.gz)."""
    from brrrr.preprocess.neurovfm.bids_layout import layout_from_bids

    if link not in ("copy", "hardlink", "symlink"):
        raise typer.BadParameter("use copy, hardlink or symlink", param_hint="--link")
    written = layout_from_bids(
        bids_root,
        root,
        datatypes=datatype,
        link=link,  # type: ignore[arg-type]
        overwrite=overwrite,
    )
    studies = {p.parent.name for p in written}
    typer.echo(f"laid out {len(written)} images of {len(studies)} studies in {root / 'raw'}")
