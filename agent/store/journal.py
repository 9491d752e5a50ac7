"""The failure journal: writing records (redacted, bodies stored once by their hash), reading them back for
incidents and the journal endpoint, and the journal as JSON lines and hashes for an evidence bundle.

Times are integer microseconds and JSON columns one canonical text, so that a record's text (what its hash
covers) and its JSON line are one SQLite expression each over its row. Sealed records are packed into
blocks later (packing.py); readers go through merged.py, which reads blocks and rows together.
"""
from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from ..ledger.journal import Record
from . import blocks, chain, merged
from .chain import Seal, journal_hash, run_hash

COLUMNS = ("id", "target", "at", "outcome", "error_kind", "status", "error", "duration_s", "phases", "address",
           "headers", "body_sha256", "cert_sha256", "location", "masked", "artifacts")
SELECT = ("SELECT j.id, t.name, j.at_us, j.outcome, j.error_kind, j.status, j.error, j.duration_us, j.phases, "
          "j.address, j.headers, COALESCE(b.sha256, ''), j.cert_sha256, j.location, j.masked, j.artifacts "
          "FROM journal j JOIN targets t ON t.id = j.target_id LEFT JOIN blobs b ON b.id = j.body_id")
# the blobs a record names: its body, and its artifacts (json_each over [[name, sha256], ...])
ARTIFACT_SHAS = ("SELECT json_extract(a.value, '$[1]') FROM journal, json_each(journal.artifacts) AS a UNION ALL "
                 "SELECT json_extract(a.value, '$[1]') FROM journal_profiles p, json_each(p.artifacts) AS a")
ORPHAN_BLOBS = " ".join(("DELETE FROM blobs WHERE id NOT IN (SELECT body_id FROM journal WHERE body_id IS NOT NULL",
                         "UNION SELECT body_id FROM journal_profiles WHERE body_id IS NOT NULL)",
                         "AND sha256 NOT IN (", ARTIFACT_SHAS, ")"))
US = 1_000_000


def canonical(value: Any) -> str:
    """The one text a JSON column holds (what SQLite's json() gives back for it, too)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _blob(conn: sqlite3.Connection, data: bytes) -> int | None:
    """Bodies repeat (a health endpoint answers the same bytes all day): each is kept once."""
    if not data:
        return None
    digest = hashlib.sha256(data).hexdigest()
    conn.execute("INSERT OR IGNORE INTO blobs (sha256, data) VALUES (?, ?)", (digest, data))
    return conn.execute("SELECT id FROM blobs WHERE sha256=?", (digest,)).fetchone()[0]


def _artifacts(conn: sqlite3.Connection, record: Record) -> str:
    """The record's files as blobs; the column names them: [[name, sha256], ...]."""
    d = record.detail
    if d is None or not d.artifacts:
        return "[]"
    named = []
    for name, data in d.artifacts:
        _blob(conn, data)
        named.append([name, hashlib.sha256(data).hexdigest()])
    return canonical(named)


def _body(record: Record, redact: Callable[[str], str]) -> bytes:
    """Redacted, then cut to what is kept, at a character boundary (the journal's JSON is text)."""
    d = record.detail
    if d is None or not d.body:
        return b""
    return redact(d.body.decode("utf-8", errors="replace")).encode()[:d.body_bytes].decode(
        "utf-8", errors="ignore").encode()


def insert(conn: sqlite3.Connection, records: Iterable[Record], target_id: Callable[[str], int], location: str,
           redact: Callable[[str], str]) -> int:
    """Writes the records (error text, headers and body redacted), each with its own hash. Ids are never
    reused (AUTOINCREMENT), so a seal's run of ids names the same records for ever."""
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='journal'").fetchone()
    next_id = (seq[0] if seq else 0) + 1
    out = []
    for i, r in enumerate(records):
        d = r.detail
        body = _body(r, redact)
        fields = (r.target, round(r.at * US), r.outcome, r.error_kind, r.status, redact(r.error),
                  round(r.duration_s * US), canonical([round(p * US) for p in r.phases or ()]), d.address if d else "",
                  canonical([[k, redact(v)] for k, v in d.headers] if d else []))
        cert = d.cert_sha256 if d else ""
        files = _artifacts(conn, r)
        h = journal_hash((next_id + i, *fields, hashlib.sha256(body).hexdigest() if body else "", cert, location,
                          int(r.masked), files))
        out.append((next_id + i, target_id(r.target), *fields[1:], _blob(conn, body), cert, location, int(r.masked),
                    files, h))
    conn.executemany("INSERT INTO journal (id, target_id, at_us, outcome, error_kind, status, error, duration_us, "
                     "phases, address, headers, body_id, cert_sha256, location, masked, artifacts, hash) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", out)
    return len(out)


