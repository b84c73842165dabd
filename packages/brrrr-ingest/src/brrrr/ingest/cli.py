"""``brrrr bids …``: convert, push, verify and validate BIDS datasets.

Registered in core's ``brrrr`` command through the ``brrrr.commands`` entry
point ``bids = "brrrr.ingest.cli:bids_app"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from brrrr.core.cli_options import command_group, runner_options, with_options

__all__ = ["bids_app"]

bids_app = command_group(
    "bids",
    help="BIDS datasets → Hugging Face datasets: a sample, convert (to-hf), push, verify, "
    "validate.",
)

Root = Annotated[
    Path, typer.Argument(help="Root of the BIDS dataset (holds dataset_description.json).")
]
LevelOpt = Annotated[
    Literal["file", "session", "subject"],
    typer.Option(help="One row per file, session or subject."),
]
ShardSize = Annotated[
    str, typer.Option("--shard-size", help="Bytes per Parquet shard, e.g. 500MB.")
]
RowGroupSize = Annotated[
    str, typer.Option("--row-group-size", help="Image bytes per row group (bounds memory).")
]
Subjects = Annotated[
    list[str] | None, typer.Option("--subject", help="Keep this subject (repeatable).")
]
Sessions = Annotated[
    list[str] | None, typer.Option("--session", help="Keep this session (repeatable).")
]
Datatypes = Annotated[
    list[str] | None, typer.Option("--datatype", help="Keep this datatype, e.g. anat (repeatable).")
]
Suffixes = Annotated[
    list[str] | None,
    typer.Option(
        "--suffix", help="Keep this suffix or modality, e.g. T1w, lesion_mask (repeatable)."
    ),
]
Derivatives = Annotated[
    bool, typer.Option("--derivatives/--no-derivatives", help="Include derivatives/*.")
]
OnErrorOpt = Annotated[
    Literal["raise", "skip"],
    typer.Option("--on-error", help="Stop at, or skip (and list), files that fail to load."),
]
CheckOpt = Annotated[
    Literal["header", "full"],
    typer.Option(help="Read headers only, or decode every image to find corrupt data."),
]


def _convert_options(
    level: LevelOpt = "file",
    shard_size: ShardSize = "500MB",
    row_group_size: RowGroupSize = "64MB",
    subject: Subjects = None,
    session: Sessions = None,
    datatype: Datatypes = None,
    suffix: Suffixes = None,
    derivatives: Derivatives = True,
    on_error: OnErrorOpt = "raise",
    check: CheckOpt = "header",
) -> dict[str, Any]:
    """The conversion options of ``to-hf`` and ``push``, as keywords of ``to_hf``."""
    from brrrr.ingest.shards import parse_size

    try:
        sizes = parse_size(shard_size), parse_size(row_group_size)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return {
        "level": level,
        "shard_bytes": sizes[0],
        "row_group_bytes": sizes[1],
        "subjects": subject or None,
        "sessions": session or None,
        "datatypes": datatype or None,
        "suffixes": suffix or None,
        "include_derivatives": derivatives,
        "on_error": on_error,
        "check": check,
    }


def _print_skipped(skipped: list[dict[str, str]]) -> None:
    if skipped:
        typer.echo(f"skipped {len(skipped)} files that failed to load:", err=True)
        for item in skipped:
            typer.echo(f"  {item['path']}: {item['reason']}", err=True)


@bids_app.command("sample")
def sample_command(
    out: Annotated[Path, typer.Argument(help="Folder to write the dataset into (new or empty).")],
    *,
    subjects: Annotated[int, typer.Option(help="Number of subjects.", min=1)] = 2,
    sessions: Annotated[int, typer.Option(help="Sessions per subject (0: none).", min=0)] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic images.")] = 0,
) -> None:
    """Write a small synthetic multi-session BIDS dataset (anat, func, dwi, lesion masks)."""
    from brrrr.core.testing import write_bids_tree

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise typer.BadParameter(f"{out} exists and is not an empty folder", param_hint="OUT")
    root = write_bids_tree(
        out,
        subjects=[f"{i:02d}" for i in range(1, subjects + 1)],
        sessions=[str(i) for i in range(1, sessions + 1)],
        seed=seed,
    )
    count = sum(1 for p in root.rglob("*.nii*") if p.is_file())
    typer.echo(f"wrote {count} images under {root}")


@bids_app.command("to-hf")
@with_options("options", _convert_options)
@with_options("runner", runner_options("write the shards", merged="manifest.json and the card"))
def to_hf_command(
    root: Root,
    out: Annotated[
        Path, typer.Argument(help="Output folder: data/*.parquet, manifest.json, README.md.")
    ],
    *,
    options: dict[str, Any],
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an earlier conversion made with other options."),
    ] = False,
    runner: dict[str, Any],
) -> None:
    """Convert a BIDS dataset to Parquet shards with a manifest and a dataset card.

    Resumable; one share of the shards per SLURM array task, or on a Dask cluster."""
    from brrrr.ingest.shards import to_hf

    merge = runner.pop("merge")
    if merge and overwrite:
        raise typer.BadParameter("--merge keeps what the shares wrote", param_hint="--overwrite")
    mode: Literal["resume", "overwrite", "merge"] = (
        "merge" if merge else "overwrite" if overwrite else "resume"
    )
    result = to_hf(root, out, mode=mode, **options, **runner)
    manifest = result.manifest
    _print_skipped(manifest.skipped)
    done = f"({len(result.written)} written, {len(result.reused)} kept from an earlier run)"
    if result.merged:
        typer.echo(f"{manifest.num_rows} rows in {manifest.num_shards} shards in {out} {done}")
    else:
        typer.echo(
            f"share {runner['shard_index']} of {runner['num_shards']}: shards "
            f"{sorted(manifest.shards)} of {manifest.num_shards} in {out} {done}; the last "
            "share to finish writes manifest.json (or run again with --merge)"
        )


@bids_app.command("push")
@with_options("options", _convert_options)
def push_command(
    root: Root,
    repo_id: Annotated[
        str, typer.Argument(help="Hub dataset repo owner/name, or file:///path for a local folder.")
    ],
    work_dir: Annotated[
        Path | None, typer.Option(help="Where shards wait for upload; reuse it to resume.")
    ] = None,
    keep: Annotated[
        Literal["manifest", "all"],
        typer.Option(help="Delete shards locally once uploaded (manifest), or keep them (all)."),
    ] = "manifest",
    commit_size: Annotated[
        str, typer.Option(help="Upload once this many bytes are ready.")
    ] = "4GB",
    private: Annotated[
        bool, typer.Option("--private", help="Create the Hub repo private.")
    ] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Convert and upload shard groups as they are written (resumable; retries rate limits)."""
    from brrrr.ingest.hub import destination_for, push

    result = push(
        root,
        destination_for(repo_id, private=private),
        work_dir=work_dir,
        keep=keep,
        commit_bytes=commit_size,
        **options,
    )
    _print_skipped(result.conversion.manifest.skipped)
    typer.echo(
        f"{result.destination}: {result.conversion.manifest.num_shards} shards "
        f"({len(result.uploaded)} uploaded by this run), README.md and manifest.json"
    )


