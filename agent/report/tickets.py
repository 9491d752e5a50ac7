"""Support tickets (rows 4-6): import a support-tool export, evaluate first-response times in
business hours. The whole file is validated first; one bad line rejects it all."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..calendar import Calendar, iso
from ..calendar.business import BusinessHours
from ..config.model import Config
from ..store import Store, Ticket
from ..timeutil import parse_instant

FIELDS = ("id", "priority", "opened_at", "responded_at", "workaround_at", "resolved_at", "closed_at")
REQUIRED = ("id", "priority", "opened_at")
PRIORITIES = ("P1", "P2", "P3")
MAX_FILE_BYTES = 64 * 1024 * 1024


class ImportError_(Exception):  # noqa: N801 - not the builtin ImportError
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _columns(cfg: Config) -> dict[str, str]:
    cols = {f: f for f in FIELDS}
    cols.update(dict(cfg.contract.ticket_columns))
    return cols


def parse_export(cfg: Config, name: str, data: bytes) -> list[Ticket]:
    """Parses and validates; raises ImportError_ listing every problem as FILE:LINE: field: reason."""
    tz = Calendar(cfg.contract).tz
    cols = _columns(cfg)
    problems: list[str] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportError_([f"{name}:1: the file is not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    records: list[tuple[int, dict[str, Any]]] = []
    if name.lower().endswith(".json") or text.lstrip().startswith("["):
        try:
            items = _json_items(text)
        except ValueError as exc:
            raise ImportError_([f"{name}:{getattr(exc, 'lineno', 1)}: not valid JSON: {getattr(exc, 'msg', exc)}"]) from None
        for i, (line, item) in enumerate(items):
            if not isinstance(item, dict):
                problems.append(f"{name}:{line}: [{i}]: must be an object with {', '.join(REQUIRED)}")
                continue
            records.append((line, item))
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        missing = [cols[f] for f in REQUIRED if cols[f] not in header]
        if missing:
            raise ImportError_([f"{name}:1: header lacks column{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(missing)} (found: {', '.join(header) or 'nothing'}); "
                                f"map names with contract.tickets.columns"])
        for row in reader:
            if None in row:
                problems.append(f"{name}:{reader.line_num}: more fields than the header has")
                continue
            records.append((reader.line_num, row))
    tickets: list[Ticket] = []
    seen: dict[str, int] = {}
    for line, rec in records:
        values: dict[str, Any] = {}
        bad = False
        for f in FIELDS:
            raw = rec.get(cols[f])
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if f in REQUIRED:
                    problems.append(f"{name}:{line}: {cols[f]}: is required")
                    bad = True
                values[f] = None
                continue
            if f == "id":
                if not isinstance(raw, (str, int)) or isinstance(raw, bool):
                    problems.append(f"{name}:{line}: {cols[f]}: must be text or a number, got {raw!r}")
                    bad = True
                    continue
                values[f] = str(raw).strip()
            elif f == "priority":
                p = str(raw).strip().upper()
                if p in ("1", "2", "3"):
                    p = "P" + p
                if p not in PRIORITIES:
                    problems.append(f"{name}:{line}: {cols[f]}: must be P1, P2 or P3, got {raw!r}")
                    bad = True
                    continue
                values[f] = p
            else:
                if not isinstance(raw, str):
                    problems.append(f"{name}:{line}: {cols[f]}: must be an ISO 8601 date-time, got {raw!r}")
                    bad = True
                    continue
                try:
                    values[f] = parse_instant(raw, tz).timestamp()
                except (ValueError, OverflowError):
                    problems.append(f"{name}:{line}: {cols[f]}: must be an ISO 8601 date-time such as "
                                    f"2026-11-24T10:30:00+01:00, got {raw!r}")
                    bad = True
        if bad:
            continue
        for f in ("responded_at", "workaround_at", "resolved_at", "closed_at"):
            if values[f] is not None and values[f] < values["opened_at"]:
                problems.append(f"{name}:{line}: {cols[f]}: {iso(values[f], tz)} is before the ticket was opened "
                                f"({iso(values['opened_at'], tz)})")
                bad = True
        if values["id"] in seen:
            problems.append(f"{name}:{line}: {cols['id']}: ticket {values['id']!r} already appears at line "
                            f"{seen[values['id']]}")
            bad = True
        else:
            seen[values["id"]] = line
        if not bad:
            tickets.append(Ticket(**values))
    if problems:
        raise ImportError_(problems)
    if not tickets:
        raise ImportError_([f"{name}:1: no tickets in the file"])
    return tickets


def _json_items(text: str) -> list[tuple[int, Any]]:
    """The items of a top-level JSON list with the line each starts on. Raises ValueError."""
    dec = json.JSONDecoder()
    pos = 0
    n = len(text)

    def skip(p: int) -> int:
        while p < n and text[p] in " \t\r\n":
            p += 1
        return p

    pos = skip(pos)
    if pos >= n or text[pos] != "[":
        raise ValueError("a JSON export must be a list of ticket objects")
    pos = skip(pos + 1)
    items: list[tuple[int, Any]] = []
    if pos < n and text[pos] == "]":
        return items
    while True:
        line = text.count("\n", 0, pos) + 1
        obj, pos = dec.raw_decode(text, pos)
        items.append((line, obj))
        pos = skip(pos)
        if pos < n and text[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < n and text[pos] == "]":
            if skip(pos + 1) != n:
                raise ValueError("extra data after the list")
            return items
        raise ValueError("expected ',' or ']' between tickets")


def import_file(cfg: Config, state_dir: str, path: Path) -> tuple[int, int]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImportError_([f"{path}:1: the file is {size} bytes; the limit is {MAX_FILE_BYTES}"])
        data = path.read_bytes()
    except OSError as exc:
        raise ImportError_([f"{path}:1: cannot read the file: {exc.strerror or exc}"]) from None
    tickets = parse_export(cfg, str(path), data)
    store = Store(state_dir, thresholds=cfg.contract.thresholds)
    try:
        return store.upsert_tickets(tickets)
    finally:
        store.close()


# -- evaluation ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TicketOutcome:
    ticket: Ticket
    business_s: float  # business time to first response (so far, when unanswered)
    deadline_s: float
    state: str  # met | missed | pending

    def to_dict(self, tz: dt.tzinfo) -> dict:
        t = self.ticket
        return {"id": t.id, "priority": t.priority, "opened_at": iso(t.opened_at, tz),
                "responded_at": iso(t.responded_at, tz) if t.responded_at is not None else None,
                "workaround_at": iso(t.workaround_at, tz) if t.workaround_at is not None else None,
                "business_response_h": round(self.business_s / 3600, 3), "deadline_h": self.deadline_s / 3600,
                "state": self.state}


def evaluate_ticket(t: Ticket, bh: BusinessHours, deadline_s: float, now: float) -> TicketOutcome:
    if t.responded_at is not None:
        used = bh.seconds_between(t.opened_at, t.responded_at)
        return TicketOutcome(t, used, deadline_s, "met" if used <= deadline_s else "missed")
    used = bh.seconds_between(t.opened_at, now)
    return TicketOutcome(t, used, deadline_s, "missed" if used > deadline_s else "pending")


def summarize(tickets: list[Ticket], cfg: Config, now: float) -> dict[str, dict]:
    bh = BusinessHours(cfg.contract)
    deadlines = dict(cfg.contract.ticket_deadlines)
    out: dict[str, dict] = {}
    for prio in PRIORITIES:
        outcomes = [evaluate_ticket(t, bh, deadlines[prio], now) for t in tickets if t.priority == prio]
        met = sum(o.state == "met" for o in outcomes)
        missed = sum(o.state == "missed" for o in outcomes)
        pending = sum(o.state == "pending" for o in outcomes)
        decided = met + missed
        out[prio] = {"deadline_h": deadlines[prio] / 3600, "total": len(outcomes), "met": met, "missed": missed,
                     "pending": pending, "ratio": (met / decided) if decided else None, "outcomes": outcomes}
    return out


def live_summary(store: Store, cfg: Config, cal: Calendar, now: float) -> dict[str, dict]:
    """This month's figures for the exporter (no per-ticket detail)."""
    start, end = cal.month_bounds(*cal.month_of(now))
    s = summarize(store.tickets(start, end), cfg, now)
    return {p: {k: v for k, v in row.items() if k != "outcomes"} for p, row in s.items()}


def cmd_list(cfg: Config, state_dir: str, month: str | None) -> int:
    cal = Calendar(cfg.contract)
    store = Store(state_dir, thresholds=cfg.contract.thresholds)
    try:
        if month:
            y, m = (int(x) for x in month.split("-"))
            tickets = store.tickets(*cal.month_bounds(y, m))
        else:
            tickets = store.tickets()
    finally:
        store.close()
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    bh = BusinessHours(cfg.contract)
    deadlines = dict(cfg.contract.ticket_deadlines)
    print(f"{'id':<14} {'prio':<4} {'opened':<25} {'responded':<25} {'business h':>10} {'limit h':>7}  state")
    for t in tickets:
        o = evaluate_ticket(t, bh, deadlines[t.priority], now)
        d = o.to_dict(cal.tz)
        print(f"{t.id:<14} {t.priority:<4} {d['opened_at']:<25} {d['responded_at'] or '-':<25} "
              f"{d['business_response_h']:>10.2f} {d['deadline_h']:>7g}  {o.state}")
    return 0