def as_dict(row: tuple, body: bytes | None = None) -> dict[str, Any]:
    """A row as the API and the report show it: seconds, lists, the body as text."""
    d = dict(zip(COLUMNS, row))
    d["at"] = d["at"] / US
    d["duration_s"] = d["duration_s"] / US
    d["phases"] = [p / US for p in json.loads(d["phases"])]
    d["headers"] = json.loads(d["headers"])
    d["masked"] = bool(d["masked"])
    d["artifacts"] = [{"name": name, "sha256": sha} for name, sha in json.loads(d["artifacts"])]
    if body is not None:
        d["body"] = body.decode("utf-8", errors="replace")
    return d


# Sets of targets and outcomes travel as JSON arrays (json_each): every statement here is a constant.
_MATCH = ("WHERE t.name IN (SELECT value FROM json_each(?)) AND j.at_us >= ? AND j.at_us < ? "
          "AND j.outcome IN (SELECT value FROM json_each(?))")
BY_ID = f"SELECT j.hash, {SELECT[len('SELECT '):]} WHERE j.id BETWEEN ? AND ? ORDER BY j.id"
ALL_OUTCOMES = ("up", "down", "inconclusive", "path")  # path: the route to a failing target (paths/)
# chain.journal_text in SQL, over a run of ids (a NULL status reads "None" there, as str(None) does)
_TEXT = ("'j|' || j.id || '|' || t.name || '|' || j.at_us || '|' || j.outcome || '|' || j.error_kind || '|' || "
         "COALESCE(j.status, 'None') || '|' || j.error || '|' || j.duration_us || '|' || j.phases || '|' || "
         "j.address || '|' || j.headers || '|' || COALESCE(b.sha256, '') || '|' || j.cert_sha256 || '|' || "
         "j.location || '|' || j.masked || '|' || CASE j.artifacts WHEN '[]' THEN '' ELSE j.artifacts || '|' END")
RUN_TEXT = " ".join(("SELECT group_concat(text, '') FROM (SELECT", _TEXT, "AS text FROM journal j JOIN targets t "
                     "ON t.id = j.target_id LEFT JOIN blobs b ON b.id = j.body_id WHERE j.id BETWEEN ? AND ? "
                     "ORDER BY j.id)"))
_LINE = ("json_object('id', j.id, 'time', strftime('%Y-%m-%dT%H:%M:%fZ', j.at_us / 1e6, 'unixepoch'), "
         "'target', t.name, 'at_us', j.at_us, 'outcome', j.outcome, 'error_kind', j.error_kind, 'status', j.status, "
         "'error', j.error, 'duration_us', j.duration_us, 'phases_us', json(j.phases), 'address', j.address, "
         "'headers', json(j.headers), 'body', CAST(b.data AS TEXT), 'body_sha256', b.sha256, "
         "'cert_sha256', j.cert_sha256, 'location', j.location, 'masked', j.masked, "
         "'artifacts', json(j.artifacts), 'hash', j.hash)")
# a bundle's records: the journal of [start, until) and the records of the runs sealed about it (an id range)
_SPAN = ("FROM journal j JOIN targets t ON t.id = j.target_id LEFT JOIN blobs b ON b.id = j.body_id "
         "WHERE (j.at_us >= ? AND j.at_us < ?) OR j.id BETWEEN ? AND ? ORDER BY j.id")
# the rows' part of what merged.py reads from blocks and rows together
ALL_OF = f"{SELECT} {_MATCH}"
HASHES_OF = ("SELECT j.id, j.hash FROM journal j WHERE j.at_us >= ?2 AND j.at_us < ?3 AND j.target_id IN "
             "(SELECT id FROM targets WHERE name IN (SELECT value FROM json_each(?1))) "
             "AND j.outcome IN (SELECT value FROM json_each(?4)) ORDER BY j.id")
ON_MINUTES = ("SELECT t.name, j.at_us, j.outcome FROM journal j JOIN targets t ON t.id = j.target_id "
              "WHERE j.at_us >= ? AND j.at_us < ?")


