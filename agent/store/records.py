"""The records kept beside the ledger: declared maintenance and exclusion windows, support tickets.
Each write is sealed in the hash chain (store/chain.py)."""
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
            seq = chain.append_link(self.conn, [chain.Seal(f"w:{wid}", None,
                                                           chain.window_hash((wid, kind, start, end, reason)))],
                                    self.clock())
            self.conn.execute("UPDATE windows SET link=? WHERE id=?", (seq, wid))
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

    # -- tickets -----------------------------------------------------------------------------------
    def upsert_tickets(self, tickets: list[Ticket]) -> tuple[int, int]:
        """Idempotent by ticket id: new and changed tickets are written, unchanged ones left as they are,
        and the tickets sealed again as one when any changed (an export fetched every few minutes adds
        no link, or one however many of its tickets changed). Returns (inserted, updated)."""
        now = self.clock()
        with self._lock, tx(self.conn):
            existing = {r[0]: tuple(r) for r in self.conn.execute(chain.TICKET_ROW)}
            changed = [t for t in tickets if existing.get(t.id) != ticket_fields(t)]
            self.conn.executemany(
                "INSERT INTO tickets (id, priority, opened_at, responded_at, workaround_at, resolved_at, closed_at, "
                "imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "priority=excluded.priority, opened_at=excluded.opened_at, responded_at=excluded.responded_at, "
                "workaround_at=excluded.workaround_at, resolved_at=excluded.resolved_at, closed_at=excluded.closed_at, "
                "hash=NULL, link=NULL", [(*ticket_fields(t), now) for t in changed])
            if changed:
                self._seal_tickets()
        inserted = sum(1 for t in changed if t.id not in existing)
        return inserted, len(changed) - inserted

    def remove_tickets(self, ids: list[str]) -> list[str]:
        """Deletes the stored tickets among `ids` and seals the tickets left; returns those removed."""
        with self._lock, tx(self.conn):
            removed = [i for i in dict.fromkeys(ids)
                       if self.conn.execute("DELETE FROM tickets WHERE id=?", (i,)).rowcount]
            if removed:
                self._seal_tickets()
        return removed

    def _seal_tickets(self) -> None:
        seq = chain.append_link(self.conn, [chain.tickets_seal(self.conn)], self.clock())
        self.conn.execute("UPDATE tickets SET link=? WHERE link IS NULL", (seq,))

    def tickets(self, start: float | None = None, end: float | None = None) -> list[Ticket]:
        q = chain.TICKET_ROW
        args: tuple[Any, ...] = ()
        if start is not None and end is not None:
            q += " WHERE opened_at >= ? AND opened_at < ?"
            args = (start, end)
        with self._lock:
            return [Ticket(*r) for r in self.conn.execute(q + " ORDER BY opened_at, id", args)]



def ticket_fields(t: Ticket) -> tuple:
    return (t.id, t.priority, t.opened_at, t.responded_at, t.workaround_at, t.resolved_at, t.closed_at)
