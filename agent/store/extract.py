"""A month's extract of the ledger database, for an evidence bundle: the rows a report of the month reads,
the journal of the month (whole sealed runs), every ticket and declared window, and the run of chain
links that seals them. The extract is an ordinary ledger database: the same code reads and verifies it."""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

from . import blocks, merged
from .chain import DAY, HOUR
from .schema import SIMULATED_KEY

SCOPE_KEY = "extract_scope"  # meta: the [from, until) the extract's rows cover


# a failure's path travels with the failures
JOURNAL_PARTS = {"all": ("up", "down", "inconclusive", "path"), "failures": ("down", "inconclusive", "path"), "none": ()}


class Cancelled(Exception):
    """The extract was given up: whoever asked for it went away."""


class Cancel:
    """Set on the event loop when an extract's client goes away. The extract, in its worker thread,
    checks it between statements and chunks; a statement under way is interrupted (one INSERT of a
    month's journal can take seconds)."""

    def __init__(self) -> None:
        self._set = threading.Event()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def set(self) -> None:
        with self._lock:
            self._set.set()
            if self._conn is not None:
                self._conn.interrupt()

    def is_set(self) -> bool:
        return self._set.is_set()

    def check(self) -> None:
        if self._set.is_set():
            raise Cancelled()

    @contextlib.contextmanager
    def watching(self, conn: sqlite3.Connection) -> Iterator[None]:
        """While the block runs, set() interrupts what `conn` runs."""
        with self._lock:
            self._conn = conn
        try:
            self.check()
            yield
        except sqlite3.OperationalError:
            self.check()  # "interrupted": it was given up
            raise
        finally:
            with self._lock:
                self._conn = None


def write_extract(conn: sqlite3.Connection, dest: Path, rows_from: float, journal_from: float, until: float,
                  journal: str = "all", cancel: Cancel | None = None) -> None:
    """Copies into `dest` (a new database with the same schema) the minute rows and digests from
    `rows_from`, the journal from `journal_from` (`journal`: all its records, the failures only, none),
    all up to `until`. Raises Cancelled when `cancel` is set meanwhile."""
    cancel = cancel or Cancel()
    conn.execute("ATTACH DATABASE ? AS x", (str(dest),))
    try:
        conn.execute("BEGIN")
        for sql, args in _copies(conn, rows_from, journal_from, until, journal):
            cancel.check()
            if isinstance(args, list):
                conn.executemany(sql, args)
            else:
                conn.execute(sql, args)
        cancel.check()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # an interrupted statement rolls its transaction back itself
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("DETACH DATABASE x")


