"""Sealed journal records packed into blocks: one row of `journal_blocks` holds a run of consecutive ids.

A record says little the one before did not: what repeats (target, outcome, error, address, body,
certificate, location...) is kept once in `journal_profiles`, and a block keeps per record only its id,
start, duration, profile and link (delta-coded integers), its phases and headers (their texts as stored)
in one zlib stream, and its stored hash as 32 raw bytes beside it. A record comes back as the very row it
was: its texts for the hash chain (chain.journal_text) and its JSON line are made from the profile's
templates, whose strings SQLite quoted itself; packing.py checks both against SQLite's own before it
lets a row go.
"""
from __future__ import annotations

import sqlite3
import struct
import zlib
from functools import cached_property
from typing import Any, NamedTuple, Sequence

import numpy as np

OUTCOME_INDEX = {"up": 0, "down": 1, "inconclusive": 2}
_HEAD = struct.Struct("<Iqqq9I")  # records, first id, first start, first link, the lengths of the 9 columns
# what a profile holds, in the order of its key (and of its table's columns after the id)
PROFILE_FIELDS = ("target_id", "outcome", "error_kind", "status", "error", "address", "body_id", "cert_sha256",
                  "location", "masked", "artifacts")
# a profile's constants, quoted for a JSON line by SQLite itself (json_object would write them so)
_PROFILES = ("SELECT p.id, p.target_id, t.name, p.outcome, p.error_kind, p.status, p.error, p.address, p.body_id, "
             "COALESCE(b.sha256, ''), p.cert_sha256, p.location, p.masked, p.artifacts, json_quote(t.name), "
             "json_quote(p.outcome), json_quote(p.error_kind), json_quote(p.status), json_quote(p.error), "
             "json_quote(p.address), json_quote(CAST(b.data AS TEXT)), json_quote(b.sha256), "
             "json_quote(p.cert_sha256), json_quote(p.location), json_quote(p.masked), json(p.artifacts) "
             "FROM journal_profiles p JOIN targets t ON t.id = p.target_id LEFT JOIN blobs b ON b.id = p.body_id")


