"""Part of Store: the RFC 3161 time-stamp tokens of the chain's head (timestamping/), and their check.

A token names the link it stamps (`seq`) and is sealed in the link written with it (key `ts:<id>`), so
that a token removed or replaced is named like any sealed row; the next token stamps a head that
follows that link. The check needs no network: each token is read, its signature checked against the
certificates the user trusts (when given), and its imprint compared with the hash of the link it names.
A token on link N proves that link N, and so every link before it and every row they seal, existed by
the token's time: a chain rebuilt after that time (a row rewritten, every later link computed again and
signed again with the agent's own key) no longer holds the stamped hash at N, and the check names it.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ..timestamping import tsp
from . import chain
from .schema import tx

SEAL_PREFIX = "ts:"


def token_hash(tid: int, seq: int, tsa: str, token: bytes) -> str:
    return chain.row_hash("ts", tid, seq, tsa, token)


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class TimeProof:
    """What the stored tokens prove: problems found, and per run of links the time they existed by."""

    problems: list[str] = field(default_factory=list)
    proven: list[str] = field(default_factory=list)  # "links a to b: existed by T (tsa, ...)"
    tokens: int = 0  # tokens that prove their link
    signatures_checked: bool = False


class TimestampTables:
    """Part of Store: the timestamps table (the connection, lock and clock are the store's)."""

    conn: sqlite3.Connection
    _lock: threading.Lock
    clock: Callable[[], float]

    def add_timestamp(self, seq: int, tsa: str, token: bytes) -> int:
        """Stores a token of link `seq` and seals it in a new link. Returns the token's id."""
        now = self.clock()
        with self._lock, tx(self.conn):
            tid = int(self.conn.execute("INSERT INTO timestamps (seq, tsa, token, at) VALUES (?, ?, ?, ?)",
                                        (seq, tsa, token, now)).lastrowid)
            link = chain.append_link(self.conn, [chain.Seal(f"{SEAL_PREFIX}{tid}", now,
                                                            token_hash(tid, seq, tsa, token))], now)
            self.conn.execute("UPDATE timestamps SET link=? WHERE id=?", (link, tid))
        return tid

    def timestamps(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self.conn.execute("SELECT id, seq, tsa, at, link FROM timestamps ORDER BY id").fetchall()
        return [dict(zip(("id", "seq", "tsa", "at", "link"), r)) for r in rows]

    def check_timestamps(self, roots: list[Any] | None) -> TimeProof:
        """Every stored token against the chain (and, with `roots`, the TSA certificates trusted)."""
        with self._lock:
            return check(self.conn, roots)


def check(conn: sqlite3.Connection, roots: list[Any] | None) -> TimeProof:
    proof = TimeProof(signatures_checked=bool(roots))
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name='timestamps'").fetchone() is None:
        return proof  # a ledger (a bundle's) from before time-stamps: read only, never migrated
    first, last = conn.execute("SELECT MIN(seq), MAX(seq) FROM chain").fetchone()
    _sealed(conn, proof.problems)
    times: dict[int, tuple[float, set[str]]] = {}
    named = 0  # the last link a token names, good or not
    for tid, seq, tsa, token in conn.execute("SELECT id, seq, tsa, token FROM timestamps ORDER BY seq, id").fetchall():
        if first is None or seq < first:
            continue  # a stamp of links no longer kept (retention), or before an extract's first link
        named = seq
        t = _token(conn, tid, seq, tsa, bytes(token), roots, proof.problems)
        if t is not None:
            proof.tokens += 1
            best, who = times.get(seq, (t, set()))
            times[seq] = (min(best, t), who | {tsa})
    proof.proven = _runs(times, first, last, named)
    return proof


def _token(conn: sqlite3.Connection, tid: int, seq: int, tsa: str, token: bytes, roots: list[Any] | None,
           problems: list[str]) -> float | None:
    """The time one token proves its link by, or None (and the problem) when it proves nothing."""
    try:
        resp = tsp.decode(token)
        t = tsp.gen_time(resp)
        if roots:
            tsp.signed_by(resp, roots)
        row = conn.execute("SELECT link FROM chain WHERE seq=?", (seq,)).fetchone()
        if row is None:
            problems.append(f"link {seq}, time-stamped by {tsa} at {_when(t)}: missing from the chain")
            return None
        if not tsp.imprint_of(resp, bytes.fromhex(row[0])):
            problems.append(f"link {seq} is not the chain's head that {tsa} time-stamped at {_when(t)} (time-stamp "
                            f"{tid}): the chain was rewritten after that time")
            return None
    except tsp.BadToken as exc:
        problems.append(f"time-stamp {tid} of link {seq} by {tsa}: {exc}")
        return None
    except ValueError:  # a link's hash that is no hex: rewritten by hand
        problems.append(f"link {seq}: its hash is not a SHA-256 hash")
        return None
    return t


def _sealed(conn: sqlite3.Connection, problems: list[str]) -> None:
    """Each token against its seal: none removed, none replaced, none added outside the chain."""
    seals = {int(key[len(SEAL_PREFIX):]): (seq, value) for key, seq, value in conn.execute(
        "SELECT key, MAX(seq), hash FROM seals WHERE key LIKE 'ts:%' GROUP BY key")}
    rows = {tid: token_hash(tid, seq, tsa, bytes(token)) for tid, seq, tsa, token in
            conn.execute("SELECT id, seq, tsa, token FROM timestamps")}
    for tid in sorted(set(seals) | set(rows)):
        if tid not in rows:
            problems.append(f"time-stamp {tid} (sealed in link {seals[tid][0]}): missing")
        elif tid not in seals:
            problems.append(f"time-stamp {tid}: not sealed in the chain")
        elif rows[tid] != seals[tid][1]:
            problems.append(f"time-stamp {tid} (sealed in link {seals[tid][0]}): differs from what was sealed")


def _runs(times: dict[int, tuple[float, set[str]]], first: int | None, last: int | None, named: int) -> list[str]:
    """Per stamped link, the links since the one stamped before it: a token on a later link proves the
    earlier ones too, so each run existed by the earliest time stamped on it or after it."""
    out: list[str] = []
    best, who = float("inf"), set()
    proven: list[tuple[int, float, set[str]]] = []
    for seq in sorted(times, reverse=True):
        t, tsas = times[seq]
        if t <= best:
            best, who = t, tsas
        proven.append((seq, best, who))
    start = first
    for seq, t, tsas in reversed(proven):
        out.append(f"links {start} to {seq}: existed by {_when(t)} ({', '.join(sorted(tsas))})")
        start = seq + 1
    if last is not None and start is not None and start <= named:
        out.append(f"links {start} to {named}: no time-stamp proves them (see the mismatches)")
        start = named + 1
    if last is not None and start is not None and start <= last:
        out.append(f"links {start} to {last}: not time-stamped yet")
    return out
