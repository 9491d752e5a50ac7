"""The demo's simulated month must not pass for measured figures in the month after it: a 7-day period
read in full across the month's edge holds the simulated days, and every page that shows it says so."""
from __future__ import annotations

import datetime as dt
import html

from agent.config import load_config
from agent.demo.history import write_history
from agent.export import page
from agent.report import build_report, render

from .conftest import ROOT

NOW = dt.datetime(2026, 12, 2, 11, 0, tzinfo=dt.timezone.utc).timestamp()  # Wednesday 2 December, 12:00 at +01:00


def test_a_period_across_the_edge_into_a_simulated_month_says_so_on_every_page(tmp_path):
    cfg = load_config(ROOT / "config" / "demo.yaml", probing=False)
    assert write_history(cfg, str(tmp_path), NOW) == "2026-11"
    doc = build_report(cfg, str(tmp_path), "2026-12", NOW)
    edge = [p for p in doc["periods"] if p["start"][:10] == "2026-11-30"]
    assert edge and all(p["simulated"] == ["2026-11"] and p["count"] > 0 for p in edge)
    assert not [p for p in doc["periods"] if "simulated" in p and p not in edge]
    line = "holds the SIMULATED days of 2026-11: they were not measured"
    for fmt in ("text", "markdown", "html"):
        assert line in html.unescape(render(doc, fmt)), fmt
    november = build_report(cfg, str(tmp_path), "2026-11", NOW)
    assert "SIMULATED" in november["readings"]["data"] and not any("simulated" in p for p in november["periods"])
    out: list[str] = []
    status = {"services": {p["service"]: {"latency": {"period": p}} for p in edge}}
    page._latency(out.append, status, doc)  # the status page's row of the current period
    assert "".join(out).count("holds the SIMULATED days of 2026-11") == len(edge)


def test_a_period_judged_on_its_days_in_an_ended_month_says_so_in_every_format(tmp_path):
    cfg = load_config(ROOT / "config" / "demo.yaml", probing=False)
    write_history(cfg, str(tmp_path), NOW)
    doc = build_report(cfg, str(tmp_path), "2026-11", NOW)  # November is over; its last period runs into December
    (last,) = {p["start"] for p in doc["periods"] if not p["complete"]}
    assert last[:10] == "2026-11-30"
    for fmt in ("text", "markdown", "html"):
        assert "its days in this month; in full in next month's report" in html.unescape(render(doc, fmt)), fmt