def present(conn: sqlite3.Connection) -> bool:
    """Whether the ledger has blocks at all (an extract of schema 8 or before has not)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'journal_blocks'").fetchone() is not None


def _shuffled(a: np.ndarray) -> bytes:
    """The bytes of each significance together: small deltas leave long runs of zeros for zlib."""
    return a.astype("<i8").view(np.uint8).reshape(-1, 8).T.tobytes()


def _unshuffled(data: bytes, n: int) -> np.ndarray:
    planes = np.frombuffer(data, np.uint8).reshape(8, n)
    out = planes[0].astype(np.uint64)
    for k in range(1, 8):
        if planes[k].any():  # the high bytes of small values are all zero
            out |= planes[k].astype(np.uint64) << np.uint64(8 * k)
    return out.view("<i8")


def _delta(a: np.ndarray) -> np.ndarray:
    """Differences from the value before; the first is 0 (the header holds the first value)."""
    return np.diff(a, prepend=a[:1])


class Packed(NamedTuple):
    """One record as a block keeps it."""
    id: int
    at_us: int
    duration_us: int
    profile: int
    link: int
    phases: bytes
    headers: bytes
    hash: str  # 64 lowercase hex digits


def encode(records: Sequence[Packed]) -> tuple[bytes, bytes]:
    """(the zlib stream of the columns, the raw hashes)."""
    cols = [np.array([getattr(r, f) for r in records], np.int64) for f in ("id", "at_us", "duration_us", "profile",
                                                                           "link")]
    parts = [_shuffled(_delta(cols[0])), _shuffled(_delta(cols[1])), _shuffled(cols[2]), _shuffled(cols[3]),
             _shuffled(_delta(cols[4]))]
    for texts in ([r.phases for r in records], [r.headers for r in records]):
        parts += [_shuffled(np.array([len(t) for t in texts], np.int64)), b"".join(texts)]
    head = _HEAD.pack(len(records), int(cols[0][0]), int(cols[1][0]), int(cols[4][0]), *map(len, parts))
    return zlib.compress(head + b"".join(parts), 9), bytes.fromhex("".join(r.hash for r in records))


class Block:
    """A block's records, decoded: ids, starts and profiles as arrays (what selects records), every column as
    a list when first asked for (most readers need few of them)."""

    def __init__(self, data: bytes, hashes: bytes) -> None:
        raw = zlib.decompress(data)
        n, id0, at0, self._link0, *lens = _HEAD.unpack_from(raw)
        cols, off = [], _HEAD.size
        for length in lens:
            cols.append(raw[off:off + length])
            off += length
        self.n, self._cols, self._hashes = n, cols, hashes
        self.id_array = np.cumsum(_unshuffled(cols[0], n)) + id0
        self.at_array = np.cumsum(_unshuffled(cols[1], n)) + at0
        self.profile_array = _unshuffled(cols[3], n)

    @cached_property
    def ids(self) -> list[int]:
        return self.id_array.tolist()

    @cached_property
    def at(self) -> list[int]:
        return self.at_array.tolist()

    @cached_property
    def profile(self) -> list[int]:
        return self.profile_array.tolist()

    @cached_property
    def duration(self) -> list[int]:
        return _unshuffled(self._cols[2], self.n).tolist()

    @cached_property
    def link(self) -> list[int]:
        return (np.cumsum(_unshuffled(self._cols[4], self.n)) + self._link0).tolist()

    @cached_property
    def phases(self) -> list[bytes]:
        return _split(self._cols[6], _unshuffled(self._cols[5], self.n))

    @cached_property
    def headers(self) -> list[bytes]:
        return _split(self._cols[8], _unshuffled(self._cols[7], self.n))

    @cached_property
    def _ends(self) -> tuple[np.ndarray, np.ndarray]:
        return np.cumsum(_unshuffled(self._cols[5], self.n)), np.cumsum(_unshuffled(self._cols[7], self.n))

    def texts_of(self, k: int) -> tuple[bytes, bytes]:
        """Record k's phases and headers alone (a whole column is split for one record otherwise)."""
        (p, h), (pb, hb) = self._ends, (self._cols[6], self._cols[8])
        return (pb[(int(p[k - 1]) if k else 0):int(p[k])], hb[(int(h[k - 1]) if k else 0):int(h[k])])

    @cached_property
    def hashes(self) -> list[str]:
        hx = self._hashes.hex()
        return [hx[k:k + 64] for k in range(0, len(hx), 64)]


def _split(buf: bytes, lengths: np.ndarray) -> list[bytes]:
    ends = np.cumsum(lengths).tolist()
    return [buf[a:b] for a, b in zip([0] + ends[:-1], ends)]


