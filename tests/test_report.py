"""The monthly report: golden JSON and Markdown for a synthetic month, HTML structure and a real
headless-Chromium render, --verify against edited numbers and changed ledger rows, tickets."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
from html import unescape
from html.parser import HTMLParser

import pytest

from agent.cli import main
from agent.report import build_report, verify_report
from agent.report import render
from agent.report.formats.common import FAVICON_LINK

from .conftest import ROOT
from .month_fixture import CONFIG, NOW, build

GOLDEN = ROOT / "tests" / "data" / "golden"


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    state = tmp_path_factory.mktemp("month") / "state"
    cfg, cal = build(state)
    doc = build_report(cfg, str(state), "2026-02", NOW)
    doc.pop("agent_version")
    return cfg, state, doc


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SLA_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with SLA_UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text(), f"{name} differs from the golden file"


def test_golden_json(month):
    _golden("report-2026-02.json", render(month[2], "json"))


def test_golden_markdown(month):
    _golden("report-2026-02.md", render(month[2], "markdown"))


def test_the_months_story(month):
    _, _, doc = month
    rows = {r["row"]: r for r in doc["rows"]}
    assert [rows[i]["verdict"] for i in range(1, 7)] == ["met", "missed", "missed", "missed", "met",
                                                        "insufficient_data"]
    web, api = rows[1]["details"]["slices"], rows[2]["details"]["slices"]
    assert web["down"] == 45 and api["down"] == 480  # outages outside the windows only
    assert web["masked"] == api["masked"] == 4 * 120 + 90  # Thursdays + the exclusion
    assert web["unknown"] == 180  # the agent gap
    during = sorted((i["service"], str(i["during"])) for i in doc["incidents"])
    assert during == [("api", "None"), ("api", "exclusion"), ("api", "maintenance"), ("web", "None"),
                      ("web", "exclusion")]
    gaps = doc["coverage"]["services"]["web"]["gaps"]
    assert gaps == [{"start": "2026-02-03T02:00:00+01:00", "end": "2026-02-03T05:00:00+01:00", "minutes": 180}]
    assert [p["verdict"] for p in doc["periods"]][1:4] == ["met", "met", "missed"]
    t1 = next(t for t in doc["tickets"]["P1"]["list"] if t["id"] == "T-1")
    assert t1["business_response_h"] == 2.0  # Friday 17:30 -> Monday 10:00 (docs/contract.md, worked deadlines)


def test_html_structure_and_self_contained(month):
    html = render(month[2], "html")
    assert len(re.findall(r'<tr class="row"', html)) == 6
    assert re.findall(r'<span class="verdict (\w+)">', html)[:6] == ["met", "missed", "missed", "missed", "met",
                                                                      "insufficient_data"]
    n_periods = sum(1 for p in month[2]["periods"] if p["count"])  # a CDF panel only where there are requests
    assert html.count('<svg class="chart daily"') == 2
    assert html.count('<svg class="chart weekly"') == 1
    assert html.count('<svg class="chart cdf"') == n_periods
    assert html.count('<svg class="chart') == 3 + n_periods
    assert html.count('<p class="legend') == 3  # daily bars, weekly bars, CDFs
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "src=" not in html and re.findall(r"<link[^>]*>", html) == [FAVICON_LINK]  # the icon, inline


def test_html_renders_in_headless_chromium(month, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium not found: install the Debian package `chromium` (bash .ci/run does)")
    page = tmp_path / "report.html"
    page.write_text(render(month[2], "html"))
    shot = tmp_path / "report.png"
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1100,2400",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_verify_detects_edited_numbers_and_changed_rows(month, tmp_path):
    cfg, state, doc = month
    full = build_report(cfg, str(state), "2026-02", NOW)
    assert verify_report(cfg, str(state), full) == []
    edited = json.loads(json.dumps(full))
    edited["rows"][1]["value"] = 0.995
    edited["rows"][1]["verdict"] = "met"
    problems = verify_report(cfg, str(state), edited)
    assert any("numbers were edited" in p for p in problems)
    assert any("`rows` differs" in p for p in problems)
    # the same edit with a recomputed hash is still caught by recomputation
    from agent.report import report_hash
    edited["evidence"]["report_sha256"] = report_hash(edited)
    assert any("`rows` differs" in p for p in verify_report(cfg, str(state), edited))
    # a changed ledger row
    copy = tmp_path / "state"
    shutil.copytree(state, copy)
    conn = sqlite3.connect(copy / "ledger.db")
    hour, blob = conn.execute("SELECT hour, counts FROM minutes ORDER BY hour LIMIT 1 OFFSET 200").fetchone()
    import zlib
    import numpy as np
    arr = np.frombuffer(zlib.decompress(blob), dtype=np.uint16).copy()
    arr[1] += 1  # one more "down" probe
    conn.execute("UPDATE minutes SET counts=? WHERE hour=?", (zlib.compress(arr.tobytes()), hour))
    conn.commit()
    conn.close()
    problems = verify_report(cfg, str(copy), full)
    assert any("stored ledger rows differ" in p for p in problems)


def test_report_cli_formats_and_verify(month, tmp_path, capsys):
    cfg, state, _ = month
    config = tmp_path / "cfg.yaml"
    config.write_text(CONFIG)
    for fmt in ("text", "json", "markdown", "html", "csv"):
        out = tmp_path / f"r.{fmt}"
        assert main(["report", "--config", str(config), "--state-dir", str(state), "--month", "2026-02",
                     "--format", fmt, "--output", str(out)]) == 0
        assert out.stat().st_size > 100
    # One table with one header, as Python's csv (and a spreadsheet) reads it: it was two, the tickets'
    # after an empty line with a header of their own.
    with (tmp_path / "r.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    header = (tmp_path / "r.csv").read_text().splitlines()[0].split(",")
    assert header[:8] == ["kind", "month", "row", "service", "measure", "objective", "value", "verdict"]
    assert len(header) == len(set(header)) and all(None not in line for line in table)  # no line is longer
    assert all(len(line) == len(header) and "" not in (line["kind"], line["month"]) for line in table)
    assert [line["kind"] for line in table] == ["row"] * 6 + ["ticket"] * 5  # one line per ticket
    assert (table[0]["row"], table[0]["ticket"]) == ("1", "") and (table[6]["ticket"], table[6]["priority"]) == ("T-1", "P1")
    capsys.readouterr()
    assert main(["report", "--config", str(config), "--state-dir", str(state), "--verify", str(tmp_path / "r.json")]) == 0
    assert "verified" in capsys.readouterr().out
    assert main(["report", "--config", str(config), "--state-dir", str(state), "--month", "2026-13"]) == 2
    assert main(["report", "--config", str(config), "--state-dir", str(tmp_path / "none"), "--month", "2026-02"]) == 1


def test_a_period_running_past_a_finished_month_is_judged_on_its_days_in_the_month(month):
    """February 2026 ends on a Saturday: its last period runs to 2 March. It read `insufficient_data`
    (coverage 86 %: the two days past the month were counted as unobserved) although every minute of
    it inside the month was observed."""
    last = month[2]["periods"][-1]
    assert last["end"].startswith("2026-03-02") and not last["complete"]
    assert last["coverage"] == 1.0 and last["verdict"] == "met"
    assert "its days in this month" in render(month[2], "text")


def test_the_time_zone_reading_of_utc_says_it_has_no_summer_time():
    """It called UTC "a named zone: it follows summer time"."""
    from agent.config import parse_config
    from agent.report.sections import readings

    for tz in ("UTC", "+01:00", "Europe/Paris"):
        cfg = parse_config(f'contract: {{timezone: "{tz}"}}\ntargets: [{{name: a, service: web, url: "http://127.0.0.1:1/"}}]')
        text = " ".join(str(v) for v in readings(cfg).values())
        assert ("follows summer time" in text) == (tz == "Europe/Paris"), (tz, text)
        assert ("UTC has no summer time" in text) == (tz == "UTC")


class _Cells(HTMLParser):
    """The text of each table cell of rendered HTML, row by row, per table."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.in_cell = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
            self.in_cell = True

    def handle_endtag(self, tag: str) -> None:
        self.in_cell = self.in_cell and tag not in ("td", "th")

    def handle_data(self, data: str) -> None:
        if self.in_cell:
            self.tables[-1][-1][-1] += data


