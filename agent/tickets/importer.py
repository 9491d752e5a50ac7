"""Reads a support tool's export (CSV with a header line, or a JSON list) into tickets. The whole file
is validated first; one bad line rejects it all, and every bad line is named."""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from ..calendar import iso
from ..config.model import PRIORITIES, Config
from ..timeutil import parse_instant, parse_timezone
from .model import FIELDS, REQUIRED, Ticket

MAX_FILE_BYTES = 64 * 1024 * 1024


class TicketFileError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _columns(cfg: Config) -> dict[str, str]:
    cols = {f: f for f in FIELDS}
    cols.update(dict(cfg.contract.ticket_columns))
    return cols


def parse_export(cfg: Config, name: str, data: bytes) -> list[Ticket]:
    """Parses and validates; raises TicketFileError listing every problem as FILE:LINE: field: reason."""
    tz = parse_timezone(cfg.contract.timezone)
    cols = _columns(cfg)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TicketFileError([f"{name}:1: the file is not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    problems: list[str] = []
    is_json = name.lower().endswith(".json") or text.lstrip().startswith("[")
    records = _json_records(name, text, problems) if is_json else _csv_records(name, text, cols, problems)
    tickets: list[Ticket] = []
    seen: dict[str, int] = {}
    for line, rec in records:
        t = _ticket(f"{name}:{line}", rec, cols, tz, problems)
        if t is None:
            continue
        if t.id in seen:
            problems.append(f"{name}:{line}: {cols['id']}: ticket {t.id!r} already appears at line {seen[t.id]}")
            continue
        seen[t.id] = line
        tickets.append(t)
    if problems:
        raise TicketFileError(problems)
    if not tickets:
        raise TicketFileError([f"{name}:1: no tickets in the file"])
    return tickets


def _json_records(name: str, text: str, problems: list[str]) -> list[tuple[int, dict[str, Any]]]:
    try:
        items = _json_items(text)
    except ValueError as exc:
        raise TicketFileError([f"{name}:{getattr(exc, 'lineno', 1)}: not valid JSON: {getattr(exc, 'msg', exc)}"]) \
            from None
    records = []
    for i, (line, item) in enumerate(items):
        if isinstance(item, dict):
            records.append((line, item))
        else:
            problems.append(f"{name}:{line}: [{i}]: must be an object with {', '.join(REQUIRED)}")
    return records


def _csv_records(name: str, text: str, cols: dict[str, str], problems: list[str]) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [cols[f] for f in REQUIRED if cols[f] not in header]
    if missing:
        raise TicketFileError([f"{name}:1: header lacks column{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(missing)} (found: {', '.join(header) or 'nothing'}); "
                               f"map names with contract.tickets.columns"])
    records = []
    for row in reader:
        if None in row:
            problems.append(f"{name}:{reader.line_num}: more fields than the header has")
        else:
            records.append((reader.line_num, row))
    return records


def _value(where: str, col: str, f: str, raw: Any, tz: Any) -> tuple[Any, str]:
    """One field's value, or the problem with it."""
    if f == "id":
        if not isinstance(raw, (str, int)) or isinstance(raw, bool):
            return None, f"{where}: {col}: must be text or a number, got {raw!r}"
        return str(raw).strip(), ""
    if f == "priority":
        p = str(raw).strip().upper()
        p = "P" + p if p in ("1", "2", "3") else p
        return (p, "") if p in PRIORITIES else (None, f"{where}: {col}: must be P1, P2 or P3, got {raw!r}")
    if not isinstance(raw, str):
        return None, f"{where}: {col}: must be an ISO 8601 date-time, got {raw!r}"
    try:
        return parse_instant(raw, tz).timestamp(), ""
    except (ValueError, OverflowError):
        return None, f"{where}: {col}: must be an ISO 8601 date-time such as 2026-11-24T10:30:00+01:00, got {raw!r}"


def _ticket(where: str, rec: dict[str, Any], cols: dict[str, str], tz: Any, problems: list[str]) -> Ticket | None:
    """The record as a ticket (None when a field cannot be read); problems are appended."""
    values: dict[str, Any] = {}
    before = len(problems)
    for f in FIELDS:
        raw = rec.get(cols[f])
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if f in REQUIRED:
                problems.append(f"{where}: {cols[f]}: is required")
            values[f] = None
            continue
        values[f], problem = _value(where, cols[f], f, raw, tz)
        if problem:
            problems.append(problem)
    if len(problems) > before:
        return None
    for f in ("responded_at", "workaround_at", "resolved_at", "closed_at"):
        if values[f] is not None and values[f] < values["opened_at"]:
            problems.append(f"{where}: {cols[f]}: {iso(values[f], tz)} is before the ticket was opened "
                            f"({iso(values['opened_at'], tz)})")
    return Ticket(**values)  # the caller still checks its id; any problem above rejects the file


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
