"""Import arrows point down: no cycle between unlearnkit's parts, and the lowest parts stay low.

A *part* is a subpackage (``data``, ``training``, …) or a top-level module (``errors``,
``budget``, …) of ``src/unlearnkit``; the package's own ``__init__`` (the public facade that
re-exports from everywhere) is not one. Every import counts, function-local ones included.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "unlearnkit"
LOWEST = {"errors", "registry", "budget", "utils"}  # import nothing of unlearnkit but each other (errors)
ALLOWED = {
    "errors": set(),
    "utils": {"errors"},
    "budget": {"errors"},
    "registry": {"errors"},
    "data": LOWEST,
}


def part_of(module: str) -> str | None:
    """``unlearnkit.data.pool`` → ``data``; ``unlearnkit`` itself → None."""
    names = module.split(".")
    return names[1] if len(names) > 1 and names[0] == "unlearnkit" else None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    names = list(rel.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def imports_of(path: Path) -> set[str]:
    """The unlearnkit modules ``path`` imports (absolute names)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "unlearnkit"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "unlearnkit":
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names if target == "unlearnkit"}
    return found


def part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        src = part_of(module_name(path))
        if src is None:  # unlearnkit/__init__.py: the facade
            continue
        graph.setdefault(src, set())
        for target in imports_of(path):
            dst = part_of(target)
            if dst is not None and dst != src:
                graph[src].add(dst)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_the_parts():
    graph = part_graph()
    assert {"data", "models", "training", "sparsity", "methods", "attacks", "adversary", "healing", "metrics",
            "sisa", "utils", "report", "experiments", "errors", "budget", "service"} <= set(graph)
    assert "data" in graph["training"] and "errors" in graph["data"]


def test_no_import_cycle_between_parts():
    cycle = find_cycle(part_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_low_parts_import_only_lower_ones(part):
    extra = part_graph()[part] - ALLOWED[part]
    assert not extra, f"{part}/ imports {sorted(extra)}; it may import only {sorted(ALLOWED[part])}"


def test_only_the_cli_imports_the_service():
    """service/ needs an optional extra (FastAPI, SQLAlchemy): the library must import without it."""
    importers = {part for part, targets in part_graph().items() if "service" in targets}
    assert importers <= {"cli"}, f"{sorted(importers - {'cli'})} import service/"


def test_find_cycle_reports_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
