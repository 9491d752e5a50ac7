"""SQLite persistence of the ledger (stdlib sqlite3, WAL, one transaction per flush). All the SQL lives here.

Layout: one row per target and epoch hour holding the 60 minute rows of counts (zlib-compressed
uint16), one row per hourly or daily t-digest, declared windows and tickets. Readers (the report, the
CLI) open their own connection and read while the daemon writes.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import zlib
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from fastdigest import TDigest

from ..ledger import DAY, DTYPE, HOUR, Ledger, minute_errors
from ..ledger.journal import Record
from . import chain, journal, packing, sealing
from .journal_tables import JournalTables
from .records import RecordTables
from .schema import DB_NAME, MIGRATIONS, SCHEMA_VERSION, SIMULATED_KEY, tx
from .timestamps import TimestampTables

log = logging.getLogger("sla_agent.store")


# the latest of: the last write's time, a link's (a ticket import, a declared window), a journal record's
LATEST = ("SELECT MAX(COALESCE((SELECT CAST(value AS REAL) FROM meta WHERE key='written_at'), 0), "
          "COALESCE((SELECT MAX(at) FROM chain), 0), COALESCE((SELECT MAX(at_us) FROM journal), 0) / 1e6, "
          "COALESCE((SELECT MAX(at1_us) FROM journal_blocks), 0) / 1e6)")


class StoreError(Exception):
    pass


class Store(RecordTables, JournalTables, TimestampTables):
    """The ledger database: its ledger rows, journal and chain here; tickets and windows in records.py."""

    def __init__(self, state_dir: str | os.PathLike[str], *, thresholds: tuple[float, ...],
                 readonly: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / DB_NAME
        self.thresholds = tuple(thresholds)
        self.readonly = readonly
        self.clock = clock  # when records are imported and links made
        self.seal_delay = chain.SEAL_DELAY  # after an hour (a day) ends, its rows are final: the agent sets it
        self.moved_aside: list[Path] = []
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self.conn = self._open()
        self._identity = self._file_identity()

    # -- opening ---------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.exists():
                raise StoreError(f"no ledger at {self.path}: has the agent run with this state directory?")
            conn = None
            try:
                conn = self._open_readonly()
                conn.execute("PRAGMA busy_timeout=10000")
                self._check_meta(conn)
            except (sqlite3.DatabaseError, ValueError) as exc:  # another file, or a crafted one (a bundle's)
                if conn is not None:
                    conn.close()
                raise StoreError(f"{self.path} is not a ledger this agent can read: {exc}") from None
            return conn
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the state directory {self.dir}: {exc.strerror}") from None
        conn = self._connect()
        if self.path.exists() and not self._healthy(conn):
            conn.close()
            self._move_aside()
            conn = self._connect()
        self._migrate(conn)
        self._check_meta(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: a killed process loses nothing committed
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                self._move_aside()
                return self._connect()
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        return conn

    def _healthy(self, conn: sqlite3.Connection) -> bool:
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.DatabaseError as exc:
            log.error("ledger %s cannot be checked: %s", self.path, exc)
            return False
        if rows != [("ok",)]:
            log.error("ledger %s failed integrity_check: %s", self.path, "; ".join(r[0] for r in rows[:5]))
            return False
        return True

    def _move_aside(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        dest = self.path.with_name(f"{DB_NAME}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.rename(Path(str(dest) + suffix))
        self.moved_aside.append(dest)
        log.error("ledger moved aside to %s (kept for inspection, never deleted); a new one is started", dest)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version}, newer than this agent's "
                             f"{SCHEMA_VERSION}: upgrade sla-agent")
        for step in range(version, SCHEMA_VERSION):
            with tx(conn):
                for stmt in MIGRATIONS[step]:
                    conn.execute(stmt)
                if step == 0:
                    conn.execute("INSERT INTO meta VALUES ('thresholds', ?)", (json.dumps(self.thresholds),))
                    conn.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(self.clock()),))
                conn.execute(f"PRAGMA user_version={step + 1}")

    def _check_meta(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key='thresholds'").fetchone()
        stored = tuple(json.loads(row[0])) if row else self.thresholds
        if stored != self.thresholds:
            raise StoreError(
                f"{self.path} counts requests below {list(stored)} s but the config asks for "
                f"{list(self.thresholds)} s: the exact counts cannot be converted; use a new state_dir")

    def _open_readonly(self) -> sqlite3.Connection:
        """Read-only; on a read-only file system too, where SQLite cannot make the WAL's shared-memory
        file: there nobody can write, so the file is opened as immutable."""
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=10)
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if not os.statvfs(self.dir).f_flag & os.ST_RDONLY:
                raise
        return sqlite3.connect(f"file:{self.path}?immutable=1", uri=True, check_same_thread=False, timeout=10)

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def size(self) -> int:
        """Bytes the database takes on disk, its write-ahead log included."""
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def lost(self) -> bool:
        """Was the database file deleted or replaced since it was opened? SQLite goes on writing to a
        deleted file without an error: every flush would "succeed" into nothing."""
        return self._file_identity() != self._identity

    def reopen(self) -> None:
        """A new connection to what is at the path now (a new, empty ledger when the file is gone)."""
        with self._lock:
            self.conn.close()
            self._ids.clear()
            self.conn = self._open()
            self._identity = self._file_identity()

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def simulated_months(self) -> list[str]:
        """Months whose rows `sla-agent demo` wrote (never measured): their reports say so."""
        with self._lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key=?", (SIMULATED_KEY,)).fetchone()
        return json.loads(row[0]) if row else []

    def mark_simulated(self, month: str) -> None:
        months = sorted(set(self.simulated_months()) | {month})
        with self._lock, tx(self.conn):
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (SIMULATED_KEY, json.dumps(months)))

    # -- targets ---------------------------------------------------------------------------------
    def _target_id(self, name: str, service: str) -> int:
        tid = self._ids.get(name)
        if tid is None:
            row = self.conn.execute("SELECT id, service FROM targets WHERE name=?", (name,)).fetchone()
            if row is None:
                tid = self.conn.execute("INSERT INTO targets (name, service) VALUES (?, ?)", (name, service)).lastrowid
            else:
                tid = row[0]
                if row[1] != service:
                    self.conn.execute("UPDATE targets SET service=? WHERE id=?", (service, tid))
            self._ids[name] = tid
        return tid

    # -- writing -----------------------------------------------------------------------------------
    def write(self, hours: list[tuple[str, int, bytes, str]], digests: list[tuple[str, int, int, bytes]],
              services: dict[str, str], compactions: Iterable[tuple[str, int, list[int]]] = (),
              records: Iterable[Record] = (), now: float | None = None, location: str = "",
              redact: Callable[[str], str] = str, seal_all: bool = False) -> int:
        """One transaction: the dirty hours and digests of a flush, day compactions, journal records, and
        a link sealing whatever has become final (with `seal_all`, at a clean stop: every row, those not
        final yet provisionally). Returns how many rows it refused to write over a final seal."""
        with self._lock:
            try:
                with tx(self.conn):
                    now = self.clock() if now is None else now
                    refused, changes = self._write_rows(hours, digests, services, compactions, now)
                    chain.append_link(self.conn, changes, now)  # reopened and removed rows, before any new seal
                    ids = lambda name: self._target_id(name, services.get(name, ""))  # noqa: E731
                    journal.insert(self.conn, records, ids, location, redact)
                    sealing.seal(self.conn, now, self.seal_delay, seal_all)
                    packing.pack(self.conn, now)
                    self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('written_at', ?)", (repr(float(now)),))
            except BaseException:
                self._ids.clear()  # ids of targets inserted by the rolled-back transaction are void
                raise
        if refused:
            log.error("%d rows of minute counts or digests were not written: their rows are sealed already, and "
                      "final: a final row never changes", refused)
        return refused

    def seal_now(self, now: float) -> None:
        """Seals every row not sealed yet, as a clean stop does (those not final yet provisionally), and
        seals final what was sealed provisionally and is final now: `evidence seal` on a stopped agent's
        ledger (one whose agent was killed, or stopped before its last rows were final)."""
        self.write([], [], {}, now=max(now, self.latest_instant()), seal_all=True)

    def _write_rows(self, hours: list[tuple[str, int, bytes, str]], digests: list[tuple[str, int, int, bytes]],
                    services: dict[str, str], compactions: Iterable[tuple[str, int, list[int]]],
                    now: float) -> tuple[int, list[chain.Seal]]:
        """Returns how many rows were left as sealed rather than written over, and the seals saying which
        rows this write reopened or removed."""
        c = self.conn
        tid = lambda name: self._target_id(name, services.get(name, ""))  # noqa: E731
        minutes = [(tid(t), h, zlib.compress(b, 6), e) for t, h, b, e in hours]
        digest_rows = [(tid(t), s, span, zlib.compress(d, 1)) for t, s, span, d in digests]
        minutes, changes = sealing.reopen(c, minutes, sealing.MINUTE_ROWS, now, self.seal_delay)
        digest_rows, reopened = sealing.reopen(c, digest_rows, sealing.DIGEST_ROWS, now, self.seal_delay)
        written = c.executemany(
            "INSERT INTO minutes (target_id, hour, counts, errors) VALUES (?, ?, ?, ?) ON CONFLICT (target_id, hour) "
            "DO UPDATE SET counts=excluded.counts, errors=excluded.errors WHERE minutes.link IS NULL", minutes).rowcount
        written += c.executemany(
            "INSERT INTO digests (target_id, start, span, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (target_id, start, span) DO UPDATE SET data=excluded.data WHERE digests.link IS NULL",
            digest_rows).rowcount
        changes += reopened
        for t, day, hrs in compactions:
            c.executemany("DELETE FROM digests WHERE target_id=? AND start=? AND span=?",
                          [(tid(t), h * HOUR, HOUR) for h in hrs])
            changes += sealing.removed(c, t, hrs)
        return len(minutes) + len(digest_rows) - written, changes

    def prune(self, before: float) -> int:
        """Deletes what is older than `before` (retention): minute rows, digests, journal records, their
        seals, the links left without seals at the start of the chain, bodies no record uses."""
        c = self.conn
        with self._lock, tx(c):
            n = c.execute("DELETE FROM minutes WHERE hour < ?", (int(before // HOUR),)).rowcount
            n += c.execute("DELETE FROM digests WHERE start < ?", (int(before),)).rowcount
            n += c.execute("DELETE FROM journal WHERE at_us < ?", (round(before * 1e6),)).rowcount
            n += c.execute("SELECT COALESCE(SUM(n), 0) FROM journal_blocks WHERE at1_us < ?", (round(before * 1e6),)).fetchone()[0]
            c.execute("DELETE FROM journal_blocks WHERE at1_us < ?", (round(before * 1e6),))  # a whole block at a time
            c.execute("DELETE FROM seals WHERE t < ?", (before,))
            c.execute("DELETE FROM timestamps WHERE at < ?", (before,))  # with their seals
            c.execute("DELETE FROM chain WHERE at < ? AND seq < COALESCE((SELECT MIN(seq) FROM seals), "
                      "(SELECT MAX(seq) FROM chain))", (before,))
            c.execute(journal.ORPHAN_BLOBS)
        return n

    # -- reading -----------------------------------------------------------------------------------
    def latest_instant(self) -> float:
        """The latest instant the ledger holds: its last write's, a link's (an import), a journal record's, the
        start of the last minute with counts. The agent's clock never starts below it."""
        with self._lock:
            latest = self.conn.execute(LATEST).fetchone()[0]
            for hour, blob in self.conn.execute("SELECT hour, counts FROM minutes WHERE hour = "
                                                "(SELECT MAX(hour) FROM minutes)"):
                counts = np.frombuffer(zlib.decompress(blob), dtype=DTYPE).reshape(60, -1)
                used = np.flatnonzero(counts.any(axis=1))
                if len(used):
                    latest = max(latest, (hour * 60 + int(used[-1])) * 60.0)
        return float(latest)

    def restore(self, ledger: Ledger, since: float) -> int:
        """Loads hours and digests from `since` into the ledger. Returns the number of hour rows."""
        with self._lock:
            names = {tid: (name, service) for tid, name, service in self.conn.execute("SELECT id, name, service FROM targets")}
            n = 0
            for tid, hour, blob, errors in self.conn.execute(
                    "SELECT target_id, hour, counts, errors FROM minutes WHERE hour >= ? ORDER BY hour",
                    (int(since // HOUR),)):
                name, service = names[tid]
                counts = self._counts(blob, ledger.nf)
                if ledger.load_hour(name, service, hour, counts, json.loads(errors) if errors else {}):
                    n += 1
            digest_since = since if since > 0 else 0
            for tid, start, span, data in self.conn.execute(
                    "SELECT target_id, start, span, data FROM digests WHERE start >= ?",
                    (int(digest_since - DAY),)):
                name, service = names[tid]
                ledger.load_digest(name, service, start, span, bytes(data))  # held as stored: compressed
        return n

    @staticmethod
    def _counts(blob: bytes, nf: int) -> np.ndarray:
        return np.frombuffer(zlib.decompress(blob), dtype=DTYPE).reshape(60, nf)

    def matrix(self, target: str, m0: int, m1: int, nf: int) -> np.ndarray:
        out = np.zeros((max(0, m1 - m0), nf), dtype=DTYPE)
        with self._lock:
            rows = self.conn.execute(
                "SELECT m.hour, m.counts FROM minutes m JOIN targets t ON t.id = m.target_id "
                "WHERE t.name=? AND m.hour >= ? AND m.hour < ?", (target, m0 // 60, -(-m1 // 60))).fetchall()
        for hour, blob in rows:
            a = hour * 60
            counts = self._counts(blob, nf)
            lo, hi = max(a, m0), min(a + 60, m1)
            if lo < hi:
                out[lo - m0:hi - m0] = counts[lo - a:hi - a]
        return out

    def digests(self, target: str, start: float, end: float, closed_by: float | None = None) -> list[TDigest]:
        """The digests of buckets starting in [start, end) (and ending by `closed_by` when given)."""
        limit = float("inf") if closed_by is None else closed_by
        with self._lock:
            rows = self.conn.execute(
                "SELECT d.data FROM digests d JOIN targets t ON t.id = d.target_id "
                "WHERE t.name=? AND d.start >= ? AND d.start < ? AND d.start + d.span <= ?",
                (target, int(start), int(end), limit)).fetchall()
        return [TDigest.from_bytes(zlib.decompress(r[0])) for r in rows]

    def error_kinds(self, target: str, start: float, end: float) -> dict[str, int]:
        """The error kinds of the target's down probes in [start, end), exact to the minute (hours stored
        before error kinds were kept per minute count whole)."""
        m0, m1 = int(start // 60), int(-(-end // 60))
        total: dict[str, int] = {}
        with self._lock:
            rows = self.conn.execute(
                "SELECT m.hour, m.errors FROM minutes m JOIN targets t ON t.id = m.target_id "
                "WHERE t.name=? AND m.hour >= ? AND m.hour < ? AND m.errors != ''",
                (target, m0 // 60, -(-m1 // 60))).fetchall()
        for hour, errors in rows:
            for key, kinds in minute_errors(json.loads(errors)).items():
                if key == "h" or m0 <= hour * 60 + int(key) < m1:
                    for k, v in kinds.items():
                        total[k] = total.get(k, 0) + v
        return total

    def evidence_rows(self, targets: list[str], start: float, until: float,
                      outcomes: tuple[str, ...] = journal.ALL_OUTCOMES) -> Iterator[tuple[str, bytes, int]]:
        """Exactly the stored rows a report of [start, until) reads, in a fixed order, each as the text
        that names it and its content: minute counts (the part before the cut-off), the digests of
        complete buckets, the journal's records of those outcomes (by their hashes); and how many rows
        each item stands for."""
        m0, m1 = int(start // 60), int(until // 60)
        with self._lock:
            for name in targets:
                for hour, blob, errors in self.conn.execute(
                        "SELECT m.hour, m.counts, m.errors FROM minutes m JOIN targets t ON t.id = m.target_id "
                        "WHERE t.name=? AND m.hour >= ? AND m.hour < ? ORDER BY m.hour",
                        (name, m0 // 60, -(-m1 // 60))):
                    arr = np.frombuffer(zlib.decompress(blob), dtype=DTYPE).reshape(60, -1)
                    lo, hi = max(hour * 60, m0) - hour * 60, min(hour * 60 + 60, m1) - hour * 60
                    yield f"m|{name}|{hour}|{lo}|{hi}|{_errors_between(errors, lo, hi)}|", arr[lo:hi].tobytes(), 1
                for s, span, data in self.conn.execute(
                        "SELECT d.start, d.span, d.data FROM digests d JOIN targets t ON t.id = d.target_id "
                        "WHERE t.name=? AND d.start >= ? AND d.start + d.span <= ? ORDER BY d.start, d.span",
                        (name, int(start) - DAY, int(until))):
                    yield f"d|{name}|{s}|{span}|", zlib.decompress(data), 1
            yield from journal.hash_stream(self.conn, targets, start, until, outcomes)


def _errors_between(errors: str, lo: int, hi: int) -> str:
    """An hour row's error kinds of minutes [lo, hi) only: those after a report's cut-off still change."""
    if not errors:
        return ""
    kept = {k: v for k, v in minute_errors(json.loads(errors)).items() if k == "h" or lo <= int(k) < hi}
    return json.dumps(kept, sort_keys=True) if kept else ""
