"""`sla-agent evidence verify`: the chain's links, then every sealed row against its last seal."""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math
import sqlite3
from dataclasses import dataclass
from typing import Callable

from . import chain, journal, merged


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")


def _hour_span(keys: set[str], field: int) -> tuple[int, int]:
    values = [int(k.split(":")[field]) for k in keys] or [0]
    return min(values), max(values) + 1


AGAIN = "written again after it was sealed (a sealed row never changes)"


def _what(key: str) -> str:
    """What a seal's key names: m:<target>:<hour> or d:<target>:<start>:<span>."""
    parts = key.split(":")
    if parts[0] == "m":
        return f"minute counts of {parts[1]}, hour from {_when(int(parts[2]) * 3600)}"
    return f"latency digest of {parts[1]}, {int(parts[3]) // 3600} h from {_when(int(parts[2]))}"


# per kind of sealed row: the stored rows of a span of hours (or starts), how to hash one, what differs
_ROWS = {
    "m": ("SELECT t.name, m.hour, CAST(m.counts AS BLOB), CAST(m.errors AS TEXT), m.link FROM minutes m "
          "JOIN targets t ON t.id = m.target_id WHERE m.hour >= ? AND m.hour < ?",
          lambda name, hour, counts, errors: (f"m:{name}:{hour}", chain.minute_hash(name, hour, counts, errors)),
          "the stored counts differ"),
    "d": ("SELECT t.name, d.start, d.span, CAST(d.data AS BLOB), d.link FROM digests d JOIN targets t "
          "ON t.id = d.target_id WHERE d.start >= ? AND d.start < ?",
          lambda name, start, span, data: (f"d:{name}:{start}:{span}", chain.digest_hash(name, start, span, data)),
          "the stored digest differs"),
}


def _rows(conn: sqlite3.Connection, kind: str, sealed: dict[str, tuple[int, str]], problems: list[str]) -> int:
    """Minute counts (kind m) or digests (d) against their latest seal. A row reopened (REOPENED: the agent
    writes it again before it is final) is not sealed until its next seal; one removed (DELETED: an hour
    digest merged into its day's) must be gone. Returns the number of rows checked against a hash."""
    query, hashed, differs = _ROWS[kind]
    keys = {k for k in sealed if k.startswith(kind + ":")}
    stored: dict[str, str | None] = {}
    for *row, link in conn.execute(query, _hour_span(keys, 2)):
        key, value = hashed(*row)
        stored[key] = None if link is None else value
    n = 0
    for key in sorted(keys, key=lambda k: (int(k.split(":")[2]), k)):
        seq, want = sealed[key]
        if want == chain.DELETED:
            if key in stored:
                problems.append(f"{_what(key)} (removed in link {seq}): present again")
        elif key not in stored:
            problems.append(f"{_what(key)} (sealed in link {seq}): missing")
        elif want == chain.REOPENED:
            continue  # written again before it was final: outside the chain until sealed again (outside())
        elif stored[key] is None:
            problems.append(f"{_what(key)} (sealed in link {seq}): {AGAIN}")
        elif stored[key] != chain.sealed_hash(want):
            problems.append(f"{_what(key)} (sealed in link {seq}): {differs} from what was sealed")
        n += want != chain.DELETED
    return n


def _end(key: str) -> int:
    """When the row a seal's key names ends: m:<target>:<hour> or d:<target>:<start>:<span>."""
    parts = key.split(":")
    return (int(parts[2]) + 1) * 3600 if parts[0] == "m" else int(parts[2]) + int(parts[3])


