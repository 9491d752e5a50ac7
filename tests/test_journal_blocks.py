"""Sealed journal records packed into blocks (store/blocks.py, store/packing.py) read back as the rows they
were: two ledgers written alike, one packing and one not, give every reader the same answer byte for byte
(JSON lines, edited records, runs' hashes, evidence hash, minute counts, records and incidents, the chain's
walk, a month's extract); and the journal takes a fraction of the room."""
from __future__ import annotations

import sqlite3

import pytest

from agent.ledger.journal import Record
from agent.probes import Detail
from agent.store import Store, journal, packing
from agent.store.verify import journal_runs

T0 = 1_773_000_000.0
NAMES = ("a", "b", "c")
DAYS = 3


def _record(name: str, t: float, outcome: str) -> Record:
    detail = Detail("192.0.2.1:443", (("Server", "x%"), ("Date", str(t))), b"down \"!\"" if outcome == "down" else b"",
                    "ab" * 32, 64)
    return Record(name, t, outcome, "http_status" if outcome == "down" else "", 503 if outcome == "down" else None,
                  "HTTP 503 \u00e9" if outcome == "down" else "", 0.1 + (t % 7) / 1000, (0.0, 0.01, t % 3 / 100),
                  detail, outcome == "inconclusive")


def _store(path, packs: bool, monkeypatch) -> Store:
    """Three targets over three days, a record each 5 minutes (failures among them), written a few minutes
    at a time; two records edited while they are rows: one in a form a block keeps, one it cannot."""
    monkeypatch.setattr(packing, "PACK_AGE", 86400.0 if packs else 1e12)
    store = Store(path, thresholds=(0.5, 1.0), clock=lambda: T0)
    for m in range(0, DAYS * 1440, 15):
        t = T0 + 60 * m
        recs = [_record(n, t + 300 * k + i * 0.000001, ("up", "down", "up", "inconclusive")[(m // 15 + k + i) % 4])
                for k in range(3) for i, n in enumerate(NAMES)]
        store.write([], [], {n: "web" for n in NAMES}, records=recs, now=t + 900, location="paris")
        if m == 600:
            store.conn.execute("UPDATE journal SET error = 'edited' WHERE id = 40")
            store.conn.execute("UPDATE journal SET headers = '[ ]' WHERE id = 41")
    store.seal_now(T0 + DAYS * 86400 + 900)
    return store


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        root = tmp_path_factory.mktemp("blocks")
        yield _store(root / "rows", False, mp), _store(root / "packed", True, mp)
    finally:
        mp.undo()


def test_most_records_are_packed_and_the_journal_is_smaller(pair):
    rows, packed = pair
    total = rows.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    left = packed.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    in_blocks = packed.conn.execute("SELECT SUM(n) FROM journal_blocks").fetchone()[0]
    assert in_blocks + left == total and left < total / 3
    assert packed.conn.execute("SELECT 1 FROM journal WHERE id = 41").fetchone()  # '[ ]': kept as a row
    assert not packed.conn.execute("SELECT 1 FROM journal WHERE id = 40").fetchone()  # packed, edit and all

    def size(s: Store) -> int:
        return s.conn.execute("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'journal%'").fetchone()[0]
    assert size(packed) < size(rows) / 3


SPANS = ((T0, T0 + DAYS * 86400 + 3600, (0, -1)), (T0 + 40000, T0 + 130000, (100, 900)), (T0 + 5, T0 + 6, (5, 2000)))


@pytest.mark.parametrize("span", SPANS)
def test_lines_edits_and_runs_are_the_same_packed_or_not(pair, span, tmp_path):
    start, until, ids = span
    runs = journal_runs(pair[0].conn, None, None)
    got = []
    for k, store in enumerate(pair):
        checked = journal.checked_lines(store.conn, start, until, ids, tmp_path / f"{k}.jsonl", runs=runs)
        journal.write_lines(store.conn, start, until, ids, tmp_path / f"w{k}.jsonl")
        got.append((checked, list(journal.unmatched(store.conn, start, until, ids)),
                    (tmp_path / f"{k}.jsonl").read_bytes(), (tmp_path / f"w{k}.jsonl").read_bytes(),
                    journal.run_hashes(store.conn, runs), [journal.run_texts(store.conn, a, b) for a, b in runs[:40]]))
    assert got[0] == got[1]
    assert got[0][2] == got[0][3] and got[0][2].count(b"\n") > (50 if start < T0 + 10 else 0)
    if start == T0:
        assert {r[0] for r in got[0][1]} == {40, 41}


def test_readers_of_records_give_the_same_packed_or_not(pair):
    end = T0 + DAYS * 86400 + 3600
    for targets, start, until in ((["a"], T0, end), (["a", "c"], T0 + 3000, T0 + 90000), (["b"], T0 + 1, T0 + 2)):
        for outcomes in (journal.ALL_OUTCOMES, ("down",), ("down", "inconclusive")):
            a, b = ([list(s.evidence_rows(targets, start, until, outcomes))[-1:] for s in pair])
            assert a == b
            assert pair[0].journal(targets, start, until, outcomes=outcomes) == \
                pair[1].journal(targets, start, until, outcomes=outcomes)
            assert pair[0].journal(targets, start, until, outcomes=outcomes, newest=True, limit=7) == \
                pair[1].journal(targets, start, until, outcomes=outcomes, newest=True, limit=7)
        assert pair[0].journal_episode(targets, start, until) == pair[1].journal_episode(targets, start, until)
        minutes = [{k: v.tolist() for k, v in s.journal_per_minute(start, until).items()} for s in pair]
        assert minutes[0] == minutes[1] and (minutes[0] or until < T0 + 10)


def test_the_chains_walk_and_a_months_extract_are_the_same_packed_or_not(pair, tmp_path):
    walks = [s.verify() for s in pair]
    assert walks[0] == walks[1] and any("journal record 40 " in p for p in walks[0][0]), walks[0]
    lines = []
    for k, store in enumerate(pair):
        ids = store.sealed_runs(T0 + 86400, T0 + 2 * 86400)
        db = store.extract(tmp_path / f"x{k}", T0, T0 + 86400, T0 + 2 * 86400)
        extract = Store(db.parent, thresholds=(0.5, 1.0), readonly=True)
        journal.write_lines(extract.conn, T0 + 86400, T0 + 2 * 86400, ids, tmp_path / f"x{k}.jsonl")
        lines.append(((tmp_path / f"x{k}.jsonl").read_bytes(), extract.verify()))
        extract.close()
    assert lines[0] == lines[1] and lines[0][0].count(b"\n") > 500


def test_a_byte_changed_in_a_block_is_named(pair, tmp_path):
    """A block's record edited (its stream decoded, a byte changed, encoded again): the record is named."""
    from agent.store.blocks import Block, Packed, encode
    path = pair[1].path
    copy = tmp_path / "ledger.db"
    src = sqlite3.connect(path)
    src.backup(dst := sqlite3.connect(copy))
    src.close()
    first, data, hashes = dst.execute("SELECT first_id, data, hashes FROM journal_blocks ORDER BY first_id "
                                      "LIMIT 1 OFFSET 1").fetchone()
    b = Block(data, hashes)
    recs = [Packed(b.ids[k], b.at[k] + (k == 3), b.duration[k], b.profile[k], b.link[k], b.phases[k], b.headers[k],
                   b.hashes[k]) for k in range(b.n)]
    dst.execute("UPDATE journal_blocks SET data = ? WHERE first_id = ?", (encode(recs)[0], first))
    dst.commit()
    dst.close()
    store = Store(tmp_path, thresholds=(0.5, 1.0), readonly=True)
    problems, _ = store.verify()
    store.close()
    assert any(f"journal record {b.ids[3]} " in p and "differs" in p for p in problems), problems


def test_a_ledger_of_before_the_blocks_is_packed_by_later_flushes_a_block_at_a_time(pair, tmp_path, monkeypatch):
    """A ledger of schema 8 (its journal all rows): upgraded on opening, its records packed by the flushes
    that follow, no more than a block each, and read the same before, during and after."""
    src = sqlite3.connect(pair[0].path)
    src.backup(dst := sqlite3.connect(tmp_path / "ledger.db"))
    src.close()
    dst.executescript("DROP TABLE journal_blocks; DROP TABLE journal_profiles; PRAGMA user_version=8;")
    dst.close()
    monkeypatch.setattr(packing, "BLOCK_RECORDS", 1000)
    store = Store(tmp_path, thresholds=(0.5, 1.0))
    end = T0 + DAYS * 86400 + 3600
    def read() -> tuple:
        return (store.journal(["a", "b"], T0, end), store.verify(),
                {k: v.tolist() for k, v in store.journal_per_minute(T0, end).items()})
    want = read()
    total = store.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    left = [total]
    while True:
        store.write([], [], {}, now=end + 86400)
        left.append(store.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0])
        assert left[-2] - left[-1] <= 1000
        if left[-1] == left[-2]:
            break
        assert read() == want
    assert len(left) > 3 and left[-1] == 1  # id 41, '[ ]', stays a row
    store.close()
