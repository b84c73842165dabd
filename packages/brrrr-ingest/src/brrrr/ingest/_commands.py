"""Pieces shared by brrrr-ingest's command groups (``bids``, ``fetch``, ``neurosynth``).

Every ``brrrr`` invocation imports the command modules, so this one imports
only the standard library and Typer.

* :func:`command_group`: the ``typer.Typer`` of a group that core's ``brrrr`` registers.
* :func:`with_options`: options that several commands share, declared once in a
  function that also turns them into what the commands pass on.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import typer

__all__ = ["command_group", "with_options"]

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
