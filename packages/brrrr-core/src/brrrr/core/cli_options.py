"""Pieces shared by the packages' command groups (``bids``, ``fetch``, ``preprocess``, ``train``…).

Every ``brrrr`` invocation imports the command modules, so this one imports
only the standard library and Typer.

* :func:`command_group`: the ``typer.Typer`` of a group that core's ``brrrr`` registers.
* :func:`with_options`: options that several commands share, declared once in a
  function that also turns them into what the commands pass on.
* :func:`runner_options`: the distribution options of a command whose work splits into
  shares (``--shard-index/--num-shards``, ``--scheduler``, ``--cluster``, ``--merge``),
  for :mod:`brrrr.core.distributed`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

__all__ = ["command_group", "runner_options", "with_options"]

R = TypeVar("R")


def command_group(name: str, *, help: str) -> typer.Typer:
    """A group of ``brrrr`` subcommands.

    It shows its help when called without a command, and leaves errors to
    ``brrrr``, which prints :class:`~brrrr.core.errors.BrrrrError` as one line.

    Args:
        name: The group's name (``brrrr NAME …``).
        help: One line that says what the group does.

    Returns:
        The ``typer.Typer`` to add commands to.
    """
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


def with_options(
    name: str, group: Callable[..., Any]
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a command the options ``group`` declares, in place of its parameter ``name``.

    ``group``'s parameters (``Annotated`` Typer options with defaults) stand where
    ``name`` stands in the command's signature, so ``--help`` lists them there;
    the command is called with ``name=group(**those options)``. Put the decorator
    below ``@app.command(…)``; declare ``name`` keyword-only.

    Args:
        name: The command's parameter that receives ``group``'s result.
        group: Declares the shared options and turns them into one value.

    Returns:
        A decorator of commands.

    Raises:
        TypeError: The command has no parameter ``name``, or one of ``group``'s already.

    Example:
        >>> from typing import Annotated
        >>> Jobs = Annotated[int, typer.Option(help="Parallel downloads.")]
        >>> def transfer(jobs: Jobs = 4) -> dict[str, int]:
        ...     return {"concurrency": jobs}
        >>> @with_options("transfer", transfer)
        ... def command(out: str, *, transfer: dict[str, int]) -> None:
        ...     print(out, transfer)
        >>> list(inspect.signature(command).parameters)
        ['out', 'jobs']
        >>> command(out="data", jobs=8)
        data {'concurrency': 8}
    """
    shared = inspect.signature(group, eval_str=True).parameters

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        signature = inspect.signature(command, eval_str=True)
        own = signature.parameters
        if name not in own or own.keys() & shared.keys():
            raise TypeError(
                f"{command.__name__} needs a parameter {name!r} and none of {list(shared)}"
            )
        parameters: list[inspect.Parameter] = []
        for parameter in own.values():
            if parameter.name == name:
                parameters += shared.values()
            else:
                parameters.append(parameter)
        # Typer passes every value by keyword, so the kinds need not mix.
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in parameters]

        @functools.wraps(command)
        def wrapper(**values: Any) -> R:
            options = {key: values.pop(key) for key in shared}
            return command(**values, **{name: group(**options)})

        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {
            "return": signature.return_annotation
        }
        return wrapper

    return decorate


def runner_options(work: str, *, merged: str) -> Callable[..., dict[str, Any]]:
    """The options that split a command's work over a SLURM array or a Dask cluster.

    Use with :func:`with_options`; the command receives ``{"shard_index", "num_shards",
    "scheduler", "cluster_spec", "merge"}`` (keywords of the builders in
    :mod:`brrrr.core.distributed`'s callers, ``merge`` a bool).

    Args:
        work: What one share does, for the help texts (``"write the shards"``).
        merged: What the last share (or ``--merge``) writes (``"manifest.json"``).

    Returns:
        The options' group function.

    Example:
        >>> @with_options("runner", runner_options("build the maps", merged="manifest.json"))
        ... def build(*, runner: dict[str, Any]) -> None:
        ...     print(runner)
        >>> build(shard_index=1, num_shards=4, scheduler=None, cluster=None, merge=False)
        {'shard_index': 1, 'num_shards': 4, 'scheduler': None, 'cluster_spec': None, 'merge': False}
    """
    declared = {
        "shard_index": (
            int | None,
            typer.Option(
                "--shard-index",
                help=f"Only this share of the work ({work}; 0-based, e.g. "
                f"$SLURM_ARRAY_TASK_ID). The share that finds every share finished writes "
                f"{merged}.",
            ),
            None,
        ),
        "num_shards": (
            int | None,
            typer.Option("--num-shards", help="Number of shares (the SLURM array's size)."),
            None,
        ),
        "scheduler": (
            str | None,
            typer.Option(
                help=f"{work.capitalize()} as Dask tasks: a scheduler address (tcp://host:8786) "
                "or local:N for N local worker processes (needs the dask extra of brrrr-core)."
            ),
            None,
        ),
        "cluster": (
            Path | None,
            typer.Option(
                help="Start a dask-jobqueue cluster from this YAML spec (cluster: slurm|pbs, "
                f"jobs, options) and {work} on it."
            ),
            None,
        ),
        "merge": (
            bool,
            typer.Option(
                "--merge",
                help=f"Only merge the share manifests of a finished sharded run into {merged}.",
            ),
            False,
        ),
    }

    def options(**values: Any) -> dict[str, Any]:
        return {
            "shard_index": values["shard_index"],
            "num_shards": values["num_shards"],
            "scheduler": values["scheduler"],
            "cluster_spec": values["cluster"],
            "merge": values["merge"],
        }

    options.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[kind, option],
                default=default,
            )
            for name, (kind, option, default) in declared.items()
        ],
        return_annotation=dict[str, Any],
    )
    return options