def _history(conn: sqlite3.Connection, since: float | None, until: float | None, problems: list[str],
             delay: float | None) -> None:
    """Rows of minute counts and digests sealed more than once: a row sealed final never changes again
    and is never reopened; a row sealed provisionally (at a stop, before it was final) changes only after
    a REOPENED seal, made before the row was final (`delay` after its end; None: not judged); nothing is
    sealed after a DELETED one."""
    rows = conn.execute(
        "SELECT s.key, s.seq, s.hash, c.at FROM seals s LEFT JOIN chain c ON c.seq = s.seq WHERE s.key IN ("
        "SELECT key FROM seals WHERE (key LIKE 'm:%' OR key LIKE 'd:%') AND t >= ? AND t < ? GROUP BY key "
        "HAVING COUNT(*) > 1) ORDER BY s.key, s.seq",
        (-1e18 if since is None else since, 1e18 if until is None else until)).fetchall()
    for key, seals in itertools.groupby(rows, key=lambda r: r[0]):
        final = math.inf if delay is None else _end(key) + delay
        why = _sealed_twice([(seq, value, at) for _, seq, value, at in seals], final)
        if why:
            problems.append(f"{_what(key)} {why}")


def _sealed_twice(seals: list[tuple[int, str, float | None]], final_at: float) -> str:
    """What is wrong with one row's seals, in order ("": nothing); the row is final from `final_at`."""
    final = last = None  # (seq, hash) of the first final seal, and of the last seal
    reopened = removed = None
    for seq, value, at in seals:
        if removed is not None:
            return f"(removed in link {removed}): sealed again in link {seq}"
        if value == chain.DELETED:
            removed = seq
        elif value == chain.REOPENED:
            if final is not None:
                return f"(sealed final in link {final[0]}): reopened in link {seq} (a final row never changes)"
            if at is not None and at >= final_at:
                return (f"(sealed at a stop in link {last[0] if last else '?'}): reopened in link {seq}, "
                        f"{_when(at)}, after it was final at {_when(final_at)} (a final row never changes)")
            reopened = seq
        elif final is not None and value != final[1]:
            return f"(sealed in link {final[0]}): {AGAIN}, and sealed again in link {seq}"
        elif last is not None and reopened is None and chain.sealed_hash(value) != last[1]:
            return (f"(sealed at a stop in link {last[0]}): sealed again in link {seq} with other content, "
                    f"though never reopened")
        else:
            last, reopened = (seq, chain.sealed_hash(value)), None
            if final is None and not value.startswith(chain.PROVISIONAL):
                final = last
    return ""


def journal_runs(conn: sqlite3.Connection, since: float | None, until: float | None) -> list[tuple[int, int]]:
    """The runs of journal records verify_store() checks about [since, until): (first id, last id), those whose
    seal is well formed."""
    keys = (k.split(":") for k in chain.latest_seals(conn, since, until) if k.startswith("j:"))
    return sorted((int(p[1]), int(p[2])) for p in keys if len(p) == 3 and p[1].isdigit() and p[2].isdigit())


def _journal(conn: sqlite3.Connection, sealed: dict[str, tuple[int, str]], problems: list[str],
             hashed: Callable[[], dict[tuple[int, int], str]] | None = None) -> int:
    """The sealed runs of records hashed in one pass over the journal (or already, by `hashed`:
    journal.checked_lines); only a run that differs is read record by record, to name what changed."""
    n = 0
    keys = sorted((k for k in sealed if k.startswith("j:")), key=lambda k: int(k.split(":")[1]))
    runs = [(int(k.split(":")[1]), int(k.split(":")[2])) for k in keys]
    done = hashed() if hashed is not None else journal.run_hashes(conn, runs)
    for key, (a, b) in zip(keys, runs):
        seq, want = sealed[key]
        if (done.get((a, b)) or chain.run_hash(journal.run_texts(conn, a, b))) == want:
            n += b - a + 1  # the texts of a to b, each naming its id: every record is there
            continue
        before = len(problems)
        n += _name_records(conn, a, b, seq, problems)
        if len(problems) == before:
            problems.append(f"journal records {a} to {b} (sealed in link {seq}): a record's hash was rewritten")
    bad = [d for d, data in conn.execute("SELECT sha256, data FROM blobs") if hashlib.sha256(data).hexdigest() != d]
    for digest in bad[:5]:  # bodies and artifacts are kept once each, by their hash
        problems.append(f"the body or file {digest[:16]}... kept by journal records differs from what was written")
    return n


