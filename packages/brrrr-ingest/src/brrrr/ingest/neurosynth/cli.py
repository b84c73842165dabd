"""``brrrr neurosynth export [SOURCE] OUT``: a coordinate database as a tidy table.

Registered through the entry point
``neurosynth = "brrrr.ingest.neurosynth:neurosynth_app"``; NiMARE is imported
only when the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from brrrr.core.cli_options import command_group

__all__ = ["neurosynth_app"]

neurosynth_app = command_group(
    "neurosynth",
    help="Coordinate databases (NeuroStore, Neurosynth, NIMADS, Sleuth) → one tidy table.",
)


@neurosynth_app.command("export")
def export_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="[SOURCE] OUT",
            help="SOURCE: shipped (default), nimare:NAME, neurostore[:VER], neurosynth[:VER], "
            "neuroquery[:VER], or a file/folder. OUT: a .parquet file (or a folder with "
            "--format dataset).",
        ),
    ],
    output_format: Annotated[
        Literal["parquet", "dataset"],
        typer.Option("--format", help="A Parquet file, or a datasets.save_to_disk folder."),
    ] = "parquet",
    data_dir: Annotated[
        Path | None, typer.Option(help="Download folder of NiMARE's fetchers.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Export a coordinate database as a tidy table of foci (Parquet or a datasets folder)."""
    if len(paths) not in (1, 2):
        raise typer.BadParameter("give [SOURCE] OUT: one or two arguments")
    from brrrr.ingest.neurosynth.table import export

    source = paths[0] if len(paths) == 2 else None
    summary = export(
        source,
        paths[-1],
        output_format=output_format,
        data_dir=data_dir,
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    spaces = ", ".join(f"{k} {v}" for k, v in summary["source_spaces"].items())
    typer.echo(
        f"{summary['foci']} foci, {summary['analyses']} analyses, {summary['studies']} studies "
        f"from {summary['source']} → {summary['output']}\n"
        f"reported spaces: {spaces}; {summary['converted_tal_to_mni']} converted TAL→MNI; "
        f"{summary['not_in_mni']} left in their own space\n"
        f"{summary['outside_brain_mask']} MNI foci outside the brain mask "
        f"(kept; listed in {summary['report']})\n"
        f"{summary['analyses_with_sample_size']} of {summary['analyses_with_foci']} analyses "
        "declare a sample size"
    )
