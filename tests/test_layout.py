"""The tree keeps one home per concept: no import circles, no sibling reaching into another
package's private modules, one errors module per package, the documented dependency direction."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted((ROOT / "packages").glob("brrrr-*/src/brrrr/*"))
# Which packages each one may import (ARCHITECTURE.md: core <- ingest, core <- preprocess <-
# models <- demos; demos may import everything).
ALLOWED = {
    "core": set(),
    "ingest": {"core"},
    "preprocess": {"core"},
    "models": {"core", "preprocess"},
    "demos": {"core", "ingest", "preprocess", "models"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in package.rglob("*.py"):
            src = next(p for p in path.parents if p.name == "src")
            name = ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


MODULES = _modules()
_MODULE_FILES = MODULES


def _imports(path: Path) -> set[str]:
    """Every ``brrrr`` module named in an import in ``path``, at module level or inside a
    function (a lazy import still closes a circle), outside ``if TYPE_CHECKING:`` blocks."""
    names: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" in ast.unparse(node.test):
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            names.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module:
                # ``from package import submodule`` imports the submodule, not names of the
                # package's __init__ (which Python imports first in any case).
                full = {f"{node.module}.{alias.name}" for alias in node.names}
                names.update(full)
                if not full <= set(_MODULE_FILES):
                    names.add(node.module)

    Visitor().visit(ast.parse(path.read_text()))
    return {n for n in names if n.startswith("brrrr.")}


def test_there_is_no_import_circle() -> None:
    graph = {
        name: {m for m in _imports(path) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import circle: " + " → ".join(cycle))
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_follow_the_dependency_direction_and_stay_public(name: str) -> None:
    own = name.split(".")[1]
    for imported in _imports(MODULES[name]):
        other = imported.split(".")[1]
        if other == own:
            continue
        assert other in ALLOWED[own], f"{name} imports {imported}: {own} may not import {other}"
        private = [part for part in imported.split(".")[2:] if part.startswith("_")]
        assert not private, f"{name} imports {imported}, a private module of brrrr.{other}"


def test_each_package_has_one_errors_module() -> None:
    for package in PACKAGES:
        homes = set()
        for path in package.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                    homes.add(path.relative_to(package).as_posix())
        assert all(home.rsplit("/", 1)[-1] == "errors.py" for home in homes), (
            f"brrrr.{package.name}: errors defined in {sorted(homes)}"
        )
