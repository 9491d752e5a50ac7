"""The report over several months (`report --quarter`, `--year`, `--from/--to`): a quarter equals its
three monthly reports row for row, its totals are the months added up (checked here by a computation of
the test's own), every format renders it, --verify checks it, and bad ranges read clearly."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from html import unescape
from html.parser import HTMLParser

import pytest

from agent.calendar import Calendar
from agent.cli import main
from agent.config import load_config
from agent.demo.history import write_history
from agent.report import ReportError, build, open_store, render
from agent.report.period import build_period, months_between, quarter, verify_period, year
from agent.report.signing import keygen
from agent.store import Store
from agent.tickets import parse_export

from .month_fixture import CONFIG

TZ = dt.timezone(dt.timedelta(hours=1))
NOW = dt.datetime(2026, 10, 9, 12, 0, tzinfo=TZ).timestamp()  # the quarter 2026-Q3 is closed
MONTHS = ["2026-07", "2026-08", "2026-09"]
# Tickets of their own in July and August (the simulated months all hold the same SIM ids: the last written,
# September, keeps them): the totals then add up tickets of several months, one of them missed unanswered.
TICKETS = b"""id,priority,opened_at,responded_at
Q-1,P1,2026-07-07T10:00:00+01:00,2026-07-07T12:00:00+01:00
Q-2,P2,2026-08-04T10:00:00+01:00,2026-08-05T10:00:00+01:00
Q-3,P1,2026-08-12T09:00:00+01:00,
Q-4,P3,2026-08-20T09:00:00+01:00,2026-08-21T09:00:00+01:00
"""

# Most of August left out: its few observed minutes weigh little in the quarter, so that the quarter's
# availability over its minutes and a mean of the monthly ratios part.
EXCLUDED = '    - {start: "2026-08-01T00:00:00+01:00", end: "2026-08-24T00:00:00+01:00", reason: "migration, agreed"}\n'


@pytest.fixture(scope="module")
def quarter_state(tmp_path_factory):
    """Three simulated months (the demo's) in one ledger, signed reports, as `sla-agent demo` writes one."""
    tmp = tmp_path_factory.mktemp("quarter")
    private, _ = keygen(tmp / "keys")
    path = tmp / "config.yaml"
    path.write_text(CONFIG.replace("  exclusions:\n", "  exclusions:\n" + EXCLUDED)
                    + f"evidence: {{signing_key_file: {private}}}\n")
    cfg = load_config(path)
    state = tmp / "state"
    for m in (8, 9, 10):  # each call writes the month before the one it is told it is
        write_history(cfg, str(state), dt.datetime(2026, m, 10, tzinfo=TZ).timestamp())
    rw = Store(str(state), thresholds=cfg.contract.thresholds)
    rw.upsert_tickets(parse_export(cfg, "tickets.csv", TICKETS))
    rw.close()
    return cfg, path, state


@pytest.fixture(scope="module")
def quarter_doc(quarter_state):
    cfg, _, state = quarter_state
    store = open_store(cfg, str(state))
    try:
        return build_period(cfg, store, *quarter("2026-Q3"), NOW)
    finally:
        store.close()


def _monthly(cfg, state) -> list[dict]:
    """The three monthly reports built separately, as `report --month` builds each, read back as JSON."""
    store = open_store(cfg, str(state))
    try:
        return [json.loads(render(build(cfg, store, m, NOW), "json")) for m in MONTHS]
    finally:
        store.close()


def test_a_quarter_equals_its_three_monthly_reports_row_for_row(quarter_state, quarter_doc):
    cfg, _, state = quarter_state
    doc = json.loads(render(quarter_doc, "json"))
    monthly = _monthly(cfg, state)
    assert doc["period"]["months"] == MONTHS and doc["complete"]
    assert doc["reports"] == monthly  # whole and unchanged, signatures included
    flat = [(r["month"], r["row"], r["service"], r["measure"], r["value"], r["verdict"]) for r in doc["period"]["rows"]]
    assert flat == [(m["month"], r["row"], r["service"], r["measure"], r["value"], r["verdict"])
                    for m in monthly for r in m["rows"]]
    assert len(flat) == 3 * 6
    for total in doc["period"]["totals"]["rows"]:
        assert total["months"] == {m["month"]: next(r["verdict"] for r in m["rows"] if r["row"] == total["row"])
                                   for m in monthly}


def _rows(monthly: list[dict], row: int) -> list[dict]:
    return [next(r for r in m["rows"] if r["row"] == row) for m in monthly]


def test_the_totals_are_the_months_added_up(quarter_state, quarter_doc):
    """Computed here from the monthly JSONs alone: minutes summed (not ratios averaged), tickets summed, the
    worst share of every 7-day period, each period once (in full where a month's end cut it)."""
    cfg, _, state = quarter_state
    monthly = _monthly(cfg, state)
    totals = {r["row"]: r for r in json.loads(render(quarter_doc, "json"))["period"]["totals"]["rows"]}
    assert sorted(totals) == [1, 2, 3, 4, 5, 6]
    for row in (1, 2):
        slices = [r["details"]["slices"] for r in _rows(monthly, row)]
        up, down = sum(s["up"] for s in slices), sum(s["down"] for s in slices)
        assert totals[row]["details"]["slices"]["up"] == up and totals[row]["details"]["slices"]["down"] == down
        assert totals[row]["value"] == round(up / (up + down), 6)
        mean = sum(s["up"] / (s["up"] + s["down"]) for s in slices) / 3
        assert abs(mean - up / (up + down)) > 1e-5  # August weighs less than a third
        assert totals[row]["verdict"] == ("met" if up / (up + down) >= 0.99 else "missed")
    latest: dict[tuple[str, str], dict] = {}
    for m in monthly:
        for p in m["periods"]:
            latest[(p["start"], p["end"])] = p
    assert len(latest) < sum(len(m["periods"]) for m in monthly)  # some periods ran past a month's end
    for bound in ("0.5", "1"):
        assert totals[3]["value"][bound] == min(p["below"][bound]["fraction"] for p in latest.values() if p["count"])
    assert [p["start"] for p in totals[3]["details"]["periods"]] == sorted(s for s, _ in latest)
    assert totals[3]["verdict"] == ("missed" if any(p["verdict"] == "missed" for p in latest.values()) else "met")
    for row, prio in ((4, "P1"), (5, "P2"), (6, "P3")):
        figures = [m["tickets"][prio] for m in monthly]
        got = totals[row]["details"]
        for k in ("total", "met", "missed", "pending"):
            assert got[k] == sum(f[k] for f in figures), (prio, k)
        decided = got["met"] + got["missed"]
        assert totals[row]["value"] == (round(got["met"] / decided, 6) if decided else None)
    assert totals[4]["details"]["total"] == 5 and totals[4]["details"]["missed"] == 1  # July's, August's, September's


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._id, self._row = None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._id = dict(attrs).get("id")
            self.tables[self._id] = []
        elif tag == "tr" and self._id:
            self._row = []
            self.tables[self._id].append(self._row)
        elif tag == "td" and self._row is not None:
            self._row.append("")

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data

    def handle_endtag(self, tag):
        if tag == "table":
            self._id, self._row = None, None


def test_the_period_in_every_format(quarter_state, quarter_doc):
    cfg, _, state = quarter_state
    monthly = _monthly(cfg, state)
    text = render(quarter_doc, "text")
    assert text.startswith("SLA report 2026-07 to 2026-09\n")
    md = render(quarter_doc, "markdown")
    assert md.startswith("# SLA report 2026-07 to 2026-09\n")
    assert md.count("| 2026-08 | ") == 6 + len(monthly[1]["periods"]) + 3  # its rows, its 7-day periods, its tickets
    parser = _Tables()
    parser.feed(render(quarter_doc, "html"))
    t = parser.tables
    assert [len(t["totals"]), len(t["months"])] == [1 + 6, 1 + 18]
    assert len(t["periods"]) == 1 + sum(len(m["periods"]) for m in monthly)
    assert len(t["tickets"]) == 1 + 3 * 3 + 3
    assert t["totals"][2][6] == "; ".join(f"{m['month']} {v}" for m, v in
                                          zip(monthly, (r["verdict"].upper().replace("_", " ")
                                                        for r in _rows(monthly, 2))))
    for m in monthly:  # each month's figures as its own report writes them, in every format
        for r in m["rows"]:
            shown = render({**m, "rows": [r]}, "text").splitlines()[3].split()  # the month's own table line
            assert any(line.split()[1:] == shown for line in text.splitlines() if line.startswith(m["month"]))
        cells = [row[1:] for row in t["months"][1:] if row[0] == m["month"]]
        assert [c[0] for c in cells] == [str(r["row"]) for r in m["rows"]]
    lines = list(csv.reader(io.StringIO(render(quarter_doc, "csv"))))
    assert lines[0][:8] == ["kind", "month", "row", "service", "measure", "objective", "value", "verdict"]
    assert all(len(line) == len(lines[0]) for line in lines)  # one table, one header
    rows_block = [line[:8] for line in lines if line[0] == "row"]
    own = [line[:8] for m in monthly for line in list(csv.reader(io.StringIO(render(m, "csv"))))[1:7]]
    assert rows_block[:18] == own  # the monthly CSV's own lines
    assert [line[1] for line in rows_block[18:]] == ["2026-07 to 2026-09"] * 6
    assert {line[0] for line in lines[1:]} == {"row", "tickets", "period"}
    assert json.loads(render(quarter_doc, "json"))["period"]["from"] == "2026-07"
    said = "2026-07: SIMULATED: these figures were written by `sla-agent demo`"  # the demo's months say so
    assert said in text and said.replace("`", "\\`") in md and said in unescape(render(quarter_doc, "html"))


def test_verify_checks_each_month_and_the_totals(quarter_state, quarter_doc, tmp_path, capsys):
    cfg, path, state = quarter_state
    doc = json.loads(render(quarter_doc, "json"))
    assert doc["evidence"]["signature"]["algorithm"] == "ed25519"
    assert verify_period(cfg, str(state), doc) == []
    edited = json.loads(json.dumps(doc))
    edited["period"]["totals"]["rows"][0]["value"] = 0.9999
    problems = verify_period(cfg, str(state), edited)
    assert any("report_sha256" in p for p in problems) and any("signature" in p for p in problems)
    assert any("`period`" in p for p in problems)
    month = json.loads(json.dumps(doc))
    month["reports"][1]["rows"][0]["value"] = 0.9999
    problems = verify_period(cfg, str(state), month)
    assert any(p.startswith("2026-08: ") and "report_sha256" in p for p in problems)
    hostile = {**json.loads(json.dumps(doc)), "reports": [{"month": "2026-07"}, "x", *doc["reports"][1:]]}
    with pytest.raises(ReportError, match="not an sla-agent JSON period report"):
        verify_period(cfg, str(state), hostile)
    hostile["reports"][1] = {"rows": 3}
    problems = verify_period(cfg, str(state), hostile)
    assert "2026-07: not an sla-agent JSON report (no month or evidence block)" in problems
    assert any("the totals cannot be added up again" in p for p in problems)
    file = tmp_path / "q.json"
    file.write_text(json.dumps(doc))
    assert main(["report", "--config", str(path), "--state-dir", str(state), "--verify", str(file)]) == 0
    assert "verified" in capsys.readouterr().out
    file.write_text(json.dumps(edited))
    assert main(["report", "--config", str(path), "--state-dir", str(state), "--verify", str(file)]) == 1
    assert "MISMATCH" in capsys.readouterr().err


def test_ranges_of_months():
    assert quarter("2026-Q4") == ("2026-10", "2026-12") and quarter("2027-q1") == ("2027-01", "2027-03")
    assert year("2026") == ("2026-01", "2026-12")
    assert months_between("2026-11", "2027-02") == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert len(months_between("2026-01", "2028-12")) == 36
    with pytest.raises(ValueError, match="37 months"):
        months_between("2026-01", "2029-01")
    with pytest.raises(ValueError, match="ends"):
        months_between("2026-11", "2026-10")


def _cli(path, state, *extra):
    return main(["report", "--config", str(path), "--state-dir", str(state), *extra])


def test_the_cli_flags(quarter_state, quarter_doc, tmp_path, capsys):
    """On the real clock: the quarter lies in the past for any run of this test."""
    _, path, state = quarter_state
    out = tmp_path / "q.json"
    assert _cli(path, state, "--quarter", "2026-Q3", "--format", "json", "--output", str(out)) == 0
    assert "report for 2026-07 to 2026-09 written to" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["period"]["rows"] == quarter_doc["period"]["rows"]
    assert doc["period"]["totals"] == quarter_doc["period"]["totals"]
    assert _cli(path, state, "--verify", str(out)) == 0
    capsys.readouterr()
    assert _cli(path, state, "--from", "2026-08", "--to", "2026-09", "--format", "csv") == 0
    assert [line.split(",")[1] for line in capsys.readouterr().out.splitlines()[1:14]] == \
        ["2026-08"] * 6 + ["2026-09"] * 6 + ["2026-08 to 2026-09"]
    assert _cli(path, state, "--year", "2026", "--format", "markdown") == 0
    assert capsys.readouterr().out.startswith("# SLA report 2026-01 to 2026-12\n")


@pytest.mark.parametrize("args, said", [
    (["--from", "2026-09", "--to", "2026-08"], "the period ends (2026-08) before it begins (2026-09)"),
    (["--from", "2020-01", "--to", "2026-01"], "2020-01 to 2026-01 is 73 months; a period report covers 36 at most"),
    (["--quarter", "2026-5"], "--quarter must be YYYY-Qn, n from 1 to 4, such as 2026-Q4, got '2026-5'"),
    (["--year", "26"], "--year must be YYYY, such as 2026, got '26'"),
    (["--to", "2026-09"], "--to needs --from, the period's first month"),
    (["--from", "2026-13"], "--from: month must be 01 to 12 in YYYY-MM, got '2026-13'"),
    (["--quarter", "2026-Q3", "--location", "x=/nowhere"], "a period's report reads this agent's ledger only"),
])
def test_a_bad_period_reads_clearly(quarter_state, capsys, args, said):
    _, path, state = quarter_state
    assert _cli(path, state, *args) == 2
    assert said in capsys.readouterr().err


def test_a_period_reaching_a_month_not_begun_is_refused(quarter_state, capsys):
    cfg, path, state = quarter_state
    y, m = Calendar(cfg.contract).month_of(time.time())
    assert _cli(path, state, "--year", str(y + 1)) == 2
    assert f"{y + 1}-01 has not begun (it is {y:04d}-{m:02d} in the contract's time zone): end the period at " \
           f"{y:04d}-{m:02d} at the latest" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _cli(path, state, "--month", "2026-08", "--quarter", "2026-Q3")
    assert e.value.code == 2 and "not allowed with argument --month" in capsys.readouterr().err