def sqlite_times(at_us: Sequence[int]) -> list[bytes]:
    """strftime('%Y-%m-%dT%H:%M:%fZ', at_us / 1e6, 'unixepoch') as SQLite computes it: through the Julian day
    in integer milliseconds, rounded half up."""
    r = np.asarray(at_us, np.int64).astype(np.float64) / 1e6 * 1000.0 + 210866760000000.0
    ms = (r + 0.5).astype(np.int64) - 210866760000000
    return np.char.add(np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms").astype("S23"), b"Z").tolist()


def _pct(text: Any) -> str:
    return str(text).replace("%", "%%")


class Profiles:
    """The profiles of a ledger with the templates of their texts and lines (bytes, %-formatted)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.rows: dict[int, tuple] = {}
        self.text: dict[int, bytes] = {}
        self.line: dict[int, bytes] = {}
        self.outcome: dict[int, int] = {}
        for r in conn.execute(_PROFILES):
            pid, tid, name, outcome, kind, status, error, address, body_id, body_sha, cert, loc, masked, arts = r[:14]
            self.rows[pid] = (name, outcome, kind, status, error, address, body_sha, cert, loc, masked, arts, tid,
                              body_id)
            self.outcome[pid] = OUTCOME_INDEX.get(outcome, 3)
            self.text[pid] = "|".join(["j", "%d", _pct(name), "%d", _pct(outcome), _pct(kind), _pct(status), _pct(error),
                                       "%d", "%s", _pct(address), "%s", _pct(body_sha), _pct(cert), _pct(loc),
                                       _pct(masked), "" if arts == "[]" else _pct(arts) + "|"]).encode()
            q = [_pct(v) for v in r[14:]]
            self.line[pid] = ('{"id":%d,"time":"%s","target":' + q[0] + ',"at_us":%d,"outcome":' + q[1]
                              + ',"error_kind":' + q[2] + ',"status":' + q[3] + ',"error":' + q[4]
                              + ',"duration_us":%d,"phases_us":%s,"address":' + q[5] + ',"headers":%s,"body":' + q[6]
                              + ',"body_sha256":' + q[7] + ',"cert_sha256":' + q[8] + ',"location":' + q[9]
                              + ',"masked":' + q[10] + ',"artifacts":' + q[11] + ',"hash":"%s"}').encode()

    @cached_property
    def kind_of(self) -> np.ndarray:
        """Per profile id, its outcome's index (OUTCOME_INDEX; 3 for any other)."""
        kinds = np.full(max(self.rows, default=0) + 1, 3, np.int64)
        for pid, k in self.outcome.items():
            kinds[pid] = k
        return kinds

    def wanted(self, names: set[str] | None, outcomes: set[str]) -> np.ndarray:
        """Per profile id: is it of one of these targets (any, when None) and outcomes?"""
        ok = np.zeros(max(self.rows, default=0) + 1, bool)
        for pid, r in self.rows.items():
            ok[pid] = (names is None or r[0] in names) and r[1] in outcomes
        return ok

    def texts(self, b: Block, keep: Sequence[int] | None = None) -> list[bytes]:
        """chain.journal_text of the block's records (of those at the indexes `keep`)."""
        t = self.text
        if keep is None:
            return [t[p] % (i, a, d, ph, hd) for p, i, a, d, ph, hd in zip(b.profile, b.ids, b.at, b.duration,
                                                                           b.phases, b.headers)]
        return [t[b.profile[k]] % (b.ids[k], b.at[k], b.duration[k], b.phases[k], b.headers[k]) for k in keep]

    def lines(self, b: Block, keep: Sequence[int] | None = None) -> list[bytes]:
        """The records' JSON lines (store/journal.py: LINES), without their newline."""
        keep = range(b.n) if keep is None else keep
        times = sqlite_times([b.at[k] for k in keep])
        ln = self.line
        return [ln[b.profile[k]] % (b.ids[k], tm, b.at[k], b.duration[k], b.phases[k], b.headers[k], b.hashes[k].encode())
                for k, tm in zip(keep, times)]

    def row(self, b: Block, k: int) -> tuple:
        """The record as store/journal.py's SELECT gives it."""
        name, outcome, kind, status, error, address, body_sha, cert, loc, masked, arts = self.rows[b.profile[k]][:11]
        phases, headers = b.texts_of(k)
        return (b.ids[k], name, b.at[k], outcome, kind, status, error, b.duration[k], phases.decode(), address,
                headers.decode(), body_sha, cert, loc, masked, arts)

    def table_row(self, b: Block, k: int) -> tuple:
        """The record as a row of the `journal` table, its columns in their order."""
        _, outcome, kind, status, error, address, _, cert, loc, masked, arts, tid, body_id = self.rows[b.profile[k]]
        return (b.ids[k], tid, b.at[k], outcome, kind, status, error, b.duration[k], b.phases[k].decode(), address,
                b.headers[k].decode(), body_id, cert, loc, masked, b.hashes[k], b.link[k], arts)

