"""The demo's simulated previous month: a verdict with something met and something missed, marked
simulated, and the table the demo prints is the report's own."""
from __future__ import annotations

import json
import time

from agent.cli import main
from agent.config import load_config
from agent.demo.history import write_history
from agent.probes.browser.spec import find_chromium
from agent.report import build_report

from .conftest import ROOT

DEMO = ROOT / "config" / "demo.yaml"


def test_the_simulated_month_has_met_and_missed_rows_and_says_it_is_simulated(tmp_path):
    cfg = load_config(DEMO)
    month = write_history(cfg, str(tmp_path), time.time())
    assert write_history(cfg, str(tmp_path), time.time()) == month  # once only
    doc = build_report(cfg, str(tmp_path), month, time.time())
    verdicts = [r["verdict"] for r in doc["rows"]]
    assert len(verdicts) == 6 and "met" in verdicts and "missed" in verdicts
    assert "SIMULATED" in doc["readings"]["data"]
    overrun = [i for i in doc["incidents"] if i["duration_s"] == 6000]
    assert overrun and all(i["counted_minutes"] == 20 for i in overrun)  # 20 minutes past the window


def test_the_demo_prints_the_table_sla_agent_report_prints(tmp_path, capsys):
    state = tmp_path / "demo"
    assert main(["demo", "--duration", "2", "--state-dir", str(state), "--summary-every", "1"]) == 0
    out = capsys.readouterr().out
    month = out.split("A SIMULATED previous month (")[1][:7]
    printed = out.split("against the contract:\n\n")[1].split("\n\n")[0]
    assert main(["report", "--config", str(DEMO), "--state-dir", str(state), "--month", month,
                 "--format", "text"]) == 0
    report = capsys.readouterr().out
    assert printed in report and printed.count("\n") == 6
    assert (state / f"report-{month}.html").exists()
    closed = state / "reports" / month / "r1"  # the demo ends by pointing at the month it closed, and its PDF
    last = out.rstrip().splitlines()[-3:]
    assert last[0].startswith(f"The simulated month {month}, closed") and last[0].endswith(str(closed.resolve()))
    assert last[1].endswith("/reports while the demo ran") and "http://127.0.0.1:" in last[1]
    pdf = closed / "report.pdf"
    assert (last[2] == f"  its PDF      {pdf.resolve()}" and pdf.read_bytes()[:5] == b"%PDF-") if find_chromium() \
        else last[2].startswith("  no PDF: ")
    assert json.loads((closed / "report.json").read_text())["month"] == month
    assert main(["report", "--config", str(DEMO), "--state-dir", str(state), "--month", month,
                 "--format", "json"]) == 0
    assert "SIMULATED" in json.loads(capsys.readouterr().out)["readings"]["data"]


async def test_simulate_serves_what_run_with_the_demo_config_probes(tmp_path):
    """`run --config config/demo.yaml` alone probed nothing: the simulator only ran inside `demo`."""
    import asyncio
    import dataclasses
    import subprocess
    import sys

    from agent.app import Agent

    from .test_daemon import wait_for

    sim = subprocess.Popen([sys.executable, "-m", "agent", "simulate", "--duration", "60"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        line = await asyncio.to_thread(sim.stdout.readline)
        assert "127.0.0.1:9811" in line, line + sim.stderr.read()
        cfg = load_config(DEMO)
        cfg = dataclasses.replace(cfg, targets=tuple(t for t in cfg.targets if t.service == "api"),
                                  agent=dataclasses.replace(cfg.agent, listen="127.0.0.1:0"))
        seen = []
        agent = Agent(cfg, state_dir=str(tmp_path / "state"))
        agent.listeners.append(seen.append)
        await agent.start()
        try:
            await wait_for(lambda: sum(r.outcome == "up" for r in seen) >= 4, "up results from the simulator")
        finally:
            await agent.stop()
    finally:
        sim.terminate()
        sim.wait(timeout=20)
    assert {r.target for r in seen if r.outcome == "up"} == {"api-health", "api-contacts"}


def test_the_live_table_explains_a_short_outage_by_the_slice_rule():
    """A 20-second outage showed as DOWN in the log and nowhere else: the table now says why the minute
    counts up (20 of 60 probes, below the 50 % rule), or that it counts down."""
    from types import SimpleNamespace

    from agent.calendar import Calendar
    from agent.demo.run import _explain, _Window

    cfg = load_config(DEMO)
    agent = SimpleNamespace(cfg=cfg, cal=Calendar(cfg.contract))
    w = _Window()
    t0 = 1_795_000_020 - 1_795_000_020 % 60
    for i in range(60):
        w.add(t0 + i, 0.1, up=not 10 <= i < 30)
    for i in range(60):
        w.add(t0 + 60 + i, 0.1, up=i < 20)
    lines = _explain("web-ui", w.closed_with_failures(t0 + 130), agent)
    assert "degraded: 20 of 60 probes failed" in lines[0] and "below the 50 % rule" in lines[0]
    assert "counts DOWN (40 of 60" in lines[1]
    assert _explain("web-ui", w.closed_with_failures(t0 + 130), agent) == []  # each minute said once


def test_the_simulated_month_s_bundle_passes_its_own_offline_check(tmp_path, capsys):
    """The extract in the bundle dropped the mark that the month is simulated: the report rebuilt from it
    lost its SIMULATED line, and `evidence verify` found `readings` differing."""
    cfg = load_config(DEMO)
    month = write_history(cfg, str(tmp_path / "s"), time.time())
    bundle = tmp_path / "b.tar.gz"
    common = ["--config", str(DEMO), "--state-dir", str(tmp_path / "s")]
    assert main(["evidence", "export", *common, "--month", month, "--output", str(bundle)]) == 0
    capsys.readouterr()
    assert main(["evidence", "verify", str(bundle), "--allow-unsigned"]) == 0, capsys.readouterr().err
    assert "MISMATCH" not in capsys.readouterr().err
