"""Typer commands of vessel segmentation (registered in ``brrrr train`` and ``brrrr segment``).

* ``brrrr train vessels DATA_DIR --out RUN_DIR [--spacing-um 1,1,5] [--max-epochs 20]
  [--patch 64,64,16] [--memory-budget-mb 1024] [--seed 0] [--network UNet|SegResNet]``
* ``brrrr segment vessels-evaluate RUN_DIR DATA_DIR [--drift KIND ...|--drift all]
  [--severity 0.5 --severity 1] --out metrics.json``
* ``brrrr segment vessels-sample OUT [--volumes 4] [--seed 0]``: synthetic volumes in the
  MiniVess layout.

torch, MONAI and Lightning are imported inside the commands, so ``brrrr --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

__all__ = ["train_vessels_command", "vessels_evaluate", "vessels_sample"]


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise typer.BadParameter(
            f"{what} takes numbers separated by commas, got {text!r}"
        ) from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or min(values) <= 0:
        raise typer.BadParameter(f"{what} takes 1 or 3 positive numbers, got {text!r}")
    return values


def _ints(text: str, what: str) -> list[int]:
    values = _floats(text, what)
    if any(v != int(v) for v in values):
        raise typer.BadParameter(f"{what} takes whole numbers of voxels, got {text!r}")
    return [int(v) for v in values]


def _budget(megabytes: int) -> int | None:
    return None if megabytes <= 0 else int(megabytes) << 20


def train_vessels_command(
    data_dir: Annotated[
        Path, typer.Argument(help="MiniVess-layout folder (imagesTr/, labelsTr/).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder to write.")],
    spacing_um: Annotated[
        str, typer.Option(help="Voxel size (µm) the model works at: 'x,y,z' or one number.")
    ] = "1,1,5",
    max_epochs: Annotated[int, typer.Option(help="Epochs.")] = 20,
    patch: Annotated[
        str, typer.Option(help="Patch size in voxels of that grid, 'i,j,k'.")
    ] = "64,64,16",
    memory_budget_mb: Annotated[
        int, typer.Option(help="Largest array a resample builds in memory (MiB); 0: no limit.")
    ] = 1024,
    seed: Annotated[int, typer.Option(help="Seed of weights, split and patches.")] = 0,
    network: Annotated[Literal["UNet", "SegResNet"], typer.Option(help="MONAI network.")] = "UNet",
    channels: Annotated[
        str, typer.Option(help="Features per level, e.g. '16,32,64'.")
    ] = "16,32,64",
    batch_size: Annotated[int, typer.Option(help="Patches per step.")] = 2,
    samples_per_volume: Annotated[int, typer.Option(help="Patches per volume and epoch.")] = 8,
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-3,
    accelerator: Annotated[str, typer.Option(help="auto, cpu or gpu.")] = "auto",
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Train a MONAI vessel segmenter on two-photon volumes (Lightning)."""
    from brrrr.models.segmentation.vessels.training import train_vessels

    levels = [int(c) for c in channels.replace(" ", "").split(",") if c]
    result = train_vessels(
        data_dir,
        out,
        spacing_um=_floats(spacing_um, "--spacing-um"),
        patch=_ints(patch, "--patch"),
        max_epochs=max_epochs,
        memory_budget_bytes=_budget(memory_budget_mb),
        network=network,
        channels=levels,
        batch_size=batch_size,
        samples_per_volume=samples_per_volume,
        learning_rate=learning_rate,
        seed=seed,
        accelerator=accelerator,
        progress=progress,
    )
    aggregate = result.metrics["final"]["aggregate"]
    typer.echo(
        json.dumps(
            {
                "weights": str(result.weights),
                "metrics": str(result.run_dir / "metrics.json"),
                "validation": {name: value["mean"] for name, value in aggregate.items()},
            },
            indent=2,
        )
    )


def vessels_evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run folder of brrrr train vessels.")],
    data_dir: Annotated[Path, typer.Argument(help="MiniVess-layout folder with labels.")],
    out: Annotated[Path, typer.Option("--out", help="Write the metrics JSON here.")],
    drift: Annotated[
        list[str] | None,
        typer.Option(
            help="Also evaluate drifted copies of this kind (repeatable; 'all': every kind)."
        ),
    ] = None,
    severity: Annotated[
        list[float] | None,
        typer.Option(help="Drift severity in [0, 1] (repeatable; default 0.5 and 1)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the drifts.")] = 0,
    memory_budget_mb: Annotated[
        int, typer.Option(help="Largest array a resample builds in memory (MiB); 0: no limit.")
    ] = 1024,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1…")] = "cpu",
) -> None:
    """Score a vessel model (Dice, clDice, Betti errors); with --drift, on drifted copies too."""
    from brrrr.models.segmentation.vessels.evaluate import (
        DRIFT_KINDS,
        drift_table_markdown,
        evaluate_vessel_drift,
    )

    kinds: list[str] = []
    for kind in drift or []:
        kinds += list(DRIFT_KINDS) if kind == "all" else [kind]
    rows = evaluate_vessel_drift(
        run_dir,
        data_dir,
        kinds=kinds,
        severities=severity or [0.5, 1.0],
        seed=seed,
        memory_budget_bytes=_budget(memory_budget_mb),
        device=device,
    )
    document = {"run_dir": str(run_dir), "rows": [row.to_dict() for row in rows]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    typer.echo(drift_table_markdown(rows))
    typer.echo(f"wrote {out}")


def vessels_sample(
    out: Annotated[Path, typer.Argument(help="Folder to write (imagesTr/, labelsTr/, metadata/).")],
    volumes: Annotated[int, typer.Option(help="Number of volumes.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the first volume.")] = 0,
    field_um: Annotated[str, typer.Option(help="Field of view in µm, 'x,y,z'.")] = "96,96,120",
    spacing_um: Annotated[
        str | None,
        typer.Option(
            help="One voxel size (µm) for all; default: MiniVess's 0.99 and 0.62 in turn."
        ),
    ] = None,
) -> None:
    """Write synthetic two-photon vessel volumes in the MiniVess layout (synthetic data)."""
    from brrrr.models.segmentation.vessels.synthetic import (
        MINIVESS_SPACINGS_UM,
        write_synthetic_vessels,
    )

    spacings = (
        MINIVESS_SPACINGS_UM if spacing_um is None else (_floats(spacing_um, "--spacing-um"),)
    )
    ids = write_synthetic_vessels(
        out,
        volumes=volumes,
        seed=seed,
        spacings_um=spacings,
        field_um=_floats(field_um, "--field-um"),
    )
    typer.echo(f"wrote {len(ids)} synthetic volumes ({ids[0]}…{ids[-1]}) to {out}")
