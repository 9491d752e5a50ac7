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
from typing import Any, Iterable, Iterator

import numpy as np
from fastdigest import TDigest

from ..calendar import Window
from ..ledger import DAY, DTYPE, HOUR, Ledger
from ..tickets import Ticket
from .schema import DB_NAME, MIGRATIONS, SCHEMA_VERSION, tx

log = logging.getLogger("sla_agent.store")


class StoreError(Exception):
    pass


class Store:
    def __init__(self, state_dir: str | os.PathLike[str], *, thresholds: tuple[float, ...],
                 readonly: bool = False) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / DB_NAME
        self.thresholds = tuple(thresholds)
        self.readonly = readonly
        self.moved_aside: list[Path] = []
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self.conn = self._open()

    # -- opening ---------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.exists():
                raise StoreError(f"no ledger at {self.path}: has the agent run with this state directory?")
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=10)
            conn.execute("PRAGMA busy_timeout=10000")
            self._check_meta(conn)
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
                    conn.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(time.time()),))
                conn.execute(f"PRAGMA user_version={step + 1}")

    def _check_meta(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key='thresholds'").fetchone()
        stored = tuple(json.loads(row[0])) if row else self.thresholds
        if stored != self.thresholds:
            raise StoreError(
                f"{self.path} counts requests below {list(stored)} s but the config asks for "
                f"{list(self.thresholds)} s: the exact counts cannot be converted; use a new state_dir")

    def close(self) -> None:
        with self._lock:
            self.conn.close()

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
              services: dict[str, str], compactions: Iterable[tuple[str, int, list[int]]] = ()) -> None:
        """One transaction: the dirty hours and digests of a flush (and day compactions)."""
        with self._lock:
            try:
                self._write(hours, digests, services, compactions)
            except BaseException:
                self._ids.clear()  # ids of targets inserted by the rolled-back transaction are void
                raise

    def _write(self, hours: list[tuple[str, int, bytes, str]], digests: list[tuple[str, int, int, bytes]],
               services: dict[str, str], compactions: Iterable[tuple[str, int, list[int]]]) -> None:
        with tx(self.conn):
            c = self.conn
            c.executemany(
                "INSERT INTO minutes (target_id, hour, counts, errors) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (target_id, hour) DO UPDATE SET counts=excluded.counts, errors=excluded.errors",
                [(self._target_id(t, services.get(t, "")), h, zlib.compress(b, 6), e) for t, h, b, e in hours])
            c.executemany(
                "INSERT INTO digests (target_id, start, span, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (target_id, start, span) DO UPDATE SET data=excluded.data",
                [(self._target_id(t, services.get(t, "")), s, span, zlib.compress(d, 1)) for t, s, span, d in digests])
            for t, day, hrs in compactions:
                tid = self._target_id(t, services.get(t, ""))
                c.executemany("DELETE FROM digests WHERE target_id=? AND start=? AND span=?",
                              [(tid, h * HOUR, HOUR) for h in hrs])

    def prune(self, before: float) -> int:
        """Deletes minute rows and digests older than `before` (retention). Returns rows deleted."""
        with self._lock, tx(self.conn):
            n = self.conn.execute("DELETE FROM minutes WHERE hour < ?", (int(before // HOUR),)).rowcount
            n += self.conn.execute("DELETE FROM digests WHERE start < ?", (int(before),)).rowcount
        return n

    # -- reading -----------------------------------------------------------------------------------
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
                ledger.load_digest(name, service, start, span, TDigest.from_bytes(zlib.decompress(data)))
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

    def digests(self, target: str, start: float, end: float) -> list[TDigest]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT d.data FROM digests d JOIN targets t ON t.id = d.target_id "
                "WHERE t.name=? AND d.start >= ? AND d.start < ?", (target, int(start), int(end))).fetchall()
        return [TDigest.from_bytes(zlib.decompress(r[0])) for r in rows]

    def error_kinds(self, target: str, start: float, end: float) -> dict[str, int]:
        total: dict[str, int] = {}
        with self._lock:
            rows = self.conn.execute(
                "SELECT m.errors FROM minutes m JOIN targets t ON t.id = m.target_id "
                "WHERE t.name=? AND m.hour >= ? AND m.hour < ? AND m.errors != ''",
                (target, int(start // HOUR), int(-(-end // HOUR)))).fetchall()
        for (errors,) in rows:
            for k, v in json.loads(errors).items():
                total[k] = total.get(k, 0) + v
        return total

    def evidence_rows(self, targets: list[str], start: float, until: float) -> Iterator[tuple[str, bytes]]:
        """Exactly the stored rows a report of [start, until) reads, in a fixed order, each as the text
        that names it and its content: minute counts (the part before the cut-off) and the digests of
        complete buckets."""
        m0, m1 = int(start // 60), int(until // 60)
        with self._lock:
            for name in targets:
                for hour, blob, errors in self.conn.execute(
                        "SELECT m.hour, m.counts, m.errors FROM minutes m JOIN targets t ON t.id = m.target_id "
                        "WHERE t.name=? AND m.hour >= ? AND m.hour < ? ORDER BY m.hour",
                        (name, m0 // 60, -(-m1 // 60))):
                    arr = np.frombuffer(zlib.decompress(blob), dtype=DTYPE).reshape(60, -1)
                    lo, hi = max(hour * 60, m0) - hour * 60, min(hour * 60 + 60, m1) - hour * 60
                    yield f"m|{name}|{hour}|{lo}|{hi}|{errors}|", arr[lo:hi].tobytes()
                for s, span, data in self.conn.execute(
                        "SELECT d.start, d.span, d.data FROM digests d JOIN targets t ON t.id = d.target_id "
                        "WHERE t.name=? AND d.start >= ? AND d.start + d.span <= ? ORDER BY d.start, d.span",
                        (name, int(start) - DAY, int(until))):
                    yield f"d|{name}|{s}|{span}|", zlib.decompress(data)

    # -- windows ------------------------------------------------------------------------------------
    def add_window(self, kind: str, start: float, end: float, reason: str) -> int:
        with self._lock, tx(self.conn):
            return int(self.conn.execute("INSERT INTO windows (kind, start, end, reason, created_at) VALUES (?, ?, ?, ?, ?)",
                                         (kind, start, end, reason, time.time())).lastrowid)

    def remove_window(self, wid: int) -> bool:
        with self._lock, tx(self.conn):
            return self.conn.execute("DELETE FROM windows WHERE id=?", (wid,)).rowcount > 0

    def windows(self) -> list[tuple[int, Window]]:
        with self._lock:
            rows = self.conn.execute("SELECT id, kind, start, end, reason FROM windows ORDER BY start").fetchall()
        return [(wid, Window(s, e, kind, reason, "cli")) for wid, kind, s, e, reason in rows]

    # -- tickets -----------------------------------------------------------------------------------
    def upsert_tickets(self, tickets: list[Ticket]) -> tuple[int, int]:
        """Idempotent by ticket id. Returns (inserted, updated)."""
        now = time.time()
        with self._lock, tx(self.conn):
            existing = {r[0] for r in self.conn.execute("SELECT id FROM tickets")}
            self.conn.executemany(
                "INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "priority=excluded.priority, opened_at=excluded.opened_at, responded_at=excluded.responded_at, "
                "workaround_at=excluded.workaround_at, resolved_at=excluded.resolved_at, closed_at=excluded.closed_at",
                [(t.id, t.priority, t.opened_at, t.responded_at, t.workaround_at, t.resolved_at, t.closed_at, now)
                 for t in tickets])
        inserted = sum(1 for t in tickets if t.id not in existing)
        return inserted, len(tickets) - inserted

    def tickets(self, start: float | None = None, end: float | None = None) -> list[Ticket]:
        q = "SELECT id, priority, opened_at, responded_at, workaround_at, resolved_at, closed_at FROM tickets"
        args: tuple[Any, ...] = ()
        if start is not None and end is not None:
            q += " WHERE opened_at >= ? AND opened_at < ?"
            args = (start, end)
        with self._lock:
            return [Ticket(*r) for r in self.conn.execute(q + " ORDER BY opened_at, id", args)]
