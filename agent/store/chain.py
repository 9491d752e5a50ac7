"""Tamper evidence: a hash chain over the stored rows.

A row is sealed once it is final: an hour of minute counts, or an hour's latency digest, SEAL_DELAY after
the hour ends (no late sample can change it then), a day's digest the same after the day, a declared
window when written, the journal's records in runs (each record keeps its own hash; a seal covers a run of
record ids, at most every JOURNAL_SEAL_EVERY seconds, so that links stay few), and the tickets as one:
each ticket keeps its own hash, and an import or removal that changes any seals them all again under the
one key TICKETS (a feed whose every ticket changes at each fetch adds one seal a fetch, not one per
ticket; tickets sealed one by one before, as `t:<id>`, are covered by the next such seal). Sealing
records the hashes in `seals` under the sequence number of a new link; the link hashes those seals and
the previous link.

A clean stop seals everything else it wrote: the rows not final yet are sealed PROVISIONAL. Such a row
may still change, but only by the agent and only before it is final (a restart within the hour: results
land in it again), and the chain says so: the write that changes it adds a REOPENED seal first, and the
row is sealed again later. Once final, a provisionally sealed row is sealed final at the next flush. A
row sealed final is never written again (the store refuses; the agent's clock never goes back to file a
result there) and is never reopened; verification names any seal of it with other content, and any
reopening. An hour digest merged into its day's digest is sealed as DELETED, as a sealed window that
goes away is.

verify() recomputes every link from its seals and its predecessor, and every row from its latest seal,
and names the first places that do not match.
"""
from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from typing import Iterable

SEAL_DELAY = 900.0
JOURNAL_SEAL_EVERY = 600.0
DELETED = "deleted"
PROVISIONAL = "provisional:"  # a seal's value before its hash: sealed at a stop, before the row was final
REOPENED = "reopened"  # the agent writes again a row it sealed provisionally (before the row is final)
MAX_SEALS_PER_LINK = 5000  # a flush seals at most this many rows of the backlog (an upgraded ledger)
HOUR, DAY = 3600, 86400


def row_hash(*parts: object) -> str:
    return hashlib.sha256(b"|".join(p if isinstance(p, bytes) else str(p).encode() for p in parts) + b"|").hexdigest()


def minute_hash(target: str, hour: int, counts: bytes, errors: str) -> str:
    return row_hash("m", target, hour, counts, errors)


def digest_hash(target: str, start: int, span: int, data: bytes) -> str:
    return row_hash("d", target, start, span, data)


def journal_text(row: tuple) -> str:
    """A journal row as stored, (id, target, at_us, outcome, error_kind, status, error, duration_us, phases,
    address, headers, body sha256, cert_sha256, location, masked, artifacts), as the text its hash is over;
    a record without artifacts ('[]') hashes as before they existed. The store writes the same text in
    SQL (store/journal.py: TEXT) to hash a whole run at once."""
    if row[-1] == "[]":
        row = row[:-1]
    return "j|" + "|".join(map(str, row)) + "|"


def journal_hash(row: tuple) -> str:
    return hashlib.sha256(journal_text(row).encode()).hexdigest()


def run_hash(texts: str) -> str:
    """A run of journal records: the hash of their texts, in id order, one after the other."""
    return hashlib.sha256(texts.encode()).hexdigest()


def ticket_hash(row: tuple) -> str:
    return row_hash("t", *(repr(v) if isinstance(v, float) else v for v in row))


TICKETS = "tickets"  # the key of the seal over every stored ticket (no `t:<id>` key can be it)
TICKET_ROW = "SELECT id, priority, opened_at, responded_at, workaround_at, resolved_at, closed_at FROM tickets"


def tickets_digest(hashes: list[str | None]) -> str:
    """The seal's value over the tickets' own hashes in id order: their number, then the hash of them all."""
    return f"{len(hashes)}:{hashlib.sha256(''.join(map(str, hashes)).encode()).hexdigest()}"


def tickets_seal(conn: sqlite3.Connection) -> Seal:
    """Inside the caller's transaction: every stored ticket under one seal. A ticket without its own hash
    (just written) gets it from its row as stored, what verification will read back."""
    rows = conn.execute(TICKET_ROW + " WHERE hash IS NULL").fetchall()
    conn.executemany("UPDATE tickets SET hash=? WHERE id=?", [(ticket_hash(r), r[0]) for r in rows])
    return Seal(TICKETS, None, tickets_digest([h for (h,) in conn.execute("SELECT hash FROM tickets ORDER BY id")]))


