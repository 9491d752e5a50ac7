"""The journal as one: its blocks (store/blocks.py) and its rows (the records not packed yet, and those left
as rows), read together in id order. Rows are read by SQLite; blocks are picked by SQLite (by their span,
ids, targets and failure counts) and decoded here."""
from __future__ import annotations

import heapq
import json
import sqlite3
from operator import itemgetter
from typing import Iterable, Iterator

import numpy as np

from .blocks import OUTCOME_INDEX, Block, Profiles, present

_BLOCKS = "SELECT data, hashes FROM journal_blocks WHERE {} ORDER BY first_id"
IN_SPAN = "(at1_us >= ? AND at0_us < ?) OR (last_id >= ? AND first_id <= ?)"
_IN_IDS = "last_id >= ? AND first_id <= ?"
_OF_TARGETS = ("at1_us >= ? AND at0_us < ? AND (? OR down + inconclusive > 0) AND EXISTS (SELECT 1 FROM "
               "json_each(targets) WHERE value IN (SELECT id FROM targets WHERE name IN (SELECT value FROM json_each(?))))")


def blocks(conn: sqlite3.Connection, where: str, args: tuple) -> Iterator[tuple[Profiles, Block]]:
    """The blocks matching `where`, decoded, in id order, each with the ledger's profiles."""
    if not present(conn):
        return
    profiles = None
    for data, hashes in conn.execute(_BLOCKS.format(where), args).fetchall():
        profiles = profiles or Profiles(conn)
        yield profiles, Block(data, hashes)


def _in_span(b: Block, span: tuple[int, int, int, int]) -> list[int]:
    s, u, lo, hi = span
    return [k for k, (i, a) in enumerate(zip(b.ids, b.at)) if s <= a < u or lo <= i <= hi]


def _span_blocks(conn: sqlite3.Connection, span: tuple[int, int, int, int],
                 lines: bool) -> Iterator[tuple[int, str, int, str, bytes, bytes | None]]:
    for p, b in blocks(conn, IN_SPAN, span):
        keep = _in_span(b, span)
        texts = p.texts(b, keep)
        made = p.lines(b, keep) if lines else [None] * len(keep)
        names = p.rows
        for k, text, line in zip(keep, texts, made):
            yield b.ids[k], names[b.profile[k]][0], b.at[k], b.hashes[k], text, line


def span_records(conn: sqlite3.Connection, hot: str, span: tuple[int, int, int, int],
                 lines: bool) -> Iterator[tuple[int, str, int, str, bytes | None, bytes | None]]:
    """The records with a start in [span[0], span[1]) or an id in [span[2], span[3]], in id order: (id, target,
    at_us, stored hash, text, JSON line when `lines`), those of rows read by the statement `hot` (journal.py's
    HASHED or CHECKED over _SPAN), whose text is None when a column is NULL."""
    rows = ((r[0], r[1], r[2], r[3], None if r[4] is None else r[4].encode(),
             r[5].encode() if lines else None) for r in conn.execute(hot, span))  # HASHED has no r[5]
    return heapq.merge(_span_blocks(conn, span, lines), rows, key=itemgetter(0))


def texts_between(conn: sqlite3.Connection, a: int, b: int, hot: str) -> Iterator[tuple[int, bytes]]:
    """(id, text) of the records a to b, in id order; `hot`: the rows' statement (id, text)."""
    packed = ((i, t) for p, blk in blocks(conn, _IN_IDS, (a, b))
              for i, t in zip(blk.ids, p.texts(blk)) if a <= i <= b)
    rows = ((i, t.encode()) for i, t in conn.execute(hot, (a, b)) if t is not None)
    return heapq.merge(packed, rows, key=itemgetter(0))


def rows(conn: sqlite3.Connection, targets: list[str], start_us: int, end_us: int, outcomes: Iterable[str],
         hot: str, hot_args: tuple) -> list[tuple]:
    """The records of these targets and outcomes started in [start_us, end_us), as journal.SELECT gives them
    (in no order: the caller orders them); `hot` reads the rows (journal.py: ALL_OF)."""
    wanted, names = set(outcomes), set(targets)
    out = list(conn.execute(hot, hot_args))
    for p, b in blocks(conn, _OF_TARGETS, (start_us, end_us, int("up" in wanted), json.dumps(targets))):
        for k, (at, prof) in enumerate(zip(b.at, b.profile)):
            fixed = p.rows[prof]
            if start_us <= at < end_us and fixed[0] in names and fixed[1] in wanted:
                out.append(p.row(b, k))
    return out


def rows_by_id(conn: sqlite3.Connection, a: int, b: int, hot: str) -> list[tuple]:
    """(stored hash, *journal.SELECT) of the records a to b, in id order."""
    packed = [(blk.hashes[k], *p.row(blk, k)) for p, blk in blocks(conn, _IN_IDS, (a, b))
              for k, i in enumerate(blk.ids) if a <= i <= b]
    return sorted(packed + conn.execute(hot, (a, b)).fetchall(), key=itemgetter(1))


def id_hashes(conn: sqlite3.Connection, targets: list[str], start_us: int, until_us: int,
              outcomes: Iterable[str], hot: str, hot_args: tuple) -> tuple[int, str]:
    """How many records of these targets and outcomes started in [start_us, until_us), and "id:hash," of each
    in id order (a report's evidence hash); `hot` gives the rows' (id, hash)."""
    wanted, names = set(outcomes), set(targets)
    found = conn.execute(hot, hot_args).fetchall()
    for p, b in blocks(conn, _OF_TARGETS, (start_us, until_us, int("up" in wanted), json.dumps(targets))):
        found += [(i, h) for i, a, prof, h in zip(b.ids, b.at, b.profile, b.hashes)
                  if start_us <= a < until_us and p.rows[prof][0] in names and p.rows[prof][1] in wanted]
    found.sort()
    return len(found), "".join(f"{i}:{h}," for i, h in found)


def per_minute(conn: sqlite3.Connection, start_us: int, until_us: int, hot: str) -> dict[str, str]:
    """journal.py's PER_MINUTE over blocks and rows: per target, "minute up down inconclusive up0 down0
    inconclusive0" for each minute with records (0: those on the minute's first microsecond)."""
    ats: dict[str, list[int]] = {}
    kinds: dict[str, list[int]] = {}
    for name, at, outcome in conn.execute(hot, (start_us, until_us)):
        ats.setdefault(name, []).append(at)
        kinds.setdefault(name, []).append(OUTCOME_INDEX.get(outcome, 3))
    for p, b in blocks(conn, "at1_us >= ? AND at0_us < ?", (start_us, until_us)):
        for at, prof in zip(b.at, b.profile):
            if start_us <= at < until_us:
                name = p.rows[prof][0]
                ats.setdefault(name, []).append(at)
                kinds.setdefault(name, []).append(p.outcome[prof])
    return {name: _minutes(np.array(at, np.int64), np.array(kinds[name], np.int64)) for name, at in ats.items()}


def _minutes(at: np.ndarray, kind: np.ndarray) -> str:
    minute, first = at // 60_000_000, (at % 60_000_000 == 0)
    keys, where = np.unique(minute, return_inverse=True)
    counts = np.zeros((len(keys), 8), np.int64)
    np.add.at(counts, (where, kind), 1)
    np.add.at(counts, (where, 4 + kind), first.astype(np.int64))
    cols = np.column_stack([keys, counts[:, 0:3], counts[:, 4:7]])
    return " ".join(" ".join(map(str, row)) for row in cols.tolist())
