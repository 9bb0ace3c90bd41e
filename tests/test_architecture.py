"""The import rules of docs/architecture.md, read from the source with ``ast``: imports only go down."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "automix"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """Every ``automix…`` module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "automix":
                found.add(node.module)
                # ``from automix.x import y`` imports the module automix.x.y when y is one.
                found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "automix")
    return found


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_import_parser_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from automix.train.losses import ParameterLoss\n", encoding="utf-8")
    assert imports_of(source) == {"automix.train.losses"}


def test_nothing_outside_training_imports_training() -> None:
    """Inference, evaluation, style transfer and reverse never import ``automix.train``; only the
    command line that starts training does."""
    allowed = {"automix.cli"}
    offenders = {name: sorted(i for i in imports_of(path) if _inside(i, "automix.train"))
                 for name, path in MODULES.items() if not _inside(name, "automix.train") and name not in allowed}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize(("package", "may_import"), [
    ("automix.io", {"automix.io", "automix.errors"}),
    ("automix.console", {"automix.console", "automix.io", "automix.errors"}),
    ("automix.measure", {"automix.measure", "automix.console", "automix.io", "automix.errors"}),
])
def test_the_bottom_layers_import_nothing_above_them(package: str, may_import: set[str]) -> None:
    above = {name: sorted(i for i in imports_of(path) if not any(_inside(i, ok) for ok in may_import))
             for name, path in MODULES.items() if _inside(name, package)}
    assert {k: v for k, v in above.items() if v} == {}


def test_no_import_circles() -> None:
    """No module reaches itself through imports (function-level ones included)."""
    graph = {name: {i for i in imports_of(path) if i in MODULES and i != name} for name, path in MODULES.items()}
    # A package's __init__ is imported by each of its modules first: an edge from a module to its
    # own package face is how Python works, not a design circle.
    graph = {name: {i for i in deps if not _inside(name, i)} for name, deps in graph.items()}
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []
