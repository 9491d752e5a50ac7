"""Which rows are sealed when (store/chain.py has the hashes and links): at each flush the rows that
have become final, unsealed or sealed provisionally; at a clean stop every row written, those not final
yet provisionally; and a provisionally sealed row that a write changes before it is final is reopened.
All of it runs inside the store's write transaction."""
from __future__ import annotations

import sqlite3
from typing import Callable, Iterator

from . import journal
from .chain import (DELETED, HOUR, MAX_SEALS_PER_LINK, PROVISIONAL, REOPENED, Seal, append_link, digest_hash,
                    final_hour, is_final, minute_hash, tickets_seal, window_hash)

# What each kind of row is sealed over, and which rows: unsealed (link IS NULL), or sealed provisionally.
_MINUTES = ("SELECT m.target_id, m.hour, t.name, m.counts, m.errors FROM minutes m JOIN targets t "
            "ON t.id = m.target_id WHERE ")
_DIGESTS = ("SELECT d.target_id, d.start, d.span, t.name, d.data FROM digests d JOIN targets t "
            "ON t.id = d.target_id WHERE ")
_SEALED = {"minutes": "UPDATE minutes SET link=?, provisional=? WHERE target_id=? AND hour=?",
           "digests": "UPDATE digests SET link=?, provisional=? WHERE target_id=? AND start=? AND span=?"}


def minute_seal(name: str, hour: int, counts: bytes, errors: str, value: str | None = None) -> Seal:
    return Seal(f"m:{name}:{hour}", hour * HOUR, value or minute_hash(name, hour, counts, errors))


def digest_seal(name: str, start: int, span: int, data: bytes, value: str | None = None) -> Seal:
    return Seal(f"d:{name}:{start}:{span}", start, value or digest_hash(name, start, span, data))


def final_rows(conn: sqlite3.Connection, now: float, limit: int, delay: float) -> Iterator[tuple[str, tuple, Seal]]:
    """Minute and digest rows that can no longer change and are not sealed final yet (unsealed, or sealed
    provisionally at a stop): (table, primary key, seal)."""
    hour = final_hour(now, delay)
    for where in ("m.link IS NULL AND m.hour < ? LIMIT ?", "m.provisional = 1 AND m.hour < ? LIMIT ?"):
        for tid, h, name, counts, errors in conn.execute(_MINUTES + where, (hour, limit)):
            yield "minutes", (tid, h), minute_seal(name, h, counts, errors)
    for where in ("d.link IS NULL AND d.start <= ? AND d.start + d.span <= ? LIMIT ?",
                  "d.provisional = 1 AND d.start <= ? AND d.start + d.span <= ? LIMIT ?"):
        for tid, start, span, name, data in conn.execute(_DIGESTS + where, (now - delay - HOUR, now - delay, limit)):
            yield "digests", (tid, start, span), digest_seal(name, start, span, data)


def open_rows(conn: sqlite3.Connection, now: float, delay: float) -> Iterator[tuple[str, tuple, Seal]]:
    """At a clean stop: the unsealed rows not final yet, each with a provisional seal."""
    for tid, h, name, counts, errors in conn.execute(_MINUTES + "m.link IS NULL AND m.hour >= ?",
                                                     (final_hour(now, delay),)):
        yield "minutes", (tid, h), minute_seal(name, h, counts, errors, PROVISIONAL + minute_hash(name, h, counts, errors))
    for tid, start, span, name, data in conn.execute(_DIGESTS + "d.link IS NULL AND d.start + d.span > ?",
                                                     (now - delay,)):
        yield "digests", (tid, start, span), digest_seal(name, start, span, data,
                                                         PROVISIONAL + digest_hash(name, start, span, data))


def unsealed_records(conn: sqlite3.Connection) -> list[tuple[str, tuple, Seal]]:
    """At a clean stop: tickets and declared windows stored before the chain existed (written since, each is
    sealed as it is written)."""
    found: list[tuple[str, tuple, Seal]] = [
        ("windows", (wid,), Seal(f"w:{wid}", None, window_hash((wid, kind, start, end, reason))))
        for wid, kind, start, end, reason in conn.execute(
            "SELECT id, kind, start, end, reason FROM windows WHERE link IS NULL")]
    if conn.execute("SELECT 1 FROM tickets WHERE link IS NULL LIMIT 1").fetchone():
        found.append(("tickets", (), tickets_seal(conn)))
    return found


def seal(conn: sqlite3.Connection, now: float, delay: float, everything: bool = False) -> None:
    """One link over the rows that have become final, and with `everything` (a clean stop) over every row
    not sealed yet."""
    found = list(final_rows(conn, now, -1 if everything else MAX_SEALS_PER_LINK, delay))
    if everything:
        found += list(open_rows(conn, now, delay)) + unsealed_records(conn)
    run = journal.seal_run(conn, now, everything)
    seq = append_link(conn, [s for _, _, s in found] + ([run[0]] if run else []), now)
    if seq is None:
        return
    for table, sql in _SEALED.items():
        conn.executemany(sql, [(seq, int(s.hash.startswith(PROVISIONAL)), *pk) for kind, pk, s in found if kind == table])
    if everything:
        conn.execute("UPDATE windows SET link=? WHERE link IS NULL", (seq,))
        conn.execute("UPDATE tickets SET link=? WHERE link IS NULL", (seq,))
    if run:
        conn.execute("UPDATE journal SET link=? WHERE id BETWEEN ? AND ?", (seq, run[1], run[2]))


class Rows:
    """How reopen() reads and unseals one kind of row: minute counts or digests (their content as stored)."""

    def __init__(self, provisional: str, unseal: str, pk: int, span: Callable[[tuple], tuple[float, float]],
                 sealed: Callable[..., Seal]) -> None:
        self.provisional, self.unseal, self.pk, self.span, self.sealed = provisional, unseal, pk, span, sealed


MINUTE_ROWS = Rows(_MINUTES + "m.provisional = 1", "UPDATE minutes SET link=NULL, provisional=0 WHERE target_id=? "
                   "AND hour=?", 2, lambda pk: (pk[1] * HOUR, HOUR), minute_seal)
DIGEST_ROWS = Rows(_DIGESTS + "d.provisional = 1", "UPDATE digests SET link=NULL, provisional=0 WHERE target_id=? "
                   "AND start=? AND span=?", 3, lambda pk: (pk[1], pk[2]), digest_seal)


def reopen(conn: sqlite3.Connection, rows: list[tuple], kind: Rows, now: float,
           delay: float) -> tuple[list[tuple], list[Seal]]:
    """Rows of a write, (primary key..., content as stored...), that were sealed provisionally at a stop:
    one the write leaves as it is needs no writing; one it changes is reopened (unsealed, with a REOPENED
    seal for the chain) while it is not final, and left to the store's refusal once it is. Returns the rows
    to write and the seals."""
    sealed = {r[:kind.pk]: (r[kind.pk], r[kind.pk + 1:]) for r in conn.execute(kind.provisional)}
    if not sealed:
        return rows, []
    out, seals = [], []
    for row in rows:
        pk, content = row[:kind.pk], row[kind.pk:]
        name, stored = sealed.get(pk, (None, None))
        if name is None:
            out.append(row)
        elif stored != content:
            if not is_final(*kind.span(pk), now, delay):
                conn.execute(kind.unseal, pk)
                seals.append(kind.sealed(name, *pk[1:], *content, REOPENED))
            out.append(row)
    return out, seals


def removed(conn: sqlite3.Connection, target: str, hours: list[int]) -> list[Seal]:
    """Hour digests merged into their day's digest: those ever sealed are sealed as deleted."""
    keys = [f"d:{target}:{h * HOUR}:{HOUR}" for h in hours]
    return [Seal(key, h * HOUR, DELETED) for h, key in zip(hours, keys)
            if conn.execute("SELECT 1 FROM seals WHERE key=? LIMIT 1", (key,)).fetchone()]
