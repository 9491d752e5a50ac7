"""Path records (paths/capture.py) as evidence: packed into the journal's blocks they read back byte for byte,
artifact and all, and every reader finds them there as it does in rows; a crafted path.json in a ledger
neither stops a report nor renders as markup."""
from __future__ import annotations

import json
import re

import pytest

from agent.ledger.journal import Record
from agent.paths import PATH
from agent.probes import Detail
from agent.store import Store, packing
from agent.store.extract import JOURNAL_PARTS

T0 = 1_773_000_000.0
DAY = 86400.0
DOC = {"address": "192.0.2.1", "dns": {"name": "api.example.com", "addresses": ["192.0.2.1"]},
       "path": {"method": "udp", "address": "192.0.2.1", "reached": False, "stopped_at": 2, "duration_s": 1.0,
                "hops": [{"hop": 1, "address": "10.0.0.1", "reply": "time_exceeded", "rtt_ms": [0.5]},
                         {"hop": 2, "address": "10.0.0.2", "reply": "net_unreachable", "rtt_ms": [0.9, 1.1]}]}}


def _path(at: float, doc: object = DOC, name: str = "a") -> Record:
    data = doc if isinstance(doc, bytes) else json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return Record(name, at, PATH, "", None, "stopped at hop 2 (10.0.0.2, which answered net unreachable)", 1.0,
                  None, Detail("192.0.2.1", artifacts=(("path.json", data),)), False)


def _down(at: float) -> Record:
    return Record("a", at, "down", "timeout", None, "timed out", 5.0, (5.0,), Detail("192.0.2.1:443"), False)


def _ledger(path, packs: bool, monkeypatch) -> Store:
    """A failure, and the path traced for it written a flush later: sealed and packed apart, the path's block
    holds no failure record."""
    monkeypatch.setattr(packing, "PACK_AGE", DAY if packs else 1e12)
    store = Store(path, thresholds=(0.5, 1.0), clock=lambda: T0)
    store.write([], [], {"a": "web"}, records=[_down(T0)], now=T0 + 2 * DAY, seal_all=True)
    store.write([], [], {"a": "web"}, records=[_path(T0 + 3)], now=T0 + 2 * DAY + 1, seal_all=True)
    return store


def test_a_path_packed_in_a_block_without_failures_is_read_as_in_a_row(tmp_path, monkeypatch):
    rows, packed = _ledger(tmp_path / "rows", False, monkeypatch), _ledger(tmp_path / "packed", True, monkeypatch)
    try:
        assert packed.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0  # both records in blocks
        assert packed.conn.execute("SELECT COUNT(*) FROM journal_blocks").fetchone()[0] == 2
        found = [s.journal_paths(["a"], T0, T0 + 60) for s in (rows, packed)]
        assert found[0] == found[1] and found[0][0]["path"] == DOC
        sha = found[1][0]["artifacts"][0]["sha256"]
        assert packed.artifact(sha) == ("path.json", json.dumps(DOC, separators=(",", ":"), sort_keys=True).encode())
        for outcomes, n in ((JOURNAL_PARTS["failures"], 2), ((PATH,), 1)):  # a report over locations hashes failures
            hashed = [list(s.evidence_rows(["a"], T0, T0 + 60, outcomes)) for s in (rows, packed)]
            assert hashed[0] == hashed[1] and hashed[0][-1][2] == n
            assert packed.journal(["a"], T0, T0 + 60, outcomes=outcomes) == rows.journal(["a"], T0, T0 + 60,
                                                                                          outcomes=outcomes)
    finally:
        rows.close()
        packed.close()


INJECTED = "<img src=x onerror=alert(1)>|**bold**|\n## forged heading"
HOSTILE = {  # what a crafted ledger's path.json may hold in place of what the agent writes
    "hops not a list": {"path": {"hops": 5, "address": "192.0.2.1"}},
    "hops a mapping": {"path": {"hops": {"hop": 1}}},
    "addresses a number": {"dns": {"name": 7, "addresses": 7, "error": ["x"]}},
    "a number too large for a float": {"path": {"hops": [{"hop": 1, "address": "10.0.0.1", "rtt_ms": [10 ** 400]}]}},
    "NaN and infinite times": {"path": {"hops": [{"hop": 1, "address": "10.0.0.1", "rtt_ms": [1e999, -1e999]}]}},
    "numbers as strings and booleans": {"path": {"stopped_at": True, "hops": [
        {"hop": "1", "address": "10.0.0.1"}, {"hop": True, "address": {"a": 1}, "reply": ["x"], "rtt_ms": [True]}]}},
    "markup and line breaks": {"path": {"address": INJECTED, "stopped_at": 1, "hops": [
        {"hop": 1, "address": INJECTED, "reply": INJECTED, "rtt_ms": [1.0]}]}, "dns": {"name": INJECTED}},
    "huge texts": {"path": {"address": "9" * 500_000, "hops": [{"hop": 1, "address": "x" * 500_000}]}},
    "not a mapping": [1, 2, 3],
}


