"""``brrrr preprocess …``: the preprocessing steps as commands (heavy imports inside each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["preprocess_app"]

preprocess_app = typer.Typer(
    help="Preprocess volumes: microscopy preparation, controlled drift.",
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
    from brrrr.preprocess.microscopy import prepare_dataset

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
