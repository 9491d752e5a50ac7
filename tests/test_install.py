"""The README's two set-up commands, verbatim, on a fresh clone, with the distribution's Python where
there is one (Debian refuses `pip install` outside a virtual environment): the demo with a short
duration, the test command on one small test file."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", setup)


def test_the_readme_has_exactly_two_set_up_commands():
    assert _readme_commands() == ["sh demo.sh --duration 120", "bash .ci/run"]


def test_the_readme_commands_work_on_a_fresh_clone_with_the_system_python(tmp_path):
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else shutil.which("python3")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    for path in ("demo.sh", ".ci/run", "README.md"):  # the working tree under test, committed or not
        shutil.copy(ROOT / path, clone / path)
    env = dict(os.environ, PYTHON=python)
    env.pop("VIRTUAL_ENV", None)
    demo, tests = _readme_commands()
    out = subprocess.run(demo.replace("--duration 120", "--duration 3").split(), cwd=clone, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "A SIMULATED previous month" in out.stdout and "the month so far" in out.stdout
    assert (clone / ".venv" / "bin" / "sla-agent").exists()
    out = subprocess.run(tests.split() + ["tests/test_cli.py", "-k", "help"], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout
