"""Packing sealed journal records into blocks (store/blocks.py), a block at a time, within a flush.

A record is packed by copying it, never by making it again: its stored hash goes in as it is (a record
edited before its seal still differs from it afterwards), and before its row is deleted the record's text
and JSON line made back from the block must equal, byte for byte, those SQLite makes from the row. A row
that does not (a value of a type the agent never writes, a text not in canonical form) stays a row.
"""
from __future__ import annotations

import json
import re
import sqlite3

from .blocks import OUTCOME_INDEX, PROFILE_FIELDS, Block, Packed, Profiles, encode
from .journal import _LINE, _TEXT

BLOCK_RECORDS = 16384  # a block's records at most: about a week of one target, decoded in a few tens of ms
PACK_AGE = 86400.0  # a block is made once its oldest record is a day old, or once it is full
MARK = "journal_packed_to"  # meta: the last id packing has looked at (a row left as a row stays behind it)
_HEX = re.compile(r"[0-9a-f]{64}")
# the sealed records after the last block, up to the first one not sealed yet (ids only grow)
_PACKABLE = (f"SELECT j.id, j.at_us, j.duration_us, j.phases, j.headers, j.hash, j.link, j.target_id, j.outcome, "  # nosec B608 - constant SQL fragments
             f"j.error_kind, j.status, j.error, j.address, j.body_id, j.cert_sha256, j.location, j.masked, "
             f"j.artifacts, {_TEXT}, {_LINE} FROM journal j JOIN targets t ON t.id = j.target_id "
             f"LEFT JOIN blobs b ON b.id = j.body_id WHERE j.id > ? AND j.link IS NOT NULL "
             f"AND j.id < COALESCE((SELECT MIN(id) FROM journal WHERE link IS NULL), 1 << 62) ORDER BY j.id LIMIT ?")


# the first record after the mark, and how many sealed ones follow the mark (ids are consecutive): two seeks
_WAITING = ("SELECT (SELECT at_us FROM journal WHERE id > ?1 ORDER BY id LIMIT 1), COALESCE((SELECT MIN(id) FROM "
            "journal WHERE link IS NULL), (SELECT MAX(id) FROM journal) + 1) - 1 - ?1")


def _plain(r: tuple) -> bool:
    """A row of the types the agent writes (the block's integer columns and texts hold nothing else)."""
    ints = all(type(v) is int for v in (r[0], r[1], r[2], r[6], r[7], r[16])) and (r[10] is None or type(r[10]) is int)
    texts = all(type(v) is str for v in (r[3], r[4], r[8], r[9], r[11], r[12], r[14], r[15], r[17]))
    return ints and texts and (r[13] is None or type(r[13]) is int) and bool(_HEX.fullmatch(r[5]))


def _profile_ids(conn: sqlite3.Connection, rows: list[tuple]) -> list[int]:
    known = {tuple(r[1:]): r[0] for r in conn.execute(f"SELECT id, {', '.join(PROFILE_FIELDS)} FROM journal_profiles")}  # nosec B608 - constant SQL fragments
    next_id = max(known.values(), default=0) + 1
    out = []
    for r in rows:
        key = tuple(r[7:18])
        if key not in known:
            conn.execute(f"INSERT INTO journal_profiles (id, {', '.join(PROFILE_FIELDS)}) VALUES "  # nosec B608 - constant SQL fragments
                         f"({', '.join('?' * (len(PROFILE_FIELDS) + 1))})", (next_id, *key))
            known[key], next_id = next_id, next_id + 1
        out.append(known[key])
    return out


def _packed(rows: list[tuple], profiles: list[int]) -> list[Packed]:
    return [Packed(r[0], r[1], r[2], p, r[6], r[3].encode(), r[4].encode(), r[5]) for r, p in zip(rows, profiles)]


def _same(conn: sqlite3.Connection, rows: list[tuple], data: bytes, hashes: bytes) -> list[bool]:
    """Per row: does the block give back its text and its line as SQLite makes them?"""
    block, templates = Block(data, hashes), Profiles(conn)
    texts, lines = templates.texts(block), templates.lines(block)
    return [t == r[18].encode() and ln == r[19].encode() for r, t, ln in zip(rows, texts, lines)]


def pack(conn: sqlite3.Connection, now: float, limit: int | None = None) -> int:
    """Packs the oldest sealed records into one block when they are a full block or a day old: how many
    (0 when it is not time yet). Runs inside the caller's transaction."""
    limit = limit or BLOCK_RECORDS
    mark = conn.execute("SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), "
                        "(SELECT MAX(last_id) FROM journal_blocks), 0)", (MARK,)).fetchone()[0]
    oldest, waiting = conn.execute(_WAITING, (mark,)).fetchone()
    if oldest is None or not waiting or waiting <= 0 or (waiting < limit and oldest / 1e6 > now - PACK_AGE):
        return 0  # decided on the ids and times alone: the texts are made only for a block to be made
    rows = conn.execute(_PACKABLE, (mark, limit)).fetchall()
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (MARK, str(rows[-1][0])))
    rows = [r for r in rows if _plain(r)]
    if rows:
        data, hashes = encode(_packed(rows, _profile_ids(conn, rows)))
        same = _same(conn, rows, data, hashes)
        if not all(same):
            rows = [r for r, ok in zip(rows, same) if ok]
            data, hashes = encode(_packed(rows, _profile_ids(conn, rows))) if rows else (b"", b"")
    if not rows:
        return 0
    counts = [sum(OUTCOME_INDEX.get(r[8]) == i for r in rows) for i in range(3)]
    conn.execute("INSERT INTO journal_blocks (first_id, last_id, n, at0_us, at1_us, up, down, inconclusive, link0, "
                 "targets, data, hashes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (rows[0][0], rows[-1][0], len(rows), min(r[1] for r in rows), max(r[1] for r in rows), *counts,
                  min(r[6] for r in rows), json.dumps(sorted({r[7] for r in rows})), data, hashes))
    conn.executemany("DELETE FROM journal WHERE id = ?", [(r[0],) for r in rows])
    return len(rows)