def match(targets: list[str], start: float, end: float, outcomes: tuple[str, ...] = ALL_OUTCOMES) -> tuple:
    """The parameters of _MATCH."""
    return json.dumps(targets), round(start * US), round(end * US), json.dumps(list(outcomes))


ARTIFACT = ("SELECT json_extract(a.value, '$[0]'), b.data FROM {} j, json_each(j.artifacts) AS a "
            "JOIN blobs b ON b.sha256 = json_extract(a.value, '$[1]') WHERE j.artifacts != '[]' "
            "AND json_extract(a.value, '$[1]') = ? LIMIT 1")


def artifact(conn: sqlite3.Connection, sha256: str) -> tuple[str, bytes] | None:
    """A file kept with a journal record, by its hash: (name, content)."""
    for table in ("journal", "journal_profiles") if blocks.present(conn) else ("journal",):
        row = conn.execute(ARTIFACT.format(table), (sha256,)).fetchone()
        if row:
            return row[0], row[1]
    return None


def bodies(conn: sqlite3.Connection, digests: Iterable[str]) -> dict[str, bytes]:
    wanted = sorted({d for d in digests if d})
    return dict(conn.execute("SELECT sha256, data FROM blobs WHERE sha256 IN (SELECT value FROM json_each(?))",
                             (json.dumps(wanted),)).fetchall())


def hash_stream(conn: sqlite3.Connection, targets: list[str], start: float, until: float,
                outcomes: tuple[str, ...] = ALL_OUTCOMES) -> Iterator[tuple[str, bytes, int]]:
    """The journal records a report of [start, until) reads, for its evidence hash: their ids and hashes
    as one text (a month of records is over a million), and how many they are."""
    args = (json.dumps(targets), round(start * US), round(until * US), json.dumps(list(outcomes)))
    n, text = merged.id_hashes(conn, targets, args[1], args[2], outcomes, HASHES_OF, args)
    if n:
        yield "j|", text.encode(), n


def write_lines(conn: sqlite3.Connection, start: float, until: float, ids: tuple[int, int], dest: Path) -> int:
    """The journal of [start, until) (and the records with ids in `ids`) as JSON lines, in id order."""
    n = 0
    with open(dest, "wb") as out:
        for ch in merged.span_chunks(conn, CHECKED, (round(start * US), round(until * US), *ids), True):
            if ch.lines:
                out.write(b"\n".join(ch.lines) + b"\n")
                n += len(ch.lines)
    return n


# each record's text (chain.journal_text) beside the hash written with it, over what write_lines() writes
HASHED = f"SELECT j.id, t.name, j.at_us, j.hash, {_TEXT} {_SPAN}"
CHECKED = f"SELECT j.id, t.name, j.at_us, j.hash, {_TEXT}, {_LINE} {_SPAN}"


class Checked(NamedTuple):
    """What checked_lines() found."""
    digest: str  # of the JSON lines
    found: list[tuple[int, str, float]]  # the first records unmatched() finds, (id, target, at)
    edited: int  # how many it finds
    runs: dict[tuple[int, int], str]  # run_hash(run_texts(a, b)) of each run (a, b) asked for within the ids read


def checked_lines(conn: sqlite3.Connection, start: float, until: float, ids: tuple[int, int], dest: Path | None,
                  shown: int = 10, runs: Iterable[tuple[int, int]] = (), lines: bool = True) -> Checked:
    """write_lines() and unmatched() in one pass over the records (a bundle needs both, and a month is over a
    million records): the sha256 of the lines (written to `dest` when given), the first `shown` records
    unmatched() finds and how many; and, from the same texts, the hash of each sealed run (a, b) in `runs`
    wholly among `ids`, for the chain's walk (verify.py) not to make them again. Without `lines`, no line is
    made (the digest is of none)."""
    h, found, n, sha256 = hashlib.sha256(), [], 0, hashlib.sha256
    state = _Runs(_disjoint(r for r in runs if ids[0] <= r[0] <= r[1] <= ids[1]))
    span = (round(start * US), round(until * US), *ids)
    with open(dest, "wb") if dest is not None else contextlib.nullcontext() as out:
        for ch in merged.span_chunks(conn, CHECKED if lines else HASHED, span, lines):
            state.add(ch.ids, ch.texts)
            digests = [None if t is None else sha256(t).hexdigest() for t in ch.texts]
            if digests != ch.stored:  # one comparison when none was edited
                for rid, name, at_us, d, stored in zip(ch.ids, ch.names, ch.at, digests, ch.stored):
                    if d is None or d != stored:
                        n += 1
                        if len(found) < shown:
                            found.append((rid, name, at_us / US))
            if ch.lines:
                data = b"\n".join(ch.lines) + b"\n"
                h.update(data)
                if out is not None:
                    out.write(data)
    return Checked(h.hexdigest(), found, n, state.done())


