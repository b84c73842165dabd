"""The ``brrrr`` command: a Typer app whose subcommands come from installed packages.

Each package adds commands through the entry-point group ``brrrr.commands``. An
entry point may name a function (added as a command of that name) or a
``typer.Typer`` (added as a group of subcommands), so installing
``brrrr-ingest`` adds ``brrrr bids …`` without core knowing about it:

.. code-block:: toml

    [project.entry-points."brrrr.commands"]
    bids = "brrrr.ingest.cli:bids_app"

Errors from the :class:`~brrrr.core.errors.BrrrrError` hierarchy are printed as
one line (``brrrr: error: FILE: what is wrong``) with exit code 1, never as a
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

import typer

from brrrr.core.errors import BrrrrError

__all__ = ["ENTRY_POINT_GROUP", "build_app", "main"]

ENTRY_POINT_GROUP = "brrrr.commands"


def build_app() -> typer.Typer:
    """The ``brrrr`` Typer app with every installed package's commands registered."""
    app = typer.Typer(
        name="brrrr",
        help="neuroimaging-go-brrrr: fast neuroimaging I/O, preprocessing, datasets and models.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            target = entry.load()
        except Exception as exc:  # one broken plugin must not take the whole CLI down
            print(
                f"brrrr: warning: cannot load command {entry.name!r} ({entry.value}): {exc}",
                file=sys.stderr,
            )
            continue
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=entry.name)
        elif callable(target):
            app.command(name=entry.name)(target)
        else:
            print(
                f"brrrr: warning: entry point {entry.name!r} is neither a function nor a Typer app",
                file=sys.stderr,
            )
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``brrrr`` command line (the console script's entry point)."""
    app = build_app()
    try:
        app(args=None if argv is None else list(argv), prog_name="brrrr")
    except BrrrrError as exc:
        print(f"brrrr: error: {exc}", file=sys.stderr)
        sys.exit(1)