def _name_records(conn: sqlite3.Connection, a: int, b: int, seq: int, problems: list[str]) -> int:
    rows = merged.rows_by_id(conn, a, b, journal.BY_ID)
    ids = {r[1] for r in rows}
    for missing in [i for i in range(a, b + 1) if i not in ids][:5]:
        problems.append(f"journal record {missing} (sealed in link {seq}): missing")
    for r in rows:
        if chain.journal_hash(r[1:]) != r[0]:
            problems.append(f"journal record {r[1]} ({r[2]}, {_when(r[3] / 1e6)}; sealed in link {seq}): its "
                            f"content differs from what was written")
    return len(rows)


def _records(conn: sqlite3.Connection, sealed: dict[str, tuple[int, str]], problems: list[str]) -> int:
    """Tickets and declared windows. A ticket's seal of its own (`t:<id>`, before the tickets were sealed
    as one) is judged only where no seal of all the tickets came after it."""
    covered = sealed.get(chain.TICKETS, (0, ""))[0]
    stored = {f"t:{r[0]}": chain.ticket_hash(r) for r in conn.execute(chain.TICKET_ROW)}
    stored.update({f"w:{r[0]}": chain.window_hash(r) for r in conn.execute(
        "SELECT id, kind, start, end, reason FROM windows")})
    keys = sorted(k for k in sealed if k[:2] == "w:" or k[:2] == "t:" and sealed[k][0] > covered)
    for key in keys:
        seq, want = sealed[key]
        what = ("ticket " if key[0] == "t" else "declared window ") + key[2:]
        if want == chain.DELETED:
            if key in stored:
                problems.append(f"{what} (removed in link {seq}): present again")
        elif key not in stored:
            problems.append(f"{what} (sealed in link {seq}): missing")
        elif stored[key] != want:
            problems.append(f"{what} (sealed in link {seq}): differs from what was sealed")
    return len(keys) + (_tickets(conn, sealed[chain.TICKETS], problems) if covered else 0)


def _tickets(conn: sqlite3.Connection, seal: tuple[int, str], problems: list[str]) -> int:
    """Each ticket against its own hash, then the tickets' hashes against their last seal (a ticket added,
    removed, or rewritten along with its hash)."""
    seq, want = seal
    before = len(problems)
    rows = conn.execute(chain.TICKET_ROW.replace(" FROM", ", hash, link FROM") + " ORDER BY id").fetchall()
    for *fields, own, link in rows:
        if link is None or link > seq:
            problems.append(f"ticket {fields[0]}: not sealed (the tickets were last sealed in link {seq})")
        elif chain.ticket_hash(tuple(fields)) != own:
            problems.append(f"ticket {fields[0]} (sealed in link {link}): differs from what was sealed")
    if chain.tickets_digest([r[-2] for r in rows]) != want and len(problems) == before:
        sealed_n = want.split(":")[0]
        why = f"{len(rows)} stored where {sealed_n} were sealed" if str(len(rows)) != sealed_n else \
            "a ticket was rewritten along with its own hash"
        problems.append(f"the tickets (sealed in link {seq}): {why}")
    return len(rows)


