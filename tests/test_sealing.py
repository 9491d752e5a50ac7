"""A row sealed at a clean stop before it was final (provisionally) is reopened and sealed again only as
the chain allows: before it is final, with the reopening recorded; a final row is never written again, and
`verify` names any other rewrite. Hour digests are sealed with their counts, and sealed as removed when
merged into their day's digest."""
from __future__ import annotations

import asyncio
import zlib

import numpy as np
import pytest

from agent.ledger import DTYPE, Ledger, nfields
from agent.probes import ProbeResult
from agent.store import Flusher, Store, chain


# -- the rules of a provisional seal, on a real ledger file with the agent's write path ------------------------
H0 = 1_795_000_000 // 3600 * 3600 + 7200  # an hour's start
HOUR = H0 // 3600


def _counts(value: int) -> bytes:
    return np.full((60, nfields((0.5,))), value, dtype=DTYPE).tobytes()


def _write(store: Store, value: int, now: float, seal_all: bool = False) -> int:
    return store.write([("api", HOUR, _counts(value), "")], [], {"api": "api"}, now=now, seal_all=seal_all)


def _append(store: Store, value: str, at: float) -> int:
    c = store.conn
    c.execute("BEGIN")
    seq = chain.append_link(c, [chain.Seal(f"m:api:{HOUR}", H0, value)], at)
    c.execute("COMMIT")
    return seq


def _stored_hash(store: Store) -> str:
    counts, errors = store.conn.execute("SELECT counts, errors FROM minutes WHERE hour = ?", (HOUR,)).fetchone()
    return chain.minute_hash("api", HOUR, counts, errors)


def test_a_row_sealed_at_a_stop_is_reopened_before_it_is_final_and_sealed_final_after(tmp_path):
    store = Store(tmp_path, thresholds=(0.5,))
    try:
        _write(store, 1, H0 + 600, seal_all=True)  # a clean stop ten minutes into the hour
        assert _write(store, 1, H0 + 660) == 0  # restarted: the same row as sealed is not written again
        assert _write(store, 2, H0 + 700) == 0  # a new result lands in the hour: reopened, written
        assert _write(store, 3, H0 + 3600 + store.seal_delay) == 0  # final: sealed final at this flush
        seals = [v for (v,) in store.conn.execute("SELECT hash FROM seals WHERE key = ? ORDER BY seq", (f"m:api:{HOUR}",))]
        assert seals[0].startswith(chain.PROVISIONAL) and seals[1] == chain.REOPENED and seals[2] == _stored_hash(store)
        assert store.verify(delay=store.seal_delay) == ([], {"links": 3, "minute rows": 1, "digests": 0,
                                                             "journal records": 0, "tickets and windows": 0})
        assert _write(store, 4, H0 + 3600 + store.seal_delay + 10) == 1  # a final row is never written again
        assert store.verify()[0] == []
    finally:
        store.close()


def test_a_final_row_is_sealed_final_even_when_the_agent_was_stopped_past_its_finality(tmp_path):
    """Stopped within the hour, started again a day later: the provisional seal is made final at the first
    flush, and the row is not reopened (a late result for it is refused)."""
    store = Store(tmp_path, thresholds=(0.5,))
    try:
        _write(store, 1, H0 + 600, seal_all=True)
        assert _write(store, 2, H0 + 86400) == 1
        assert [r[0] for r in store.conn.execute("SELECT hash FROM seals ORDER BY seq")][-1] == _stored_hash(store)
        assert store.conn.execute("SELECT provisional FROM minutes").fetchone() == (0,)
        assert store.verify()[0] == []
    finally:
        store.close()


