"""What the demo and the simulator print runs as printed: demo.sh installs into .venv, whose bin folder is
not on the PATH of the shell the user types in, so the commands name the installation's own `sla-agent`."""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.calendar import Calendar
from agent.config import load_config

from .conftest import ROOT, free_port

BIN = Path(sys.executable).parent
# a command as the demo prints it: the program (a path to sla-agent, or python -m agent), a subcommand, arguments
COMMAND = re.compile(r"(?:^|\s)((?:\S*/)?sla-agent|\S+ -m agent) ([a-z][a-z-]* .*)$")


def shell_env() -> dict[str, str]:
    """The environment of a shell in which the venv is not activated, as after demo.sh."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", os.defpath).split(os.pathsep)
                                  if p and os.path.realpath(p) != os.path.realpath(BIN))
    return env


def commands(out: str) -> list[str]:
    return [" ".join(m.groups()) for line in out.splitlines() if (m := COMMAND.search(line))]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo started as demo.sh starts it, its `/` fetched while it runs, then stopped by Ctrl-C."""
    tmp = tmp_path_factory.mktemp("demo")
    with open(tmp / "stderr", "w") as err:
        demo = subprocess.Popen([str(BIN / "sla-agent"), "demo", "--duration", "90", "--summary-every", "60",
                                 "--state-dir", str(tmp / "state")], cwd=ROOT, env=shell_env(),
                                stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            head = []
            while not head or not head[-1].startswith(("Stops by itself", "Ctrl-C")):  # the banner's end
                line = demo.stdout.readline()
                assert line, "".join(head) + (tmp / "stderr").read_text()
                head.append(line)
            page = next((line.split()[-1] for line in head if line.startswith("  status page ")), None)
            status = urllib.request.urlopen(page, timeout=30).status if page else None
            demo.send_signal(signal.SIGINT)
            rest, _ = demo.communicate(timeout=120)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
    assert demo.returncode == 0, (tmp / "stderr").read_text()
    return SimpleNamespace(out="".join(head) + rest, page=page, status=status)


def test_the_demo_prints_its_status_page_and_it_answers(demo_run):
    assert demo_run.page is not None and re.fullmatch(r"http://127\.0\.0\.1:\d+/", demo_run.page), demo_run.out
    assert demo_run.status == 200


def test_every_command_the_demo_prints_runs_as_printed_from_the_repository_root(demo_run):
    """`sla-agent report ...` failed with `sla-agent: not found`: the script is in .venv/bin."""
    found = commands(demo_run.out)
    assert any(" report " in c for c in found), demo_run.out
    for cmd in found:
        done = subprocess.run(cmd, shell=True, cwd=ROOT, env=shell_env(), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"{cmd}\n{done.stderr}"
        assert done.stdout or done.stderr


def test_the_demo_s_latency_figure_names_its_7_day_period(demo_run):
    """The figure was the current 7-day period's, quoted as "month to date"."""
    cal = Calendar(load_config(ROOT / "config" / "demo.yaml").contract)
    lines = [line for line in demo_run.out.splitlines() if line.startswith("  api   latency")]
    assert len(lines) == 1, demo_run.out
    now = dt.datetime.now().timestamp()
    ps, pe = cal.period_bounds(now)
    first, last = cal.local_date(ps), cal.local_date(pe - 1)
    assert f"in the 7-day period {first} to {last}" in lines[0]
    assert ("simulated" in lines[0]) == (first.month != cal.local_date(now).month)  # begun in the simulated month


def test_a_period_begun_in_the_simulated_month_says_so():
    """Early in a month the 7-day period holds the simulated month's last days."""
    from agent.demo.run import _figures

    cal = Calendar(load_config(ROOT / "config" / "demo.yaml").contract)
    lat = SimpleNamespace(count=100, thresholds=(0.5, 1.0), fractions=lambda: (0.975, 0.99))
    avail = SimpleNamespace(ratio=0.9995, verdict="met", coverage=1.0)
    windows = {"availability": {"month": avail}, "latency": {"period": lat}}
    for day, period in ((2, "2026-11-30 to 2026-12-06, its days in 2026-11 simulated:"),
                        (9, "2026-12-07 to 2026-12-13:")):
        now = dt.datetime(2026, 12, day, 12, tzinfo=cal.tz).timestamp()
        snap = SimpleNamespace(now=now, of=lambda kind, svc: windows[kind])
        lines = _figures("api", snap, cal, "2026-11")
        assert lines[0] == "  api   availability 99.950 % (met, coverage 100.0 %)"
        assert lines[1] == f"  api   latency in the 7-day period {period} 97.50 % < 0.5s, 99.00 % < 1s"


def test_simulate_on_another_port_names_a_config_that_probes_it(tmp_path):
    """`simulate --port X` said to run config/demo.yaml, which probes 9811."""
    port = free_port()
    sim = subprocess.Popen([str(BIN / "sla-agent"), "simulate", "--port", str(port), "--duration", "60"],
                           cwd=tmp_path, env=shell_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = sim.stdout.readline()
    finally:
        sim.terminate()
        sim.wait(timeout=20)
    assert f"http://127.0.0.1:{port}/" in line, line + sim.stderr.read()
    (cmd,) = commands(line.split("in another shell:")[1])
    program, config = re.fullmatch(r"(.+) run --config (\S+)", cmd).groups()
    assert str(port) in config, cmd
    text = (tmp_path / config).read_text(encoding="utf-8")
    assert f"127.0.0.1:{port}/" in text and "9811" not in text
    # the program and the file, as printed, from where simulate was started
    done = subprocess.run(f"{program} check-config {config}", shell=True, cwd=tmp_path, env=shell_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    urls = [t.address for t in load_config(tmp_path / config).targets]
    assert urls and all(u.startswith(f"http://127.0.0.1:{port}/") for u in urls)


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


def test_without_playwright_the_demo_names_the_pip_of_its_own_installation(monkeypatch):
    """`pip install 'sla-agent[browser]'` named the PATH's pip and a package no index has."""
    import importlib.util

    from agent.demo import run

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(run, "find_chromium", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    python = os.path.relpath(sys.executable, ROOT)
    assert run.browser_missing() == f"the playwright package is not installed ({python} -m pip install '.[browser]')"
