"""The journal read in one pass for a bundle (store/journal.py: checked_lines) gives what the separate readings
give: the JSON lines, the records edited after they were written, the sealed runs' hashes; an incident's first
and last records, count and locations are those of the records themselves."""
from __future__ import annotations

import hashlib
import sqlite3

from agent.ledger.journal import Record
from agent.probes import Detail
from agent.store import Store, chain, journal
from agent.store.verify import journal_runs

T0 = 1_773_000_000.0
NAMES = ("a", "b", "c")


def _record(name: str, t: float, outcome: str) -> Record:
    detail = Detail("192.0.2.1:443", (("Server", "x"), ("Date", str(t))), b"down" if outcome == "down" else b"",
                    "ab" * 32, 64)
    return Record(name, t, outcome, "http_status" if outcome == "down" else "", 503 if outcome == "down" else 200,
                  "HTTP 503" if outcome == "down" else "", 0.1, (0.0, 0.01, 0.02), detail, False)


def _store(tmp_path) -> Store:
    """Three targets over an hour, written a minute at a time so that the chain seals them in several runs;
    records of different targets on the same microsecond."""
    store = Store(tmp_path, thresholds=(0.5, 1.0), clock=lambda: T0 + 7200)
    for m in range(60):
        t = T0 + 60 * m
        recs = [_record(n, t + (0 if i < 2 else 7), "down" if (m + i) % 3 else "up") for i, n in enumerate(NAMES)]
        store.write([], [], {n: "web" for n in NAMES}, records=recs, now=t + 60, location="paris" if m % 2 else "rome")
    store.seal_now(T0 + 7200)
    return store


def _separately(conn: sqlite3.Connection, start: float, until: float, ids: tuple[int, int], dest) -> tuple:
    journal.write_lines(conn, start, until, ids, dest)
    return hashlib.sha256(dest.read_bytes()).hexdigest(), list(journal.unmatched(conn, start, until, ids))


def test_one_pass_gives_the_lines_the_edited_records_and_the_runs_hashes(tmp_path):
    store = _store(tmp_path / "s")
    runs = journal_runs(store.conn, None, None)
    assert len(runs) > 3 and runs[-2][1] > 100
    lo, hi = runs[1][0], runs[-2][1]  # the span's own records and the runs sealed about it
    span = (T0 + 600, T0 + 1800)
    for edit in (None, "UPDATE journal SET error = 'HTTP 502' WHERE id = 40",
                 "UPDATE journal SET headers = '[]', hash = hash WHERE id IN (41, 100)"):
        if edit:
            store.conn.execute(edit)
        want_digest, want_edited = _separately(store.conn, *span, (lo, hi), tmp_path / "lines.jsonl")
        got = journal.checked_lines(store.conn, *span, (lo, hi), tmp_path / "pass.jsonl", runs=runs)
        assert (tmp_path / "pass.jsonl").read_bytes() == (tmp_path / "lines.jsonl").read_bytes()
        assert got.digest == want_digest and got.edited == len(want_edited) and got.found == want_edited[:10]
        assert set(got.runs) == {r for r in runs if lo <= r[0] and r[1] <= hi} and len(got.runs) == len(runs) - 2
        for a, b in got.runs:
            assert got.runs[(a, b)] == chain.run_hash(journal.run_texts(store.conn, a, b))
    assert got.edited == 3
    problems, _ = store.verify()
    assert problems == store.verify(hashed=lambda: got.runs)[0] and any("40" in p for p in problems), problems
    store.close()


def test_an_incident_reads_its_first_and_last_records_count_and_places(tmp_path):
    store = _store(tmp_path / "s")
    rows = store.conn.execute("SELECT j.id, t.name, j.at_us, j.location FROM journal j JOIN targets t "
                              "ON t.id = j.target_id WHERE j.outcome = 'down'").fetchall()
    for targets, start, end in ((["a", "b"], T0, T0 + 3600), (["c"], T0 + 120, T0 + 127), (["b"], T0 + 60, T0 + 61),
                                (["a", "b", "c"], T0 + 300, T0 + 900), (["a"], T0 + 4000, T0 + 5000)):
        mine = sorted((at, i, loc) for i, name, at, loc in rows
                      if name in targets and start * 1e6 <= at < end * 1e6)
        ep = store.journal_episode(targets, start, end)
        assert ep["records"] == len(mine) and ep["locations"] == sorted({m[2] for m in mine})
        assert (ep["first"] and ep["first"]["id"]) == (mine[0][1] if mine else None)
        assert (ep["last"] and ep["last"]["id"]) == (mine[-1][1] if mine else None)
        if mine:
            oldest = store.journal(targets, start, end, outcomes=("down",), limit=1)[0]
            assert ep["first"] == {k: v for k, v in oldest.items() if k != "body"}
    store.close()
