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
    """The trees asked for, or the one this script belongs to."""
    return given or [HERE_TREE]


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
