"""The records kept beside the ledger: declared maintenance and exclusion windows, support tickets.
Each write is sealed in the hash chain."""
from __future__ import annotations

import sqlite3
import threading
from typing import Any, Callable

from ..calendar import Window
from ..tickets import Ticket
from . import chain
from .schema import tx


class RecordTables:
    """Part of Store: the windows and tickets tables (the connection and lock are the store's)."""

    conn: sqlite3.Connection
    _lock: threading.Lock
    clock: Callable[[], float]

    # -- windows ------------------------------------------------------------------------------------
    def add_window(self, kind: str, start: float, end: float, reason: str) -> int:
        with self._lock, tx(self.conn):
            wid = int(self.conn.execute("INSERT INTO windows (kind, start, end, reason, created_at) "
                                        "VALUES (?, ?, ?, ?, ?)", (kind, start, end, reason, self.clock())).lastrowid)
            self._seal_records([chain.Seal(f"w:{wid}", None, chain.window_hash((wid, kind, start, end, reason)))],
                               "windows", [wid])
            return wid

    def remove_window(self, wid: int) -> bool:
        with self._lock, tx(self.conn):
            if self.conn.execute("DELETE FROM windows WHERE id=?", (wid,)).rowcount == 0:
                return False
            chain.append_link(self.conn, [chain.Seal(f"w:{wid}", None, chain.DELETED)], self.clock())
            return True

    def windows(self) -> list[tuple[int, Window]]:
        with self._lock:
            rows = self.conn.execute("SELECT id, kind, start, end, reason FROM windows ORDER BY start").fetchall()
        return [(wid, Window(s, e, kind, reason, "cli")) for wid, kind, s, e, reason in rows]

    def _seal_records(self, seals: list[chain.Seal], table: str, ids: list[Any]) -> None:
        seq = chain.append_link(self.conn, seals, self.clock())
        self.conn.executemany(_SET_LINK[table], [(seq, i) for i in ids])

    # -- tickets -----------------------------------------------------------------------------------
    def upsert_tickets(self, tickets: list[Ticket]) -> tuple[int, int]:
        """Idempotent by ticket id: new and changed tickets are written and sealed, unchanged ones left
        as they are (an export fetched every few minutes adds no links). Returns (inserted, updated)."""
        now = self.clock()
        with self._lock, tx(self.conn):
            existing = {r[0]: tuple(r) for r in self.conn.execute(
                "SELECT id, priority, opened_at, responded_at, workaround_at, resolved_at, closed_at FROM tickets")}
            changed = [t for t in tickets if existing.get(t.id) != ticket_fields(t)]
            self.conn.executemany(
                "INSERT INTO tickets (id, priority, opened_at, responded_at, workaround_at, resolved_at, closed_at, "
                "imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "priority=excluded.priority, opened_at=excluded.opened_at, responded_at=excluded.responded_at, "
                "workaround_at=excluded.workaround_at, resolved_at=excluded.resolved_at, closed_at=excluded.closed_at",
                [(*ticket_fields(t), now) for t in changed])
            self._seal_records([chain.Seal(f"t:{t.id}", None, chain.ticket_hash(ticket_fields(t))) for t in changed],
                               "tickets", [t.id for t in changed])
        inserted = sum(1 for t in changed if t.id not in existing)
        return inserted, len(changed) - inserted

    def tickets(self, start: float | None = None, end: float | None = None) -> list[Ticket]:
        q = "SELECT id, priority, opened_at, responded_at, workaround_at, resolved_at, closed_at FROM tickets"
        args: tuple[Any, ...] = ()
        if start is not None and end is not None:
            q += " WHERE opened_at >= ? AND opened_at < ?"
            args = (start, end)
        with self._lock:
            return [Ticket(*r) for r in self.conn.execute(q + " ORDER BY opened_at, id", args)]



_SET_LINK = {"tickets": "UPDATE tickets SET link=? WHERE id=?", "windows": "UPDATE windows SET link=? WHERE id=?"}


def ticket_fields(t: Ticket) -> tuple:
    return (t.id, t.priority, t.opened_at, t.responded_at, t.workaround_at, t.resolved_at, t.closed_at)
