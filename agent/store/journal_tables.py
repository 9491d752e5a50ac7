"""Part of Store: reading the failure journal (records, episodes, artifacts, JSON lines), the hash
chain's head and links, extracts of a span and the chain walk (the connection and lock are the store's)."""
from __future__ import annotations

import json
import sqlite3
import threading
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from . import journal, merged
from .extract import SCOPE_KEY, Cancel, sealed_runs, write_extract
from .schema import DB_NAME
from .verify import Outside, journal_runs, outside, verify_store


PATH_BYTES = 1 << 20  # a path.json is a few kB; a larger one is not the agent's


class JournalTables:
    conn: sqlite3.Connection
    _lock: threading.Lock
    thresholds: tuple[float, ...]
    seal_delay: float
    _open_readonly: Callable[[], sqlite3.Connection]

    # -- the journal and the chain -------------------------------------------------------------------
    def journal(self, targets: list[str], start: float, end: float, *,
                outcomes: tuple[str, ...] = journal.ALL_OUTCOMES, limit: int = -1,
                newest: bool = False) -> list[dict[str, Any]]:
        """Journal records of these targets in [start, end), oldest first (or newest first), with bodies."""
        with self._lock:
            rows = self._rows(targets, start, end, outcomes)
            rows.sort(key=itemgetter(2, 0), reverse=newest)
            rows = rows if limit < 0 else rows[:limit]
            found = journal.bodies(self.conn, (r[11] for r in rows))
        return [journal.as_dict(r, found.get(r[11], b"")) for r in rows]

    def _rows(self, targets: list[str], start: float, end: float, outcomes: tuple[str, ...]) -> list[tuple]:
        args = journal.match(targets, start, end, outcomes)
        return merged.rows(self.conn, targets, args[1], args[2], outcomes, journal.ALL_OF, args)

    def artifact(self, sha256: str) -> tuple[str, bytes] | None:
        """A screenshot or HAR kept with a journal record: (name, content)."""
        with self._lock:
            return journal.artifact(self.conn, sha256)

    def journal_paths(self, targets: list[str], start: float, end: float, tries: int = 8) -> list[dict[str, Any]]:
        """Per location and target with paths traced in [start, end) (records of outcome `path`): the first
        record whose path.json reads as a mapping, with it as `path` (None when none of its first `tries`
        does: a ledger may come from anywhere), and `traces`, how many were traced. A long episode holds
        thousands: each target's are counted, and only the first files read."""
        with self._lock:
            rows = sorted(self._rows(targets, start, end, ("path",)), key=itemgetter(2, 0))
        traced: dict[tuple[str, str], list[tuple]] = {}
        for r in rows:
            traced.setdefault((r[13], r[1]), []).append(r)  # location, target
        out = []
        for recs in traced.values():
            for r in recs[:tries]:
                rec = journal.as_dict(r)
                rec["path"] = self._path_json(rec)
                if rec["path"] is not None:
                    break
            out.append(rec | {"traces": len(recs)})
        return out

    def _path_json(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        named = next((a["sha256"] for a in rec["artifacts"] if a["name"] == "path.json"), None)
        found = self.artifact(named) if named else None
        try:
            doc = json.loads(found[1]) if found and len(found[1]) <= PATH_BYTES else None
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            return None
        return doc if isinstance(doc, dict) else None

    def journal_episode(self, targets: list[str], start: float, end: float) -> dict[str, Any]:
        """The down records of these targets in [start, end): how many, the first and the last, and the
        locations that recorded them."""
        args = journal.match(targets, start, end, ("down",))
        with self._lock:
            n, first, last, places = merged.episode(self.conn, targets, args[1], args[2], journal.ALL_OF, args)
        return {"records": n, "first": journal.as_dict(first) if first else None,
                "last": journal.as_dict(last) if last else None, "locations": sorted(places)}

    def chain_head(self) -> dict[str, Any] | None:
        with self._lock:
            row = self.conn.execute("SELECT seq, at, link FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else {"seq": row[0], "at": row[1], "link": row[2]}

    def chain_link(self, seq: int) -> str | None:
        with self._lock:
            row = self.conn.execute("SELECT link FROM chain WHERE seq=?", (seq,)).fetchone()
        return row[0] if row else None

    def extract(self, dest_dir: Path, rows_from: float, journal_from: float, until: float,
                journal: str = "all", cancel: Cancel | None = None) -> Path:
        """A ledger database in `dest_dir` holding what a report of a month reads (store/extract.py).
        Read on a connection of its own: a copy of a month takes seconds, during which the store's lock
        and connection stay free for the flushes (WAL: the reader sees the state it began with)."""
        type(self)(dest_dir, thresholds=self.thresholds).close()  # the schema, made as the store makes it
        cancel = cancel or Cancel()
        conn = self._open_readonly()
        try:
            conn.isolation_level = None  # write_extract says where its transaction begins and ends
            conn.execute("PRAGMA busy_timeout=10000")
            with cancel.watching(conn):
                write_extract(conn, dest_dir / DB_NAME, rows_from, journal_from, until, journal, cancel)
        finally:
            conn.close()
        single = sqlite3.connect(dest_dir / DB_NAME)
        single.execute("PRAGMA journal_mode=DELETE")  # everything in the one file that travels
        single.close()
        return dest_dir / DB_NAME

    def journal_lines(self, dest: Path, start: float, until: float, ids: tuple[int, int] = (0, -1)) -> int:
        """The journal of [start, until) as JSON lines in `dest` (store/journal.py)."""
        with self._lock:
            return journal.write_lines(self.conn, start, until, ids, dest)

    def journal_checked(self, start: float, until: float, ids: tuple[int, int] = (0, -1), dest: Path | None = None,
                        shown: int = 10, apart: bool = False, runs: Iterable[tuple[int, int]] = (),
                        lines: bool = True) -> journal.Checked:
        """The sha256 of what journal_lines() writes (written to `dest` when given) and journal_unmatched(), in
        one pass, with the hashes of the sealed `runs` (journal_runs()) among them (journal.Checked). `apart`: read
        on a connection of its own, so that another thread may run it beside what the store's connection does
        (SQLite lets go of Python's lock while it reads, and most of a month's pass is SQLite's)."""
        if not apart:
            with self._lock:
                return journal.checked_lines(self.conn, start, until, ids, dest, shown, runs, lines)
        conn = self._open_readonly()
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            return journal.checked_lines(conn, start, until, ids, dest, shown, runs, lines)
        finally:
            conn.close()

    def journal_unmatched(self, start: float, until: float, ids: tuple[int, int] = (0, -1),
                          shown: int = 10) -> tuple[list[tuple[int, str, float]], int]:
        """The first `shown` records of [start, until) (and with ids in `ids`) whose content differs from the
        hash written with them (store/journal.py: unmatched), and how many there are."""
        found: list[tuple[int, str, float]] = []
        n = 0
        with self._lock:
            for record in journal.unmatched(self.conn, start, until, ids):
                n += 1
                if len(found) < shown:
                    found.append(record)
        return found, n

    def journal_per_minute(self, start: float, until: float) -> dict[str, np.ndarray]:
        """Per target, its journal of [start, until) counted per minute (store/merged.py: per_minute): a row
        "minute, up, down, inconclusive" and the same three among the records on the minute's first
        microsecond, for each minute with records."""
        with self._lock:
            return merged.per_minute(self.conn, round(start * journal.US), round(until * journal.US), journal.ON_MINUTES)

    def sealed_runs(self, since: float, until: float) -> tuple[int, int]:
        """The first and the last id of the journal runs sealed about [since, until), those an extract holds."""
        with self._lock:
            return sealed_runs(self.conn, since, until)

    def extract_scope(self) -> dict[str, Any] | None:
        with self._lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key=?", (SCOPE_KEY,)).fetchone()
        return json.loads(row[0]) if row else None

    def verify(self, since: float | None = None, until: float | None = None, delay: float | None = None,
               hashed: Callable[[], dict[tuple[int, int], str]] | None = None) -> tuple[list[str], dict[str, int]]:
        """Walks the chain and every sealed row (about [since, until)); returns the problems found. `hashed`: the
        journal runs' hashes made already (journal_checked(runs=journal_runs(since, until)))."""
        with self._lock:
            return verify_store(self.conn, since, until, delay, hashed)

    def journal_runs(self, since: float | None = None, until: float | None = None) -> list[tuple[int, int]]:
        """The sealed runs of journal records verify() checks: (first id, last id)."""
        with self._lock:
            return journal_runs(self.conn, since, until)

    def outside(self, since: float | None = None, until: float | None = None, due: float | None = None,
                delay: float | None = None) -> list[Outside]:
        """What lies outside the chain about [since, until) (store/verify.py: outside)."""
        with self._lock:
            return outside(self.conn, since, until, due, self.seal_delay if delay is None else delay)

    def hours_held(self, since: float | None = None, until: float | None = None) -> tuple[float, float] | None:
        """The start of the first and the end of the last hour with minute counts in [since, until) (all
        when None): which ended months a month's close has anything to report of."""
        lo, hi = -1e15 if since is None else since, 1e15 if until is None else until
        with self._lock:
            first, last = self.conn.execute("SELECT MIN(hour), MAX(hour) FROM minutes WHERE hour >= ? AND hour < ?",
                                            (lo // 3600, -(-hi // 3600))).fetchone()
        return None if first is None else (first * 3600.0, last * 3600.0 + 3600.0)
