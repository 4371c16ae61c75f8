"""No import circle among the project's own modules.

Every import statement counts, wherever it stands (module level, inside a function, under
``if TYPE_CHECKING``): an import placed in a function to dodge a circle is still a circle,
one that only shows when that function runs first.  Read from the source with ``ast``, so
nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from include.settings.base import PROJECT_ROOT

PACKAGES = ("include", "spark_jobs", "dags", "plugins", "benchmarks", "tests")


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def own_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            if "templates" not in path.parts:
                found[module_name(path)] = path
    return found


def imported(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The own modules `path` (module `name`) imports, by any import statement."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            # `from package import module` imports the module itself.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in modules and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle_and_leaves_a_chain_alone() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_imports_inside_functions_under_type_checking_and_relative_ones_count(
    tmp_path: Path,
) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from include.settings import Settings\n"
        "def f():\n    from include.kafka import security\n"
        "from . import client\n"
    )
    modules = own_modules()
    found = imported(source, "include.kafka.probe", modules)
    assert found == {
        "include.settings",
        "include.kafka",
        "include.kafka.security",
        "include.kafka.client",
    }


def test_no_module_of_the_project_imports_itself_in_a_circle() -> None:
    modules = own_modules()
    graph = {name: imported(path, name, modules) for name, path in modules.items()}
    assert sum(len(targets) for targets in graph.values()) > 200, "the scan found no imports"
    assert cycles(graph) == []
