"""Path records (paths/capture.py) as evidence: packed into the journal's blocks they read back byte for byte,
artifact and all, and every reader finds them there as it does in rows; a crafted path.json in a ledger
neither stops a report nor renders as markup."""
from __future__ import annotations

import json

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
