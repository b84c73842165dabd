"""``brrrr fetch …``: download EBRAINS and OpenNeuro datasets, and the MiniVess preset.

Registered in core's ``brrrr`` command through the ``brrrr.commands`` entry point
``fetch = "brrrr.ingest.fetch.cli:fetch_app"``. Errors are
:class:`~brrrr.core.errors.BrrrrError` subclasses, which ``brrrr`` prints as one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypedDict

import typer

from brrrr.core.cli_options import command_group, with_options
from brrrr.ingest.retry import RetryPolicy

__all__ = ["fetch_app"]

fetch_app = command_group(
    "fetch",
    help="Download datasets (EBRAINS, OpenNeuro, MiniVess): parallel, resumable, verified.",
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
DataProxyUrl = Annotated[str, typer.Option(help="Data-proxy API root (a local server in tests).")]
Token = Annotated[
    str | None,
    typer.Option(envvar="EBRAINS_TOKEN", help="EBRAINS bearer token (controlled-access datasets)."),
]


class _DataProxy(TypedDict):
    base_url: str
    token: str | None


class _Transfer(TypedDict):
    concurrency: int
    retry: RetryPolicy
    timeout_s: float
    progress: bool


def _data_proxy(
    base_url: DataProxyUrl = "https://data-proxy.ebrains.eu/api/v1", token: Token = None
) -> _DataProxy:
    """The EBRAINS options of ``ebrains`` and ``minivess``, as keywords of the fetchers."""
    return {"base_url": base_url, "token": token}


def _transfer(
    jobs: Jobs = 4, retries: Retries = 6, timeout: Timeout = 60.0, progress: Progress = True
) -> _Transfer:
    """The download options every fetcher takes, as its keywords."""
    return {
        "concurrency": jobs,
        "retry": RetryPolicy(attempts=retries),
        "timeout_s": timeout,
        "progress": progress,
    }


@fetch_app.command("ebrains")
@with_options("data_proxy", _data_proxy)
@with_options("transfer", _transfer)
def ebrains_command(
    dataset_id: Annotated[str, typer.Argument(help="EBRAINS dataset (version) id, a UUID.")],
    out: Out,
    include: Include = None,
    exclude: Exclude = None,
    *,
    data_proxy: _DataProxy,
    transfer: _Transfer,
) -> None:
    """Download an EBRAINS dataset through the data-proxy."""
    from brrrr.ingest.fetch.ebrains import fetch_ebrains

    report = fetch_ebrains(
        dataset_id, out, include=include, exclude=exclude, **data_proxy, **transfer
    )
    typer.echo(report.summary())


@fetch_app.command("openneuro")
@with_options("transfer", _transfer)
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
    *,
    transfer: _Transfer,
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
        **transfer,
    )
    typer.echo(report.summary())


@fetch_app.command("minivess")
@with_options("data_proxy", _data_proxy)
@with_options("transfer", _transfer)
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
    *,
    data_proxy: _DataProxy,
    transfer: _Transfer,
) -> None:
    """MiniVess (EBRAINS bf268b89…) as imagesTr/, labelsTr/, metadata/; idempotent."""
    from brrrr.ingest.fetch.minivess import fetch_minivess

    result = fetch_minivess(
        out,
        zip_path=zip_path,
        expected_volumes=expected_volumes or None,
        **data_proxy,
        **transfer,
    )
    detail = f"; {result.fetched.summary()}" if result.fetched else ""
    typer.echo(f"{len(result.volumes)} volumes in {result.root} (from {result.source}){detail}")