class _Runs:
    """The hashes of sealed runs (disjoint, in id order) over records given a chunk at a time in id order."""

    def __init__(self, todo: list[tuple[int, int]]) -> None:
        self.todo, self.k, self.run = todo, 0, hashlib.sha256()
        self.hashed: dict[tuple[int, int], str] = {}

    def add(self, ids: list[int], texts: list[bytes | None]) -> None:
        pos = 0
        while self.k < len(self.todo):
            a, b = self.todo[self.k]
            i = bisect.bisect_left(ids, a, pos)
            j = bisect.bisect_right(ids, b, i)
            self.run.update(b"".join([t for t in texts[i:j] if t is not None]))  # a NULL: the text SQL skips
            if j == len(ids):
                return  # the run may go on in the next chunk
            self._close()
            pos = j

    def _close(self) -> None:
        self.hashed[self.todo[self.k]], self.k, self.run = self.run.hexdigest(), self.k + 1, hashlib.sha256()

    def done(self) -> dict[tuple[int, int], str]:
        while self.k < len(self.todo):
            self._close()
        return self.hashed


def _disjoint(runs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The runs in id order; a run overlapping another (none the agent seals) is left to run_texts."""
    todo: list[tuple[int, int]] = []
    for r in sorted(runs):
        if not todo or r[0] > todo[-1][1]:
            todo.append(r)
    return todo


def run_hashes(conn: sqlite3.Connection, runs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """run_hash(run_texts(a, b)) of each run (a, b), in one pass over the records."""
    state = _Runs(_disjoint(runs))
    if state.todo:
        for ch in merged.span_chunks(conn, HASHED, (0, 0, state.todo[0][0], state.todo[-1][1]), False):
            state.add(ch.ids, ch.texts)
    return state.done()


def unmatched(conn: sqlite3.Connection, start: float, until: float,
              ids: tuple[int, int]) -> Iterator[tuple[int, str, float]]:
    """The records of [start, until) (and with ids in `ids`) whose content is not what the hash written with
    them was computed over, (id, target, at): edited after they were written. A seal covers a run as it is
    when sealed, so an edit made before it is sealed too; the record's own hash still tells."""
    for ch in merged.span_chunks(conn, HASHED, (round(start * US), round(until * US), *ids), False):
        for rid, name, at_us, stored, text in zip(ch.ids, ch.names, ch.at, ch.stored, ch.texts):
            if text is None or hashlib.sha256(text).hexdigest() != stored:  # a NULL makes the text NULL
                yield rid, name, at_us / US


def seal_run(conn: sqlite3.Connection, now: float, now_all: bool = False) -> tuple[Seal, int, int] | None:
    """The unsealed journal records as one run, when the oldest has waited chain.JOURNAL_SEAL_EVERY (or they
    are many, or `now_all`: a clean stop): (seal, first id, last id). A record never changes once written,
    so a run sealed early is final."""
    first = conn.execute("SELECT MIN(id), MIN(at_us), COUNT(*) FROM journal WHERE link IS NULL").fetchone()
    if first[0] is None or (first[1] / 1e6 > now - chain.JOURNAL_SEAL_EVERY and first[2] < chain.MAX_SEALS_PER_LINK
                            and not now_all):
        return None
    a, b = first[0], conn.execute("SELECT MAX(id) FROM journal WHERE link IS NULL").fetchone()[0]
    return Seal(f"j:{a}:{b}", first[1] / 1e6, run_hash(conn.execute(RUN_TEXT, (a, b)).fetchone()[0] or "")), a, b


def run_texts(conn: sqlite3.Connection, a: int, b: int) -> str:
    """The texts of the records a to b, one after the other (chain.journal_text of each), packed or not."""
    chunks = merged.span_chunks(conn, HASHED, (0, 0, a, b), False)
    return b"".join(t for ch in chunks for t in ch.texts if t is not None).decode()  # a NULL: the text SQL skips