def _copies(conn: sqlite3.Connection, rows_from: float, journal_from: float, until: float,
            journal: str) -> Iterator[tuple[str, Any]]:
    """The extract's statements, one at a time (each may read what the ones before wrote)."""
    yield "INSERT INTO x.targets SELECT * FROM main.targets", ()
    yield ("INSERT INTO x.minutes SELECT * FROM main.minutes WHERE hour >= ? AND hour < ?",
           (int(rows_from // HOUR), int(-(-until // HOUR))))
    yield ("INSERT INTO x.digests SELECT * FROM main.digests WHERE start >= ? AND start < ?",
           (int(rows_from) - DAY, int(until)))
    yield "INSERT INTO x.tickets SELECT * FROM main.tickets", ()
    yield "INSERT INTO x.windows SELECT * FROM main.windows", ()
    yield "INSERT INTO x.key_rotations SELECT * FROM main.key_rotations", ()  # the keys' succession, whole
    lo, hi = sealed_runs(conn, journal_from, until)
    yield ("INSERT INTO x.journal SELECT * FROM main.journal WHERE ((at_us >= ? AND at_us < ?) "
           "OR id BETWEEN ? AND ?) AND outcome IN (SELECT value FROM json_each(?))",
           (round(journal_from * 1e6), round(until * 1e6), lo, hi, json.dumps(JOURNAL_PARTS[journal])))
    yield from _blocks(conn, (round(journal_from * 1e6), round(until * 1e6), lo, hi), journal)
    yield ("INSERT INTO x.blobs SELECT * FROM main.blobs WHERE id IN (SELECT body_id FROM x.journal UNION "
           "SELECT body_id FROM x.journal_profiles) OR sha256 IN (SELECT json_extract(a.value, '$[1]') FROM x.journal j, "
           "json_each(j.artifacts) AS a UNION SELECT json_extract(a.value, '$[1]') FROM x.journal_profiles p, "
           "json_each(p.artifacts) AS a)", ())
    first = conn.execute(
        "SELECT MIN(link) FROM (SELECT link FROM x.minutes UNION ALL SELECT link FROM x.digests "
        "UNION ALL SELECT link FROM x.journal UNION ALL SELECT link0 FROM x.journal_blocks "
        "UNION ALL SELECT link FROM x.tickets UNION ALL SELECT link FROM x.windows)").fetchone()[0]
    if first is not None:
        yield "INSERT INTO x.chain SELECT * FROM main.chain WHERE seq >= ?", (first,)
        yield "INSERT INTO x.seals SELECT * FROM main.seals WHERE seq >= ?", (first,)
        yield "INSERT INTO x.timestamps SELECT * FROM main.timestamps WHERE link >= ?", (first,)  # sealed in it
    # the mark of a month the demo wrote: a report rebuilt from the extract says SIMULATED as the ledger's does
    yield "INSERT OR REPLACE INTO x.meta SELECT key, value FROM main.meta WHERE key = ?", (SIMULATED_KEY,)
    yield "INSERT OR REPLACE INTO x.meta VALUES (?, ?)", (
        SCOPE_KEY, json.dumps({"from": rows_from, "journal_from": journal_from, "until": until,
                               "journal_ids": [lo, hi], "journal": journal}))


_INSIDE = "(at0_us >= ? AND at1_us < ?) OR (first_id >= ? AND last_id <= ?)"


def _blocks(conn: sqlite3.Connection, span: tuple[int, int, int, int], journal: str) -> Iterator[tuple[str, Any]]:
    """The journal's blocks about the span: those wholly in it copied as they are (with every profile), the
    records in the span of the others written out as rows, so that the extract holds the span's records
    and no other (a record beyond it may belong to a run whose seal the extract does not hold)."""
    if journal == "none" or not blocks.present(conn):
        return
    whole = journal == "all"
    if whole:
        yield "INSERT INTO x.journal_profiles SELECT * FROM main.journal_profiles", ()
        yield f"INSERT INTO x.journal_blocks SELECT * FROM main.journal_blocks WHERE {_INSIDE}", span  # nosec B608 - constant SQL fragments
    edge = f"({merged.IN_SPAN}) AND NOT ({_INSIDE})" if whole else merged.IN_SPAN
    wanted, (s, u, lo, hi) = JOURNAL_PARTS[journal], span
    rows = [p.table_row(b, k) for p, b in merged.blocks(conn, edge, span * 2 if whole else span)
            for k, (i, a) in enumerate(zip(b.ids, b.at))
            if (s <= a < u or lo <= i <= hi) and p.rows[b.profile[k]][1] in wanted]
    if rows:
        yield f"INSERT INTO x.journal VALUES ({', '.join('?' * len(rows[0]))})", rows  # nosec B608 - constant SQL fragments


def sealed_runs(conn: sqlite3.Connection, since: float, until: float) -> tuple[int, int]:
    """The ids of the journal runs sealed about [since, until): whole runs go into the extract, so that
    each can be checked there."""
    ids = [int(x) for (key,) in conn.execute("SELECT key FROM main.seals WHERE key LIKE 'j:%' AND t >= ? AND t < ?",
                                             (since, until)) for x in key.split(":")[1:]]
    return (min(ids), max(ids)) if ids else (0, -1)
