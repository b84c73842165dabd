"""The documentation is true to the code: modules, files and commands it names exist.

- every module path ``brrrr.x.y`` that docs/architecture.md names imports (or is an
  attribute of a module that does), and the old names of "Names that moved" are gone;
- every file and folder in architecture.md's package trees exists;
- every ``brrrr <command> <subcommand>`` that a docs page (or a tutorial script's comments)
  names is a command of the installed ``brrrr`` CLI;
- every nav entry of mkdocs.yml is a file under docs/.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ARCHITECTURE = DOCS / "architecture.md"
MOVED_HEADING = "### Names that moved"

# `brrrr.commands` is the entry-point group, not a module.
NOT_MODULES = {"brrrr.commands"}
# A module path at the start of a code span: `brrrr.core.files`, `brrrr.preprocess.neurovfm.*`.
MODULE_PATH = re.compile(r"`(brrrr(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
# An old name in "Names that moved": `brrrr.preprocess.prepare` → its new home.
OLD_PATH = re.compile(r"`(brrrr(?:\.[A-Za-z_][A-Za-z0-9_]*)+)` →")
WORD = r"[a-z][a-z0-9-]*"
# `brrrr bids to-hf`, `brrrr train vae / hvae / pointvae`: a command, then its subcommands.
COMMAND = re.compile(rf"\bbrrrr ({WORD})(?: ({WORD}(?: / {WORD})*))?")


def _architecture() -> tuple[str, str]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    current, heading, moved = text.partition(MOVED_HEADING)
    assert heading, f"{ARCHITECTURE} has no {MOVED_HEADING!r} section"
    return current, moved


def _resolves(path: str) -> bool:
    """``path`` is an importable module, or an attribute of one (``brrrr.core.resample.resample``)."""
    try:
        importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name is None or not path.startswith(exc.name):
            raise
        parent, _, name = path.rpartition(".")
        if "." not in parent:
            return False
        try:
            module = importlib.import_module(parent)
        except ModuleNotFoundError:
            return False
        return hasattr(module, name)
    return True


def test_every_module_the_architecture_names_imports() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    names = set(MODULE_PATH.findall(text)) - set(OLD_PATH.findall(text)) - NOT_MODULES
    assert {"brrrr.core.files", "brrrr.preprocess.kernels"} <= names, names
    missing = sorted(name for name in names if not _resolves(name))
    assert not missing, f"docs/architecture.md names modules that do not import: {missing}"


def test_the_moved_names_have_one_home_and_no_alias() -> None:
    _, moved = _architecture()
    old = OLD_PATH.findall(moved)
    assert old
    for name in old:
        assert importlib.util.find_spec(name) is None, f"{name} still imports (said to have moved)"


def _tree_entries(block: str) -> Iterator[Path]:
    """Paths named by a ``brrrr/pkg/`` tree: ``├── name.py  what it is`` lines, 4 columns a level."""
    lines = block.strip("\n").splitlines()
    root = Path(lines[0].strip().rstrip("/"))
    stack: list[str] = []
    for line in lines[1:]:
        marker = max(line.find("├── "), line.find("└── "))
        if marker < 0:
            continue  # a description carried on to the next line
        depth = marker // 4
        entry = re.split(r"\s{2,}", line[marker + 4 :].strip())[0]
        del stack[depth:]
        names = [name.strip() for name in entry.split(",")]
        for name in names:
            yield root.joinpath(*stack, name.rstrip("/"))
        if len(names) == 1 and names[0].endswith("/"):
            stack.append(names[0].rstrip("/"))


def test_every_file_in_the_package_trees_exists() -> None:
    current, _ = _architecture()
    blocks = re.findall(r"```\n(brrrr/[a-z]+/\n.*?)```", current, flags=re.DOTALL)
    assert {block.split("\n")[0] for block in blocks} >= {
        "brrrr/core/",
        "brrrr/ingest/",
        "brrrr/preprocess/",
        "brrrr/models/",
        "brrrr/demos/",
    }
    missing = []
    for block in blocks:
        for entry in _tree_entries(block):
            package = entry.parts[1]
            source = ROOT / "packages" / f"brrrr-{package}" / "src" / entry
            if not source.exists():
                missing.append(str(entry))
    assert not missing, f"docs/architecture.md's trees name missing files: {missing}"


def _documented_commands() -> Iterator[tuple[str, str, str | None]]:
    """``(page, command, subcommand)`` for each ``brrrr …`` in code spans and code blocks."""
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        name = str(page.relative_to(ROOT))
        snippets = re.findall(r"`([^`\n]+)`", text)
        for fence in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL):
            snippets += [
                line for line in fence.splitlines() if line.lstrip("$ ").startswith("brrrr ")
            ]
        for snippet in snippets:
            for command, subs in COMMAND.findall(snippet):
                for sub in subs.split(" / ") if subs else [None]:
                    yield name, command, sub
    for script in sorted((DOCS / "tutorials").glob("*.py")):
        for line in script.read_text(encoding="utf-8").splitlines():
            comment = line.strip()
            if comment.startswith("#") and comment.lstrip("# ").startswith("brrrr "):
                for command, subs in COMMAND.findall(comment):
                    for sub in subs.split(" / ") if subs else [None]:
                        yield str(script.relative_to(ROOT)), command, sub


@pytest.fixture(scope="module")
def cli() -> dict[str, Any]:
    """The ``brrrr`` commands by name (a group's ``commands`` maps its subcommands)."""
    from brrrr.core.cli import build_app

    commands: dict[str, Any] = typer.main.get_command(build_app()).commands  # type: ignore[attr-defined]
    return commands


def test_every_command_the_docs_name_exists(cli: dict[str, Any]) -> None:
    named = list(_documented_commands())
    assert {(command, sub) for _, command, sub in named} >= {("bids", "to-hf"), ("demo", None)}
    wrong = []
    for page, command, sub in named:
        found = cli.get(command)
        subcommands = getattr(found, "commands", None)  # None: a plain command, SUB is an argument
        if found is None:
            wrong.append(f"{page}: brrrr {command}")
        elif sub is not None and subcommands is not None and sub not in subcommands:
            wrong.append(f"{page}: brrrr {command} {sub}")
    assert not wrong, f"the docs name commands the CLI does not have: {sorted(set(wrong))}"


def _nav_files(nav: Any) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_files(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_files(value)


def test_every_nav_entry_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    files = list(_nav_files(config["nav"]))
    assert "architecture.md" in files
    missing = [name for name in files if not (DOCS / name).is_file()]
    assert not missing, f"mkdocs.yml's nav names missing pages: {missing}"