@pytest.mark.parametrize("forgery, named", [
    # the row sealed final, then rewritten by someone who reopens it as the agent would and seals it again
    ("final-then-reopened", "(sealed final in link 2): reopened in link 3 (a final row never changes)"),
    # rewritten while the agent was stopped, without a reopening: the agent's next start seals it final
    ("edited-while-stopped", "(sealed at a stop in link 1): sealed again in link 2 with other content, though "
                             "never reopened"),
    # rewritten under its provisional seal
    ("edited-under-its-seal", "the stored counts differ from what was sealed"),
    # reopened as the agent would, but a day later, when the row was final, and sealed again
    ("reopened-once-final", "(sealed at a stop in link 1): reopened in link 2, 2026-11-19T13:00:00+00:00, after it "
                            "was final at 2026-11-18T14:15:00+00:00"),
])
def test_the_provisional_seal_is_no_loophole_to_rewrite_a_row(tmp_path, forgery, named):
    store = Store(tmp_path, thresholds=(0.5,))
    try:
        _write(store, 1, H0 + 600, seal_all=True)
        forged = zlib_counts(9)
        if forgery == "final-then-reopened":
            _write(store, 1, H0 + 86400)  # restarted a day later: sealed final (link 2)
            store.conn.execute("UPDATE minutes SET counts = ?, link = NULL WHERE hour = ?", (forged, HOUR))
            _append(store, chain.REOPENED, H0 + 86400 + 180)
            _append(store, chain.minute_hash("api", HOUR, forged, ""), H0 + 86400 + 240)
        elif forgery == "edited-while-stopped":
            store.conn.execute("UPDATE minutes SET counts = ? WHERE hour = ?", (forged, HOUR))
            _write(store, 1, H0 + 86400)  # the next start: final, sealed final as it is now
        elif forgery == "reopened-once-final":
            store.conn.execute("UPDATE minutes SET counts = ?, link = NULL, provisional = 0 WHERE hour = ?",
                               (forged, HOUR))
            _append(store, chain.REOPENED, H0 + 86400)
            _append(store, chain.minute_hash("api", HOUR, forged, ""), H0 + 86400 + 60)
        else:
            store.conn.execute("UPDATE minutes SET counts = ? WHERE hour = ?", (forged, HOUR))
        problems, _ = store.verify(delay=store.seal_delay)
        assert any(f"minute counts of api, hour from" in p and named in p for p in problems), problems
    finally:
        store.close()


def zlib_counts(value: int) -> bytes:
    return zlib.compress(_counts(value), 6)


def test_hour_digests_are_sealed_when_final_and_sealed_deleted_when_merged_into_their_day(tmp_path):
    """A running agent seals an hour's latency digest with its counts; the day's compaction deletes it (its
    samples go into the day's digest), which the chain records: a sealed digest missing is named, and one
    brought back after its removal too."""
    day = 1_795_132_800  # a UTC midnight
    ledger = Ledger((0.5,), day_start=lambda t: t // 86400 * 86400)
    ledger.anchor(day)
    store = Store(tmp_path, thresholds=(0.5,))
    now = [float(day)]
    flusher = Flusher(store, clock=lambda: now[0])

    async def run() -> None:
        for k in range(48):
            now[0] = day + 1800 * k
            ledger.add(ProbeResult("api", "api", now[0], 0.0, 0.1, "up", latency_counted=True))
            await flusher.flush(ledger, ledger.compact(now[0]))
        now[0] = day + 86400 + 7200
        await flusher.flush(ledger, ledger.compact(now[0]))

    asyncio.run(run())
    try:
        deleted = store.conn.execute("SELECT COUNT(*) FROM seals WHERE key LIKE 'd:api:%:3600' AND hash = ?",
                                     (chain.DELETED,)).fetchone()[0]
        assert deleted == 23  # the day's last hour was merged before it was final: never sealed
        assert store.conn.execute("SELECT COUNT(*) FROM digests WHERE span = 3600 AND start < ?",
                                  (day + 86400,)).fetchone()[0] == 0
        assert store.verify()[0] == []
        store.conn.execute("INSERT INTO digests (target_id, start, span, data, link) VALUES (1, ?, 3600, x'00', 1)",
                           (day + 3600,))  # a removed hour digest brought back
        assert any("latency digest of api, 1 h from" in p and "present again" in p for p in store.verify()[0])
        store.conn.execute("DELETE FROM digests WHERE start = ? AND span = 3600", (day + 3600,))
        store.conn.execute("DELETE FROM digests WHERE span = 86400")  # the day's, sealed final
        assert any("latency digest of api, 24 h from" in p and "missing" in p for p in store.verify()[0])
    finally:
        store.close()
