"""The journal as one: its blocks (store/blocks.py) and its rows (the records not packed yet, and those left
as rows), read together in id order. Rows are read by SQLite; blocks are picked by SQLite (by their span,
ids, targets and failure counts) and decoded here."""
from __future__ import annotations

import heapq
import json
import sqlite3
from operator import itemgetter
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from .blocks import OUTCOME_INDEX, Block, Profiles, present

_BLOCKS = "SELECT data, hashes FROM journal_blocks WHERE {} ORDER BY first_id"
IN_SPAN = "(at1_us >= ? AND at0_us < ?) OR (last_id >= ? AND first_id <= ?)"
_IN_IDS = "last_id >= ? AND first_id <= ?"
# a block of up records only is skipped unless up is asked for; one holding other outcomes (a path, whose
# record may land in a block of its own, apart from the failure it explains) is read
_OF_TARGETS = ("at1_us >= ? AND at0_us < ? AND (? OR n > up) AND EXISTS (SELECT 1 FROM "
               "json_each(targets) WHERE value IN (SELECT id FROM targets WHERE name IN (SELECT value FROM json_each(?))))")


def blocks(conn: sqlite3.Connection, where: str, args: tuple) -> Iterator[tuple[Profiles, Block]]:
    """The blocks matching `where`, decoded, in id order, each with the ledger's profiles."""
    if not present(conn):
        return
    profiles = None
    for data, hashes in conn.execute(_BLOCKS.format(where), args):  # one at a time: a year is gigabytes decoded
        profiles = profiles or Profiles(conn)
        yield profiles, Block(data, hashes)


class Chunk(NamedTuple):
    """Consecutive records in id order (parallel lists)."""
    ids: list[int]
    names: list[str]
    at: list[int]
    stored: list[str]  # the hash written with each
    texts: list[bytes | None]  # None when a column is NULL
    lines: list[bytes] | None  # the JSON lines, when asked for


def _block_chunk(p: Profiles, b: Block, span: tuple[int, int, int, int], lines: bool) -> Chunk:
    s, u, lo, hi = span
    ids, at = b.id_array, b.at_array
    keep = np.flatnonzero(((at >= s) & (at < u)) | ((ids >= lo) & (ids <= hi)))
    if len(keep) == b.n:
        return Chunk(b.ids, [p.rows[q][0] for q in b.profile], b.at, b.hashes, p.texts(b),
                     p.lines(b) if lines else None)
    k = keep.tolist()
    return Chunk(ids[keep].tolist(), [p.rows[b.profile[i]][0] for i in k], at[keep].tolist(),
                 [b.hashes[i] for i in k], p.texts(b, k), p.lines(b, k) if lines else None)


