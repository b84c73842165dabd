"""``brrrr segment …``: lesion segmentation commands.

``brrrr segment evaluate PRED_DIR GT_DIR [--csv PATH] [--json PATH] [--labels positive]``
scores a folder of predicted masks against a folder of ground truths with the ISLES'22
metrics (:mod:`brrrr.models.segmentation.evaluate` gives the pairing rule) and prints one
row per case and the aggregate (mean, std, median, number of cases kept).

``brrrr segment stroke --dwi DWI --adc ADC [--flair FLAIR] --out MASK [--model PATH_OR_NAME]
[--prob-out PROB] [--device cpu|cuda] [--threshold T] [--tta flip] [--register-flair]``
segments one case and writes the mask (uint8) and optionally the probability (float32), both
on the DWI grid. The default model is the shipped one, **trained on synthetic data only**
(:func:`~brrrr.models.segmentation.checkpoints.load_synthetic_lesion_model`); ``--model``
takes a weights file (with its config beside it), a network config, or an nnU-Net v2 result
folder (:func:`~brrrr.models.segmentation.checkpoints.load_segmenter`).

``brrrr segment sample OUT [--cases 3] [--seed 0]`` writes the synthetic stroke sample
(:mod:`brrrr.models.segmentation.sample`); ``brrrr segment batch IMAGES --out PRED [--model …]``
segments every ``<case>_dwi``/``<case>_adc`` (/``<case>_flair``) case of a folder into
``PRED/<case>.nii.gz``, which ``brrrr segment evaluate PRED LABELS`` scores.

Commands of the ``segment`` group are added to :data:`segment_app` in this module; they import
torch, MONAI and the models inside the command, so ``brrrr --help`` stays fast.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from brrrr.models.segmentation.evaluate import CaseResult
    from brrrr.models.segmentation.metrics import MetricSummary

__all__ = ["batch", "evaluate", "sample", "segment_app", "stroke"]

segment_app = typer.Typer(
    help="Lesion segmentation: segment stroke lesions, evaluate masks with the ISLES'22 metrics.",
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


@segment_app.command("stroke")
def stroke(
    dwi: Annotated[Path, typer.Option("--dwi", help="DWI image (b=1000); the output grid.")],
    adc: Annotated[Path, typer.Option("--adc", help="ADC map.")],
    out: Annotated[Path, typer.Option("--out", help="Write the lesion mask here (.nii.gz).")],
    flair: Annotated[
        Path | None, typer.Option("--flair", help="FLAIR image, used when the model reads it.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Weights file, network config, nnU-Net result folder or built-in name "
            "(default: synthetic-lesion, trained on synthetic data only).",
        ),
    ] = None,
    prob_out: Annotated[
        Path | None, typer.Option("--prob-out", help="Also write the lesion probability here.")
    ] = None,
    device: Annotated[str, typer.Option(help="Where the network runs: cpu, cuda, cuda:1…")] = "cpu",
    threshold: Annotated[
        float | None, typer.Option(help="Probability threshold (default: the model's).")
    ] = None,
    tta: Annotated[
        Literal["none", "flip"] | None,
        typer.Option(help="Test-time augmentation of network models (default: the model's)."),
    ] = None,
    register_flair: Annotated[
        bool,
        typer.Option(
            "--register-flair",
            help='Register the FLAIR rigidly onto the DWI first (needs "brrrr-models[registration]").',
        ),
    ] = False,
) -> None:
    """Segment an acute stroke lesion from DWI and ADC (and FLAIR); mask on the DWI grid."""
    import numpy as np

    from brrrr.core import save_volume
    from brrrr.models.segmentation.checkpoints import SYNTHETIC_LESION_MODEL, load_segmenter
    from brrrr.models.segmentation.members import NetworkSegmenter

    segmenter = load_segmenter(model, device=device)
    if tta is not None and isinstance(segmenter, NetworkSegmenter):
        segmenter = segmenter.with_options(tta=tta)
    if model is None or model == SYNTHETIC_LESION_MODEL:
        typer.echo(
            "model: synthetic-lesion (trained on synthetic data only; pass --model for real scans)",
            err=True,
        )
    inputs = {"dwi": dwi, "adc": adc, "flair": flair}
    result = segmenter.segment(
        inputs,
        threshold=threshold,
        register=("flair",) if register_flair and flair is not None else (),
    )
    written = save_volume(result.mask, out)
    voxels = int(result.mask.data.sum())
    volume_ml = voxels * float(abs(np.linalg.det(result.mask.affine[:3, :3]))) / 1000.0
    typer.echo(f"wrote {written} ({voxels} lesion voxels, {volume_ml:.2f} ml)")
    if prob_out is not None:
        typer.echo(f"wrote {save_volume(result.probability, prob_out)}")


@segment_app.command("sample")
def sample(
    out: Annotated[Path, typer.Argument(help="Folder to write the sample into.")],
    cases: Annotated[int, typer.Option(help="Number of cases.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the first case.")] = 0,
) -> None:
    """Write synthetic stroke cases (DWI, ADC, FLAIR, ground truth) to segment and score."""
    from brrrr.models.segmentation.sample import write_stroke_sample

    written = write_stroke_sample(out, cases=cases, seed=seed)
    state = "kept" if written.reused else "wrote"
    typer.echo(
        f"{state} {len(written.cases)} synthetic stroke cases in {written.root} "
        f"(images/, labels/); try: brrrr segment batch {written.images_dir} --out preds"
    )


@segment_app.command("batch")
def batch(
    images: Annotated[
        Path,
        typer.Argument(help="Folder of <case>_dwi, <case>_adc (and <case>_flair) NIfTI files."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder to write <case>.nii.gz masks into.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Weights file, network config, nnU-Net result folder or built-in name "
            "(default: synthetic-lesion, trained on synthetic data only).",
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="Where the network runs: cpu, cuda, cuda:1…")] = "cpu",
    threshold: Annotated[
        float | None, typer.Option(help="Probability threshold (default: the model's).")
    ] = None,
    tta: Annotated[
        Literal["none", "flip"] | None,
        typer.Option(help="Test-time augmentation of network models (default: the model's)."),
    ] = None,
) -> None:
    """Segment every case of a folder; masks on each case's DWI grid, named <case>.nii.gz."""
    import numpy as np

    from brrrr.core import save_volume
    from brrrr.models.segmentation.checkpoints import SYNTHETIC_LESION_MODEL, load_segmenter
    from brrrr.models.segmentation.members import NetworkSegmenter
    from brrrr.models.segmentation.sample import find_cases

    found = find_cases(images)
    segmenter = load_segmenter(model, device=device)
    if tta is not None and isinstance(segmenter, NetworkSegmenter):
        segmenter = segmenter.with_options(tta=tta)
    if model is None or model == SYNTHETIC_LESION_MODEL:
        typer.echo(
            "model: synthetic-lesion (trained on synthetic data only; pass --model for real scans)",
            err=True,
        )
    out.mkdir(parents=True, exist_ok=True)
    for case in found:
        result = segmenter.segment(dict(case.inputs()), threshold=threshold)
        written = save_volume(result.mask, out / f"{case.case_id}.nii.gz")
        voxels = int(result.mask.data.sum())
        volume_ml = voxels * float(abs(np.linalg.det(result.mask.affine[:3, :3]))) / 1000.0
        typer.echo(f"{case.case_id}: wrote {written} ({voxels} lesion voxels, {volume_ml:.2f} ml)")
    typer.echo(f"segmented {len(found)} cases into {out}")


def _vessel_commands() -> None:
    from brrrr.models.segmentation.vessels.cli import vessels_evaluate, vessels_sample

    segment_app.command("vessels-evaluate")(vessels_evaluate)
    segment_app.command("vessels-sample")(vessels_sample)


_vessel_commands()
