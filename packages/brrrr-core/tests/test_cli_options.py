"""The helpers shared by the command groups: one Typer setup, options declared once."""

from __future__ import annotations

import inspect
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from brrrr.core.cli_options import command_group, runner_options, with_options

runner = CliRunner()

Jobs = Annotated[int, typer.Option("--jobs", "-j", min=1, help="Parallel downloads.")]
Fast = Annotated[bool, typer.Option("--fast/--slow", help="Go fast.")]


def _transfer(jobs: Jobs = 4, fast: Fast = True) -> dict[str, object]:
    return {"concurrency": jobs, "fast": fast}


def _app() -> typer.Typer:
    app = command_group("demo", help="A demo group.")

    @app.command("get")
    @with_options("transfer", _transfer)
    def get_command(
        out: Annotated[str, typer.Argument(help="Where to.")],
        *,
        transfer: dict[str, object],
        force: Annotated[bool, typer.Option(help="Force.")] = False,
    ) -> None:
        typer.echo(f"{out} {transfer} {force}")

    @app.command("other")
    def other_command() -> None:
        typer.echo("other")

    return app


def test_a_group_shows_its_help_without_a_command() -> None:
    result = runner.invoke(_app(), [])
    assert "A demo group." in result.output
    assert "get" in result.output


def test_shared_options_stand_where_the_parameter_stands() -> None:
    @with_options("transfer", _transfer)
    def command(out: str, *, transfer: dict[str, object], force: bool = False) -> None: ...

    assert list(inspect.signature(command).parameters) == ["out", "jobs", "fast", "force"]


def test_the_command_receives_what_the_group_makes_of_the_options() -> None:
    result = runner.invoke(_app(), ["get", "here", "-j", "8", "--slow", "--force"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "here {'concurrency': 8, 'fast': False} True"
    defaults = runner.invoke(_app(), ["get", "here"])
    assert defaults.output.strip() == "here {'concurrency': 4, 'fast': True} False"


def test_shared_options_keep_their_checks_and_help() -> None:
    assert runner.invoke(_app(), ["get", "here", "--jobs", "0"]).exit_code == 2
    help_text = runner.invoke(_app(), ["get", "--help"], terminal_width=200).output
    assert "Parallel downloads." in help_text
    assert help_text.index("--jobs") < help_text.index("--fast") < help_text.index("--force")


def test_a_command_without_the_parameter_is_refused() -> None:
    with pytest.raises(TypeError, match="'transfer'"):

        @with_options("transfer", _transfer)
        def command(out: str) -> None: ...


def test_runner_options_are_declared_once_for_every_distributed_command() -> None:
    app = command_group("demo", help="A demo group.")

    @app.command("build")
    @with_options("runner", runner_options("build the maps", merged="manifest.json"))
    def build_command(
        root: Annotated[str, typer.Argument(help="Where.")], *, runner: dict[str, object]
    ) -> None:
        typer.echo(f"{root} {sorted(runner.items())}")

    @app.command("other")
    def other_command() -> None: ...

    result = runner.invoke(app, ["build", "here", "--shard-index", "1", "--num-shards", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "here [('cluster_spec', None), ('merge', False), ('num_shards', 3), "
        "('scheduler', None), ('shard_index', 1)]"
    )
    merged = runner.invoke(app, ["build", "here", "--merge", "--scheduler", "local:2"])
    assert "('merge', True)" in merged.output
    assert "('scheduler', 'local:2')" in merged.output
    help_text = runner.invoke(app, ["build", "--help"], terminal_width=200).output
    for option in ("--shard-index", "--num-shards", "--scheduler", "--cluster", "--merge"):
        assert option in help_text
    assert "build the maps" in help_text
    assert runner.invoke(app, ["build", "here", "--num-shards", "x"]).exit_code == 2
