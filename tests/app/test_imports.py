"""No import cycle among ``app/`` modules, counting imports under ``TYPE_CHECKING`` and inside functions.

The graph is read from the source with :mod:`ast` (nothing is imported), so a cycle hidden behind
``if TYPE_CHECKING:`` or a late ``import`` in a function body counts as much as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path, root: Path) -> str:
    """``app/views/mixer.py`` -> ``app.views.mixer``; ``app/views/__init__.py`` -> ``app.views``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path, package: str = "app") -> dict[str, set[str]]:
    """``{module: {modules of ``package`` it imports}}`` for every ``.py`` file under ``root / package``."""
    files = sorted((root / package).rglob("*.py"))
    modules = {module_name(path, root): path for path in files}
    graph: dict[str, set[str]] = {name: set() for name in modules}

    def resolve(name: str) -> str | None:
        """The longest known module that ``name`` is or lies in (``app.x.Thing`` -> ``app.x``)."""
        while name:
            if name in modules:
                return name
            name = name.rpartition(".")[0]
        return None

    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):  # every import, wherever it sits: top level, TYPE_CHECKING, functions
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the module's package, one level up per extra dot
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = [f"{origin}.{alias.name}" for alias in node.names]  # a submodule, or a name in origin
            for target in targets:
                found = resolve(target)
                if found is not None and found != name:
                    graph[name].add(found)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_finder_sees_type_checking_function_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "app"
    (package / "views").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "views" / "__init__.py").write_text("")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.b import B\n")
    (package / "b.py").write_text("def f():\n    from app import c\n")
    (package / "c.py").write_text("import app.a\n")
    (package / "views" / "d.py").write_text("from . import e\nfrom ..c import thing\n")
    (package / "views" / "e.py").write_text("from .d import x\n")
    (package / "f.py").write_text("import os\nfrom engine import STEM_NAMES\nfrom app.views.e import y\n")
    graph = import_graph(tmp_path)
    assert graph["app.a"] == {"app.b"} and graph["app.b"] == {"app.c"} and graph["app.c"] == {"app.a"}
    assert graph["app.views.d"] == {"app.views.e", "app.c"} and graph["app.f"] == {"app.views.e"}
    assert find_cycles(graph) == [["app.a", "app.b", "app.c"], ["app.views.d", "app.views.e"]]


def test_app_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph(ROOT)
    assert "app.main_window" in graph and graph["app.main_window"], "the graph was read"
    cycles = find_cycles(graph)
    assert cycles == [], "import cycles among app/ modules: " + "; ".join(" <-> ".join(c) for c in cycles)
