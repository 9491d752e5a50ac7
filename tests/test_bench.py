"""The benchmarks still start: a bench is run by hand, rarely, and a function renamed in agent/ broke one
unnoticed. Each bench answers --help, and every name a bench imports (at its top or inside a function,
where the agent is imported from the tree under test) exists."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

BENCH = ROOT / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _missing(module: str, name: str | None) -> str | None:
    """What is wrong with `from module import name` (or `import module`) in a bench, or None."""
    sibling = BENCH / f"{module}.py"
    if sibling.exists():  # a bench helper beside it, imported with bench/ on sys.path
        return None if name is None or name in _top_level_names(sibling) else f"{module}.{name}"
    if not module.startswith("agent"):
        return None  # a third-party library: the test dependencies install it
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return f"{module} ({exc})"
    if name is None or hasattr(mod, name):
        return None
    try:
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return f"{module}.{name}"
    return None


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_every_name_a_bench_imports_exists(path):
    missing = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            missing += [m for a in node.names if (m := _missing(node.module, a.name))]
        elif isinstance(node, ast.Import):
            missing += [m for a in node.names if (m := _missing(a.name, None))]
    assert not missing, f"{path.name} imports what does not exist: {missing}"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_bench_starts(path):
    proc = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr[-2000:]
