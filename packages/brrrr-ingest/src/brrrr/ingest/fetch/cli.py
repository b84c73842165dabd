"""``brrrr fetch …``: download EBRAINS and OpenNeuro datasets, and the MiniVess preset.

Registered in core's ``brrrr`` command through the ``brrrr.commands`` entry point
``fetch = "brrrr.ingest.fetch.cli:fetch_app"``. Errors are
:class:`~brrrr.core.errors.BrrrrError` subclasses, which ``brrrr`` prints as one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from brrrr.ingest.fetch.http import RetryPolicy

__all__ = ["fetch_app"]

fetch_app = typer.Typer(
    name="fetch",
    help="Download datasets (EBRAINS, OpenNeuro, MiniVess): parallel, resumable, verified.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Out = Annotated[Path, typer.Argument(help="Output folder (created; resumed if it exists).")]
Include = Annotated[
    list[str] | None,
    typer.Option(
        "--include", help="Glob on file names to fetch, e.g. 'sub-*/anat/*' (repeatable)."
    ),
]
Exclude = Annotated[
    list[str] | None,
    typer.Option("--exclude", help="Glob on file names to leave out (repeatable)."),
]
Jobs = Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Parallel downloads.")]
Retries = Annotated[
    int, typer.Option("--retries", min=1, max=50, help="Attempts per request, the first included.")
]
Timeout = Annotated[float, typer.Option("--timeout", min=0.1, help="Per-request timeout, seconds.")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
Token = Annotated[
    str | None,
    typer.Option(envvar="EBRAINS_TOKEN", help="EBRAINS bearer token (controlled-access datasets)."),
]


@fetch_app.command("ebrains")
def ebrains_command(
    dataset_id: Annotated[str, typer.Argument(help="EBRAINS dataset (version) id, a UUID.")],
    out: Out,
    include: Include = None,
    exclude: Exclude = None,
    base_url: Annotated[
        str, typer.Option(help="Data-proxy API root (a local server in tests).")
    ] = "https://data-proxy.ebrains.eu/api/v1",
    token: Token = None,
    jobs: Jobs = 4,
    retries: Retries = 6,
    timeout: Timeout = 60.0,
    progress: Progress = True,
) -> None:
    """Download an EBRAINS dataset through the data-proxy."""
    from brrrr.ingest.fetch.ebrains import fetch_ebrains

    report = fetch_ebrains(
        dataset_id,
        out,
        include=include,
        exclude=exclude,
        base_url=base_url,
        token=token,
        concurrency=jobs,
        retry=RetryPolicy(attempts=retries),
        timeout_s=timeout,
        progress=progress,
    )
    typer.echo(report.summary())


@fetch_app.command("openneuro")
def openneuro_command(
    dataset_id: Annotated[str, typer.Argument(help="OpenNeuro dataset, e.g. ds004884.")],
    out: Out,
    include: Include = None,
    exclude: Exclude = None,
    root_files: Annotated[
        bool,
        typer.Option(
            "--root-files/--no-root-files",
            help="Also fetch top-level files (dataset_description.json…) whatever --include says.",
        ),
    ] = True,
    tag: Annotated[
        str | None,
        typer.Option(help="Snapshot the bucket must hold, e.g. 1.0.2 (checked against CHANGES)."),
    ] = None,
    base_url: Annotated[
        str, typer.Option(help="The bucket's URL (a local server in tests).")
    ] = "https://s3.amazonaws.com/openneuro.org",
    jobs: Jobs = 4,
    retries: Retries = 6,
    timeout: Timeout = 60.0,
    progress: Progress = True,
) -> None:
    """Download an OpenNeuro dataset from its public S3 bucket."""
    from brrrr.ingest.fetch.openneuro import fetch_openneuro

    report = fetch_openneuro(
        dataset_id,
        out,
        include=include,
        exclude=exclude,
        with_root_files=root_files,
        tag=tag,
        base_url=base_url,
        concurrency=jobs,
        retry=RetryPolicy(attempts=retries),
        timeout_s=timeout,
        progress=progress,
    )
    typer.echo(report.summary())


@fetch_app.command("minivess")
def minivess_command(
    out: Out,
    zip_path: Annotated[
        Path | None,
        typer.Option(
            "--zip", exists=True, dir_okay=False, help="The dataset's EBRAINS ZIP: no download."
        ),
    ] = None,
    expected_volumes: Annotated[
        int, typer.Option(min=0, help="Volumes a complete copy has (0: whatever the source has).")
    ] = 70,
    base_url: Annotated[
        str, typer.Option(help="Data-proxy API root (a local server in tests).")
    ] = "https://data-proxy.ebrains.eu/api/v1",
    token: Token = None,
    jobs: Jobs = 4,
    retries: Retries = 6,
    timeout: Timeout = 60.0,
    progress: Progress = True,
) -> None:
    """MiniVess (EBRAINS bf268b89…) as imagesTr/, labelsTr/, metadata/; idempotent."""
    from brrrr.ingest.fetch.minivess import fetch_minivess

    result = fetch_minivess(
        out,
        zip_path=zip_path,
        expected_volumes=expected_volumes or None,
        base_url=base_url,
        token=token,
        concurrency=jobs,
        retry=RetryPolicy(attempts=retries),
        timeout_s=timeout,
        progress=progress,
    )
    detail = f"; {result.fetched.summary()}" if result.fetched else ""
    typer.echo(f"{len(result.volumes)} volumes in {result.root} (from {result.source}){detail}")