def verify_store(conn: sqlite3.Connection, since: float | None = None, until: float | None = None,
                 delay: float | None = None,
                 hashed: Callable[[], dict[tuple[int, int], str]] | None = None) -> tuple[list[str], dict[str, int]]:
    """The problems found, and how many rows were checked. `delay`: the agent's seal delay (slo.seal_delay_of),
    after which a row is final and may not have been reopened (None: reopenings are not judged by their time,
    only by their order). `hashed`: the hashes of journal runs already made (_journal)."""
    problems: list[str] = []
    links = chain.check_links(conn, problems)
    sealed = chain.latest_seals(conn, since, until)
    stats: dict[str, int] = {"links": links}
    stats["minute rows"] = _rows(conn, "m", sealed, problems)
    stats["digests"] = _rows(conn, "d", sealed, problems)
    _history(conn, since, until, problems, delay)
    stats["journal records"] = _journal(conn, sealed, problems, hashed)
    stats["tickets and windows"] = _records(conn, sealed, problems)
    return problems, stats


@dataclass(frozen=True)
class Outside:
    """Rows of one kind that no seal covers (or, `provisional`, sealed at a stop before they were final)."""
    kind: str
    count: int
    first: float  # the span of time they are about
    last: float
    due: int  # how many of them the agent should have sealed by the time asked about
    provisional: bool = False

    def text(self, tz: dt.tzinfo = dt.timezone.utc) -> str:
        return (f"{self.count} {self.kind}, {dt.datetime.fromtimestamp(self.first, tz).isoformat(timespec='seconds')} "
                f"to {dt.datetime.fromtimestamp(self.last, tz).isoformat(timespec='seconds')}")


# per kind: the unsealed rows about [:since, :until): how many, their span, and how many were due by :due (a row
# of minute counts or a digest :delay after its end, a journal record JOURNAL_SEAL_EVERY after it; the others
# are sealed as they are written)
_OUTSIDE = (
    ("minute rows", "SELECT COUNT(*), MIN(hour) * 3600, MAX(hour) * 3600 + 3600, TOTAL((hour + 1) * 3600 + :delay "
                    "<= :due) FROM minutes WHERE {} AND hour >= :h0 AND hour < :h1"),
    ("digests", "SELECT COUNT(*), MIN(start), MAX(start + span), TOTAL(start + span + :delay <= :due) FROM digests "
                "WHERE {} AND start + span > :since AND start < :until"),
    ("journal records", "SELECT COUNT(*), MIN(at_us) / 1e6, MAX(at_us) / 1e6, TOTAL(at_us / 1e6 + :every <= :due) "
                        "FROM journal WHERE {} AND at_us >= :since * 1e6 AND at_us < :until * 1e6"),
    ("tickets", "SELECT COUNT(*), MIN(opened_at), MAX(opened_at), COUNT(*) FROM tickets "
                "WHERE {} AND opened_at >= :since AND opened_at < :until"),
    ("declared windows", "SELECT COUNT(*), MIN(start), MAX(end), COUNT(*) FROM windows "
                         "WHERE {} AND end > :since AND start < :until"),
)


def outside(conn: sqlite3.Connection, since: float | None, until: float | None, due: float | None = None,
            delay: float = chain.SEAL_DELAY) -> list[Outside]:
    """What lies outside the chain about [since, until), kind by kind; then the rows sealed only
    provisionally. `due`: the time by which the agent should have sealed what it had to (None: never)."""
    lo, hi = -1e15 if since is None else since, 1e15 if until is None else until
    args = {"since": lo, "until": hi, "h0": math.floor(lo / 3600), "h1": math.ceil(hi / 3600),
            "due": -1e15 if due is None else due, "delay": delay, "every": chain.JOURNAL_SEAL_EVERY}
    # a ledger of schema 5 or before (an old bundle's extract) had no provisional seals, nor sealed hour digests
    old = conn.execute("PRAGMA user_version").fetchone()[0] < 6
    found = []
    for kind, query in _OUTSIDE:
        for where, provisional in (("link IS NULL", False), ("provisional = 1", True)):
            if provisional and (old or kind not in ("minute rows", "digests")):
                continue
            if old and kind == "digests":
                where += " AND span = 86400"
            n, first, last, late = conn.execute(query.format(where), args).fetchone()
            if n:
                found.append(Outside(kind, n, first, last, 0 if provisional else int(late), provisional))
    return found