def _report_doc(tmp_path_factory) -> dict:
    from tests.month_fixture import NOW, build
    from agent.report import build_report

    state = tmp_path_factory.mktemp("month") / "state"
    cfg, _ = build(state)
    return build_report(cfg, str(state), "2026-02", NOW)


@pytest.fixture(scope="module")
def month_doc(tmp_path_factory):
    return _report_doc(tmp_path_factory)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_crafted_path_json_is_read_field_by_field_and_rendered_as_text(case, tmp_path, month_doc):
    import math

    from agent.report.formats import render
    from agent.report.paths import episode_paths

    data = json.dumps(HOSTILE[case]).replace("Infinity", "NaN", 1).encode()
    store = Store(tmp_path, thresholds=(0.5, 1.0), clock=lambda: T0)
    try:
        store.write([], [], {"a": "web"}, records=[_path(T0 + 3, data)], now=T0 + 10)
        store.write([], [], {"a": "web"}, records=[_path(T0 + 4, DOC | {"dns": INJECTED})], now=T0 + 10)
        paths = episode_paths([store], ["a"], T0, T0 + 60, (), None)
    finally:
        store.close()
    (p,) = paths
    assert (p["record"], p["traces"]) == (2 if case == "not a mapping" else 1, 2)  # unreadable: the next shown
    json.dumps(p, allow_nan=False)  # a report is JSON any reader takes
    texts = [p["summary"], p["address"], p["dns"]["name"], p["dns"]["error"], *p["dns"]["addresses"]]
    for h in p["hops"]:
        assert h["hop"] is None or type(h["hop"]) is int
        assert all(type(r) is float and math.isfinite(r) for r in h["rtt_ms"])
        texts += [x for x in (h["address"], h["reply"]) if x is not None]
    assert all(type(t) is str and "\n" not in t and len(t) <= 300 for t in texts)
    doc = json.loads(json.dumps(month_doc))
    doc["incidents"][0]["paths"] = paths
    html, md, text = (render(doc, f) for f in ("html", "markdown", "text"))
    assert "<img" not in html and "<img" not in md and "\n## forged" not in md + text
    table = md[md.index("| Episode | Path | Hops |"):].split("\n\n")[0].splitlines()[2:]
    assert table and all(re.sub(r"\\.", "", row).count("|") == 4 for row in table)  # no cell split by a pipe


def test_a_path_json_nested_deeper_than_a_parser_goes_is_left_out(tmp_path):
    from agent.report.paths import episode_paths

    store = Store(tmp_path, thresholds=(0.5, 1.0), clock=lambda: T0)
    try:
        deep = b'{"path":' * 100_000 + b"{}" + b"}" * 100_000  # within the size read, beyond the recursion limit
        store.write([], [], {"a": "web"}, records=[_path(T0 + 3, deep), _path(T0 + 4)], now=T0 + 10)
        (rec,) = store.journal_paths(["a"], T0, T0 + 60)
        assert (rec["id"], rec["traces"]) == (2, 2) and rec["path"] == DOC  # the first that reads
        (p,) = episode_paths([store], ["a"], T0, T0 + 60, (), None)
        assert (p["record"], p["traces"], p["stopped_at"]) == (2, 2, 2)
    finally:
        store.close()


def test_every_target_of_a_long_episode_shows_its_first_path_and_how_many_were_traced(tmp_path):
    from agent.report.paths import episode_paths

    store = Store(tmp_path, thresholds=(0.5, 1.0), clock=lambda: T0)
    try:  # a failing for hours, traced every 5 minutes; b failing at the end of it only
        records = [_path(T0 + 300 * k) for k in range(80)] + [_path(T0 + 300 * 80, name="b")]
        store.write([], [], {"a": "web", "b": "web"}, records=records, now=T0 + 300 * 81)
        paths = episode_paths([store], ["a", "b"], T0, T0 + 300 * 81, (), None)
    finally:
        store.close()
    assert [(p["target"], p["traces"], p["record"]) for p in paths] == [("a", 80, 1), ("b", 1, 81)]


def test_a_crafted_report_json_whose_path_cannot_be_rendered_is_a_finding(tmp_path, month_doc):
    from agent.report.unbundle import _check_html

    doc = json.loads(json.dumps(month_doc))
    p = {"location": "", "target": "web-ui", "summary": "", "address": "192.0.2.1", "reached": False,
         "stopped_at": None, "traces": 1, "hops": [{"hop": 1, "address": "10.0.0.1", "reply": None,
                                                     "owner": None, "rtt_ms": [10 ** 400]}]}
    doc["incidents"][0]["paths"] = [p]  # a number no float holds: Python's JSON reads it, formatting fails
    (tmp_path / "report.html").write_text("<html></html>")
    (found,) = _check_html(tmp_path, doc)
    assert found.startswith("report.html: report.json cannot be rendered to compare it with: OverflowError")