def window_hash(row: tuple) -> str:
    return row_hash("w", *(repr(v) if isinstance(v, float) else v for v in row))


@dataclass(frozen=True)
class Seal:
    key: str  # m:<target>:<hour>  d:<target>:<start>:<span>  j:<first id>:<last id>  tickets  w:<window>
    t: float | None  # the time the row is about (retention and the scope of a check); None: always in scope
    hash: str


def link_hash(seq: int, at: float, prev: str, manifest: str, rows: int) -> str:
    return row_hash("link", seq, repr(at), prev, manifest, rows)


def manifest_hash(seals: Iterable[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for key, value in sorted(seals):
        h.update(f"{key} {value}\n".encode())
    return h.hexdigest()


def append_link(conn: sqlite3.Connection, seals: list[Seal], at: float) -> int | None:
    """Inside the caller's transaction: one link over these seals. Returns its sequence number."""
    if not seals:
        return None
    at = float(at)  # stored as a REAL: the hash must see what verification will read back
    last = conn.execute("SELECT seq, link FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (last[0] + 1, last[1]) if last else (1, "")
    manifest = manifest_hash((s.key, s.hash) for s in seals)
    conn.executemany("INSERT INTO seals (seq, key, t, hash) VALUES (?, ?, ?, ?)",
                     [(seq, s.key, s.t, s.hash) for s in seals])
    conn.execute("INSERT INTO chain (seq, at, prev, manifest, rows, link) VALUES (?, ?, ?, ?, ?, ?)",
                 (seq, at, prev, manifest, len(seals), link_hash(seq, at, prev, manifest, len(seals))))
    return seq


def final_hour(now: float, delay: float = SEAL_DELAY) -> int:
    """The first epoch hour whose minute counts are not final at `now`, `delay` after the hours end: those
    before are sealed at a flush (and a result for them is refused, never written over the seal)."""
    return int((now - delay) // HOUR)


def is_final(start: float, span: float, now: float, delay: float = SEAL_DELAY) -> bool:
    """Is the row about [start, start + span) final at `now` (no result can land in it any more)?"""
    return start + span + delay <= now


def sealed_hash(value: str) -> str:
    """A seal's value as the row's hash (a provisional seal carries the hash after its prefix)."""
    return value[len(PROVISIONAL):] if value.startswith(PROVISIONAL) else value


# -- verification -----------------------------------------------------------------------------------------
def _when(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")


def check_links(conn: sqlite3.Connection, problems: list[str]) -> int:
    """Each link follows the one before and hashes its own seals. Returns the number of links."""
    seals: dict[int, list[tuple[str, str]]] = {}
    for seq, key, value in conn.execute("SELECT seq, key, hash FROM seals"):
        seals.setdefault(seq, []).append((key, value))
    prev_seq, prev_link, n = None, None, 0
    for seq, at, prev, manifest, rows, link in conn.execute(
            "SELECT seq, at, prev, manifest, rows, link FROM chain ORDER BY seq"):
        n += 1
        if prev_seq is not None and seq != prev_seq + 1:
            problems.append(f"links {prev_seq + 1} to {seq - 1}: missing from the chain")
        if prev_link is not None and prev != prev_link:
            problems.append(f"link {seq} ({_when(at)}): does not follow link {prev_seq} (its previous-link hash "
                            f"differs)")
        mine = seals.get(seq, [])
        if len(mine) != rows or manifest_hash(mine) != manifest:
            problems.append(f"link {seq} ({_when(at)}): its seals ({len(mine)}) do not match the {rows} it recorded")
        if link_hash(seq, at, prev, manifest, rows) != link:
            problems.append(f"link {seq} ({_when(at)}): its hash does not match its content")
        prev_seq, prev_link = seq, link
    return n


def latest_seals(conn: sqlite3.Connection, since: float | None, until: float | None) -> dict[str, tuple[int, str]]:
    """key -> (seq, hash) of the last seal of every key about [since, until) (or always in scope)."""
    out = {}
    for key, seq, value, t in conn.execute("SELECT key, MAX(seq), hash, t FROM seals GROUP BY key"):
        if t is None or ((since is None or t >= since) and (until is None or t < until)):
            out[key] = (seq, value)
    return out