HOSTILE = ["<script>alert(7)</script>", "A|B", "C\\|D", "E`F`G", "[x](javascript:alert(1))", "H&lt;I", "*bold*",
           "_u_", "back\\slash", "~~s~~", "<http://evil.example>", "![i](http://evil.example/i.png)"]


def test_markdown_shows_values_from_data_as_written_and_never_as_markup(month, tmp_path):
    """Ticket ids, a window's reason, a target and a service holding Markdown and HTML: a real CommonMark
    renderer with tables (markdown-it-py, as a wiki would) shows each as written, in the cell it belongs to."""
    from markdown_it import MarkdownIt

    from agent.store import Store
    from agent.tickets import Ticket
    cfg, state, _ = month
    copy = tmp_path / "state"
    shutil.copytree(state, copy)
    store = Store(copy, thresholds=cfg.contract.thresholds)
    opened = 1771000000.0  # 13 February 2026
    store.upsert_tickets([Ticket(i, "P2", opened + k * 60, opened + k * 60 + 600) for k, i in enumerate(HOSTILE)])
    store.add_window("exclusion", opened, opened + 60, "cut | here\nand <b>there</b> & [more]")
    store.close()
    doc = build_report(cfg, str(copy), "2026-02", NOW)
    doc["incidents"][0]["targets"] = ["<img src=x onerror=alert(1)>|t"]
    doc["incidents"][0]["service"] = "s|v`c"
    text = render(doc, "markdown")
    assert "<script>" not in text and "<img" not in text and "<b>" not in text

    lines = text.splitlines()
    for k, line in enumerate(lines):  # every row of a table has as many cells as its header
        if line.startswith("|") and not lines[k - 1].startswith("|"):
            header = len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))
        if line.startswith("|"):
            assert len(re.findall(r"(?<!\\)(?:\\\\)*\|", line)) == header, line

    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<script" not in html and "<img" not in html and "<a " not in html and "<em>" not in html
    assert html.count("<code>") == 1 and "<b>" not in html  # the one code span is the report's own command
    parsed = _Cells()
    parsed.feed(html)
    tickets = next(t for t in parsed.tables if t[0][0] == "Ticket")
    assert [r[0] for r in tickets[1:] if r[0] in HOSTILE] == HOSTILE  # each id whole, in its own cell
    assert all(len(r) == len(tickets[0]) for r in tickets)
    episodes = next(t for t in parsed.tables if t[0][0] == "Start")
    assert episodes[1][3:5] == ["s|v`c", "<img src=x onerror=alert(1)>|t"]
    assert "cut | here and <b>there</b> & [more]" in unescape(re.sub(r"<[^>]+>", "", html))  # tags, then entities
