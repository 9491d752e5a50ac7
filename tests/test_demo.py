"""The demo's simulated previous month: a verdict with something met and something missed, marked
simulated, and the table the demo prints is the report's own."""
from __future__ import annotations

import json
import time

from agent.cli import main
from agent.config import load_config
from agent.demo.history import write_history
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
    assert main(["report", "--config", str(DEMO), "--state-dir", str(state), "--month", month,
                 "--format", "json"]) == 0
    assert "SIMULATED" in json.loads(capsys.readouterr().out)["readings"]["data"]
