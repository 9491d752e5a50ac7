"""The commands and files the demo and the simulator print, written to run as printed in the folder they
were started from: demo.sh installs into .venv, whose bin folder is not on the PATH, so a bare
`sla-agent` would not be found there."""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from importlib import resources
from pathlib import Path

SIM_PORT = 9811
STATE_DIR = "sla-demo-state"  # the demo config's agent.state_dir
REPO_CONFIG = Path("config") / "demo.yaml"


def shown(path: str | Path, program: bool = False) -> str:
    """`path` relative to the working folder when inside it, else absolute, quoted for a shell. A program
    in the working folder itself gets its ./, or the shell would look for it on the PATH."""
    p, cwd = os.path.abspath(path), os.getcwd()  # not resolved: a venv's python is a symlink out of it
    if os.path.commonpath([p, cwd]) == cwd:
        p = os.path.relpath(p, cwd)
        if program and os.sep not in p:
            p = os.path.join(".", p)
    return shlex.quote(p)


def program() -> str:
    """How to start this installation's `sla-agent` from here: the script beside this interpreter (the
    same venv), by its bare name only when the PATH finds that very script."""
    script = Path(sys.executable).parent / "sla-agent"
    if not script.is_file():
        return f"{shown(sys.executable, program=True)} -m agent"
    found = shutil.which("sla-agent")
    if found and os.path.samefile(found, script):
        return "sla-agent"
    return shown(script, program=True)


def packaged_config() -> Path:
    return Path(str(resources.files("agent") / "data" / "demo.yaml"))


def demo_text(port: int) -> str:
    """The packaged demo config, pointed at the simulator's port."""
    text = packaged_config().read_text(encoding="utf-8")
    return text.replace(f"127.0.0.1:{SIM_PORT}", f"127.0.0.1:{port}")


def config_file(text: str, folder: Path, name: str) -> Path:
    """A file holding exactly the config `text` to name in a printed command: the repository's
    config/demo.yaml or the packaged one when either is that text, else `name` written into `folder`."""
    for path in (REPO_CONFIG, packaged_config()):
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def pip_browser() -> str:
    """The command that installs the browser extra into this installation."""
    here = Path("pyproject.toml")
    source = "." if here.is_file() and 'name = "sla-agent"' in here.read_text(encoding="utf-8") else "sla-agent"
    return f"{shown(sys.executable, program=True)} -m pip install '{source}[browser]'"
