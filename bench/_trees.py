"""Benchmarks that compare source trees (--root A --root B) measure each in a process of its own: the
same script re-run as a worker that imports the agent from that tree and prints its figures as JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE_TREE = str(Path(__file__).resolve().parent.parent)


def roots(given: list[str] | None) -> list[str]:
    """The trees asked for (as absolute paths: a worker runs elsewhere), or the one this script belongs to."""
    return [str(Path(r).resolve()) for r in given] if given else [HERE_TREE]


def worker_tree(argv: list[str]) -> str:
    """The tree a script imports the agent from before it parses its arguments: --root's in a worker,
    else its own."""
    if "--worker" in argv and "--root" in argv:
        return str(Path(argv[len(argv) - 1 - argv[::-1].index("--root") + 1]).resolve())
    return HERE_TREE


def enter(root: str) -> None:
    """In the worker: the agent is imported from `root`."""
    sys.path.insert(0, str(Path(root).resolve()))


def in_tree(script: str, root: str, args: list[str], timeout: float) -> Any:
    """Runs `script --worker --root ROOT ARGS` and returns what it printed; a failed worker ends the run."""
    p = subprocess.run([sys.executable, script, "--worker", "--root", root, *args], capture_output=True, text=True,
                       timeout=timeout, cwd="/")
    if p.returncode:
        sys.exit(f"{root}: {p.stderr[-3000:]}")
    return json.loads(p.stdout)
