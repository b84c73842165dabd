"""``brrrr segment …``: lesion segmentation commands.

``brrrr segment evaluate PRED_DIR GT_DIR [--csv PATH] [--json PATH] [--labels positive]``
scores a folder of predicted masks against a folder of ground truths with the ISLES'22
metrics (:mod:`brrrr.models.segmentation.evaluate` gives the pairing rule) and prints one
row per case and the aggregate (mean, std, median, number of cases kept).

Commands of the ``segment`` group are added to :data:`segment_app` in this module.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from brrrr.models.segmentation.evaluate import CaseResult
    from brrrr.models.segmentation.metrics import MetricSummary

__all__ = ["evaluate", "segment_app"]

segment_app = typer.Typer(
    help="Lesion segmentation: evaluate masks with the ISLES'22 metrics.",
    no_args_is_help=True,
)

# Column headings of the table, by metric name.
_HEADINGS = {
    "dice": "Dice",
    "absolute_volume_difference_ml": "AVD (ml)",
    "lesion_count_difference": "ΔLesions",
    "lesion_f1": "Lesion F1",
    "hd95_mm": "HD95 (mm)",
}


def _number(value: float | int) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_table(results: list[CaseResult], summary: dict[str, MetricSummary]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ISLES'22 metrics, {len(results)} cases")
    table.add_column("case", no_wrap=True)
    for heading in _HEADINGS.values():
        table.add_column(heading, justify="right")
    for result in results:
        row = result.metrics.to_dict()
        table.add_row(result.case_id, *(_number(row[name]) for name in _HEADINGS))
    table.add_section()
    stats = [summary[name] for name in _HEADINGS]
    table.add_row("mean", *(_number(s.mean) for s in stats), style="bold")
    table.add_row("std", *(_number(s.std) for s in stats))
    table.add_row("median", *(_number(s.median) for s in stats))
    table.add_row("cases kept", *(str(s.count) for s in stats))
    Console().print(table)


@segment_app.command("evaluate")
def evaluate(
    pred_dir: Annotated[Path, typer.Argument(help="Folder of predicted masks (.nii/.nii.gz).")],
    gt_dir: Annotated[Path, typer.Argument(help="Folder of ground-truth masks.")],
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Write the per-case metrics to this CSV.")
    ] = None,
    json: Annotated[
        Path | None,
        typer.Option("--json", help="Write the cases and the aggregate to this JSON file."),
    ] = None,
    # The values of evaluate.LabelRule, spelt out so that `brrrr --help` needs no scipy.
    labels: Annotated[
        Literal["binary", "positive"],
        typer.Option(
            help="binary: masks must hold only 0 and 1; positive: every value > 0 is lesion."
        ),
    ] = "binary",
) -> None:
    """Score predicted lesion masks against ground truths (ISLES'22 rules, plus HD95)."""
    from rich.console import Console
    from rich.progress import track

    from brrrr.models.segmentation.evaluate import (
        evaluate_pair,
        pair_cases,
        write_csv,
        write_json,
    )
    from brrrr.models.segmentation.metrics import aggregate

    pairs = pair_cases(pred_dir, gt_dir)
    progress = Console(stderr=True)
    results = [
        evaluate_pair(pair, labels=labels)
        for pair in track(pairs, description="Evaluating", console=progress, transient=True)
    ]
    summary = aggregate(r.metrics for r in results)
    _print_table(results, summary)
    if csv is not None:
        typer.echo(f"wrote {write_csv(results, csv)}")
    if json is not None:
        typer.echo(f"wrote {write_json(results, summary, json)}")
