"""What the demo and the simulator print runs as printed: demo.sh installs into .venv, whose bin folder is
not on the PATH of the shell the user types in, so the commands name the installation's own `sla-agent`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

BIN = Path(sys.executable).parent


def shell_env() -> dict[str, str]:
    """The environment of a shell in which the venv is not activated, as after demo.sh."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", os.defpath).split(os.pathsep)
                                  if p and os.path.realpath(p) != os.path.realpath(BIN))
    return env


def _fake_venv(folder: Path) -> Path:
    """demo.sh copied beside a .venv whose python and sla-agent only note how they were called."""
    shutil.copy(ROOT / "demo.sh", folder / "demo.sh")
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text('#!/bin/sh\necho "python $*" >> "$CALLS"\n'
                                    'case "$*" in *"[browser]"*) [ -z "$NO_WHEEL" ] || exit 1;; esac\n')
    (bin_dir / "sla-agent").write_text('#!/bin/sh\necho "sla-agent $*" >> "$CALLS"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return folder / "calls"


@pytest.mark.parametrize("wheel", [True, False])
def test_demo_sh_installs_the_browser_extra_and_runs_without_it(tmp_path, wheel):
    calls = _fake_venv(tmp_path)
    env = {**shell_env(), "PYTHON": sys.executable, "CALLS": str(calls), **({} if wheel else {"NO_WHEEL": "1"})}
    done = subprocess.run(["sh", str(tmp_path / "demo.sh"), "--duration", "5"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    ran = calls.read_text().splitlines()
    pip = "python -m pip install --quiet --disable-pip-version-check"
    assert ran[0] == f"{pip} .[browser]"
    if wheel:
        assert ran[1:] == ["sla-agent demo --duration 5"]
    else:  # a platform without a playwright wheel: the demo runs all the same, and says why it lacks a check
        assert ran[1:] == [f"{pip} .", "sla-agent demo --duration 5"]
        assert "browser check" in done.stderr