@bids_app.command("verify")
def verify_command(
    target: Annotated[
        str, typer.Argument(help="Output folder, hf://datasets/owner/name, or owner/name.")
    ],
    source: Annotated[
        str,
        typer.Option(help="BIDS root to compare with; 'manifest' = the recorded root; 'none'."),
    ] = "manifest",
    sample: Annotated[
        int | None, typer.Option(help="Check this many embedded files (seeded) instead of all.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare an output with its manifest: files, row counts, SHA-256 of shards and embedded bytes."""
    from dataclasses import asdict

    from brrrr.ingest.verify import verify

    report = verify(target, source=source, sample=sample, seed=seed)
    if as_json:
        typer.echo(json.dumps(asdict(report) | {"ok": report.ok}, indent=2))
    else:
        typer.echo(
            f"{report.target}: {report.shards_checked} shards checked ({report.shards_hashed} hashed), "
            f"{report.files_checked} embedded files checked"
            + (f" against {report.source}" if report.source else "")
        )
        for problem in report.problems:
            typer.echo(f"  problem: {problem}")
        typer.echo("OK" if report.ok else f"{len(report.problems)} problems")
    if not report.ok:
        raise typer.Exit(1)


@bids_app.command("validate")
def validate_command(
    root: Root,
    expect: Annotated[
        str | None,
        typer.Option(help="Expect file (JSON/YAML) or preset name, e.g. ds004884."),
    ] = None,
    headers: Annotated[
        Literal["all", "none"], typer.Option(help="Check every image, or read none.")
    ] = "all",
    check: Annotated[
        Literal["header", "size", "full"],
        typer.Option(
            help="How each image is checked: its header only; also that every voxel byte the "
            "header declares is stored (a stat for .nii, one inflate for .nii.gz); or a full "
            "decode of every voxel."
        ),
    ] = "header",
    validator: Annotated[
        Literal["auto", "skip"], typer.Option(help="Run bids-validator when installed, or skip it.")
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check a BIDS dataset: counts, empty files, image checks, the BIDS validator.

    Counts of subjects, sessions and files per modality against expected numbers; empty
    files; image checks (header, size or full; the report says which ran); the BIDS
    validator when installed."""
    from brrrr.ingest.validate import validate

    if headers == "none" and check != "header":
        raise typer.BadParameter(
            "--check reads images; it needs --headers all", param_hint="--check"
        )
    report = validate(root, expect=expect, headers=headers, check=check, validator=validator)
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.to_text())
    if not report.ok:
        raise typer.Exit(1)
