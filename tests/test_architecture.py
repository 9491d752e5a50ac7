"""The shape of agent/: no import cycle between modules nor between its packages, files and functions
short enough to read at once (docs/architecture.md describes the layers)."""
from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

AGENT = ROOT / "agent"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
# Kept longer on purpose: data read top to bottom, not logic.
LONG_ALLOWED = {
    "agent/rules/grafana.py:dashboard",  # the dashboard's panels, one literal
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in AGENT.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every agent module this one imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("agent"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if not base.startswith("agent"):
                continue
            for a in node.names:  # `from . import http` imports the module agent.probes.http
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in out if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, or None (depth-first search with colours)."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if colour.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in colour and (found := visit(m)):
                return found
        colour[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in colour and (found := visit(n)):
            return found
    return None


def test_no_import_cycle_between_modules():
    graph = _graph()
    assert len(graph) > 40 and graph["agent.app"]  # the walk found the code and its imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_import_cycle_between_packages():
    """agent.config, agent.probes, agent.slo...: a package may import another only one way round."""
    def top(m: str) -> str:
        return ".".join(m.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for name, deps in _graph().items():
        packages.setdefault(top(name), set()).update(top(d) for d in deps if top(d) != top(name))
    packages.pop("agent", None)  # the root package holds only the version
    assert _cycle(packages) is None, " -> ".join(_cycle(packages) or [])


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_files_and_functions_are_short():
    long_files, long_functions = [], []
    for path in AGENT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        if text.count("\n") > MAX_FILE_LINES:
            long_files.append(f"{rel} ({text.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and f"{rel}:{node.name}" not in LONG_ALLOWED:
                    long_functions.append(f"{rel}:{node.name} ({length} lines)")
    assert not long_files, long_files
    assert not long_functions, long_functions