def _row_chunk(rows: list[tuple], lines: bool) -> Chunk:
    return Chunk([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                 [None if r[4] is None else r[4].encode() for r in rows],
                 [r[5].encode() for r in rows] if lines else None)


def _joined(a: Chunk, b: Chunk) -> Chunk:
    """Two chunks as one in id order (a row left behind among a block's records)."""
    order = sorted(range(len(a.ids) + len(b.ids)), key=(a.ids + b.ids).__getitem__)
    cols = [None if x is None else x + y for x, y in zip(a, b)]
    return Chunk(*[None if c is None else [c[i] for i in order] for c in cols])


def span_chunks(conn: sqlite3.Connection, hot: str, span: tuple[int, int, int, int], lines: bool,
                batch: int = 8192) -> Iterator[Chunk]:
    """The records with a start in [span[0], span[1]) or an id in [span[2], span[3]], in id order, a block (or
    a batch of rows) at a time; `hot` reads the rows (journal.py's HASHED or CHECKED over _SPAN, in id order)."""
    rows = conn.execute(hot, span)
    pending = rows.fetchone()
    for p, b in blocks(conn, IN_SPAN, span):
        first, last = b.id_array[0], b.id_array[-1]
        early: list[tuple] = []
        inside: list[tuple] = []
        while pending is not None and pending[0] <= last:
            (early if pending[0] < first else inside).append(pending)
            pending = rows.fetchone()
        if early:
            yield _row_chunk(early, lines)
        chunk = _block_chunk(p, b, span, lines)
        yield _joined(chunk, _row_chunk(inside, lines)) if inside else chunk
    while pending is not None:
        more = [pending] + rows.fetchmany(batch - 1)
        pending = rows.fetchone()
        yield _row_chunk(more, lines)


def _picked(b: Block, start_us: int, end_us: int, ok: np.ndarray) -> np.ndarray:
    """The indexes of the block's records started in [start_us, end_us) whose profile is `ok`."""
    return np.flatnonzero((b.at_array >= start_us) & (b.at_array < end_us) & ok[b.profile_array])


def rows(conn: sqlite3.Connection, targets: list[str], start_us: int, end_us: int, outcomes: Iterable[str],
         hot: str, hot_args: tuple) -> list[tuple]:
    """The records of these targets and outcomes started in [start_us, end_us), as journal.SELECT gives them
    (in no order: the caller orders them); `hot` reads the rows (journal.py: ALL_OF)."""
    wanted = set(outcomes)
    out = list(conn.execute(hot, hot_args))
    for p, b in blocks(conn, _OF_TARGETS, (start_us, end_us, int("up" in wanted), json.dumps(targets))):
        out += [p.row(b, k) for k in _picked(b, start_us, end_us, p.wanted(set(targets), wanted)).tolist()]
    return out


def episode(conn: sqlite3.Connection, targets: list[str], start_us: int, end_us: int, hot: str,
            hot_args: tuple) -> tuple[int, tuple | None, tuple | None, set[str]]:
    """The down records of these targets started in [start_us, end_us): how many, the first and the last (by
    start, then id, as journal.SELECT rows) and their locations; `hot` reads the rows' (journal.py: ALL_OF)."""
    found = list(conn.execute(hot, hot_args))
    n, places = len(found), {r[13] for r in found}
    for p, b in blocks(conn, _OF_TARGETS, (start_us, end_us, 0, json.dumps(targets))):
        idx = _picked(b, start_us, end_us, p.wanted(set(targets), {"down"}))
        if len(idx):
            n += len(idx)
            places |= {p.rows[q][8] for q in np.unique(b.profile_array[idx]).tolist()}
            order = idx[np.lexsort((b.id_array[idx], b.at_array[idx]))]
            found += [p.row(b, int(order[0])), p.row(b, int(order[-1]))]
    key = itemgetter(2, 0)
    return n, min(found, key=key, default=None), max(found, key=key, default=None), places


def rows_by_id(conn: sqlite3.Connection, a: int, b: int, hot: str) -> list[tuple]:
    """(stored hash, *journal.SELECT) of the records a to b, in id order."""
    packed = [(blk.hashes[k], *p.row(blk, k)) for p, blk in blocks(conn, _IN_IDS, (a, b))
              for k, i in enumerate(blk.ids) if a <= i <= b]
    return sorted(packed + conn.execute(hot, (a, b)).fetchall(), key=itemgetter(1))


def id_hashes(conn: sqlite3.Connection, targets: list[str], start_us: int, until_us: int,
              outcomes: Iterable[str], hot: str, hot_args: tuple) -> tuple[int, str]:
    """How many records of these targets and outcomes started in [start_us, until_us), and "id:hash," of each
    in id order (a report's evidence hash); `hot` gives the rows' (id, hash) in id order."""
    wanted = set(outcomes)
    ids: list[int] = []
    hashes: list[str] = []
    for p, b in blocks(conn, _OF_TARGETS, (start_us, until_us, int("up" in wanted), json.dumps(targets))):
        idx = _picked(b, start_us, until_us, p.wanted(set(targets), wanted))
        if len(idx) == b.n:
            ids += b.ids
            hashes += b.hashes
        else:
            ids += b.id_array[idx].tolist()
            hashes += [b.hashes[k] for k in idx.tolist()]
    hot_rows = conn.execute(hot, hot_args).fetchall()
    pairs: Iterable[tuple[int, str]] = zip(ids, hashes)
    if hot_rows:  # blocks hold runs of ids apart: rows left behind or not packed yet go in among them
        pairs = heapq.merge(pairs, hot_rows, key=itemgetter(0))
    return len(ids) + len(hot_rows), "".join([f"{i}:{h}," for i, h in pairs])


def per_minute(conn: sqlite3.Connection, start_us: int, until_us: int, hot: str) -> dict[str, np.ndarray]:
    """Per target, its records in [start_us, until_us) counted per minute: rows of "minute, up, down,
    inconclusive" and the same three among the records on the minute's first microsecond, for each minute with
    records, in minute order."""
    names: dict[str, int] = {}
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    hot_rows = conn.execute(hot, (start_us, until_us)).fetchall()
    if hot_rows:
        parts.append((np.array([names.setdefault(r[0], len(names)) for r in hot_rows], np.int64),
                      np.array([r[1] for r in hot_rows], np.int64),
                      np.array([OUTCOME_INDEX.get(r[2], 3) for r in hot_rows], np.int64)))
    for p, b in blocks(conn, "at1_us >= ? AND at0_us < ?", (start_us, until_us)):
        target = np.full(len(p.kind_of), -1, np.int64)
        for pid, fixed in p.rows.items():
            target[pid] = names.setdefault(fixed[0], len(names))
        m = (b.at_array >= start_us) & (b.at_array < until_us)
        prof = b.profile_array[m]
        parts.append((target[prof], b.at_array[m], p.kind_of[prof]))
    if not parts:
        return {}
    target, at, kind = (np.concatenate(c) for c in zip(*parts))
    return {name: _minutes(at[target == t], kind[target == t]) for name, t in names.items() if (target == t).any()}


def _minutes(at: np.ndarray, kind: np.ndarray) -> np.ndarray:
    minute, first = at // 60_000_000, (at % 60_000_000 == 0)
    keys, where = np.unique(minute, return_inverse=True)
    counts = np.zeros((len(keys), 8), np.int64)
    np.add.at(counts, (where, kind), 1)
    np.add.at(counts, (where, 4 + kind), first.astype(np.int64))
    return np.column_stack([keys, counts[:, 0:3], counts[:, 4:7]])
