"""The package layout stays a one-way street: the library never imports the training pipeline or the
service, and no module imports itself back through others (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cxnlp", "training", "service")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports anywhere (module level, inside functions, and under
    `if TYPE_CHECKING:`: an import for type hints only is still a dependency, and a cycle hidden
    there is a cycle); `from package import name` counts the submodule `name` where there is one,
    else `package` itself."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                submodules = {f"{base}.{alias.name}" for alias in child.names}
                found.update(submodules & modules.keys())
                if not submodules <= modules.keys():  # names defined by the module `base`
                    found.add(base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_layout_cxnlp_imports_neither_training_nor_service():
    graph = import_graph()
    leaks = {
        name: sorted(m for m in deps if m.split(".")[0] in ("training", "service"))
        for name, deps in graph.items()
        if name.split(".")[0] == "cxnlp"
    }
    assert {k: v for k, v in leaks.items() if v} == {}


def test_layout_has_no_import_cycles():
    assert find_cycle(import_graph()) is None


def test_layout_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_layout_graph_counts_type_checking_imports(tmp_path, monkeypatch):
    modules = all_modules()
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    path = tmp_path / "mod.py"
    path.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import cxnlp.labels\n"
    )
    assert "cxnlp.labels" in imports_of(path, modules)


def test_layout_graph_sees_function_level_imports():
    # cxnlp.cli imports cxnlp.report.build inside its `report` verb only.
    assert "cxnlp.report.build" in import_graph()["cxnlp.cli"]
