"""Reads a support tool's export (CSV with a header line, or a JSON list) into tickets. The whole file
is validated first; one bad line rejects it all, and every bad line is named."""
from __future__ import annotations

import csv
import io
import json
import unicodedata
from typing import Any

from ..calendar import iso
from ..config.model import PRIORITIES, Config
from ..timeutil import INSTANT_RANGE, in_range, parse_instant, parse_timezone
from .model import FIELDS, REQUIRED, Ticket

MAX_FILE_BYTES = 64 * 1024 * 1024
DELIMITERS = (",", ";", "\t")  # ';' is what a spreadsheet writes where ',' is the decimal separator
# Characters that would let an id break a line of `tickets list` or of a report, or hide in it
_CONTROL = {"Cc", "Cf", "Zl", "Zp"}


class TicketFileError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class _TooDeep(Exception):
    def __init__(self, lineno: int) -> None:
        self.lineno = lineno
        super().__init__(f"nested too deeply at line {lineno}")


def _columns(cfg: Config) -> dict[str, str]:
    cols = {f: f for f in FIELDS}
    cols.update(dict(cfg.contract.ticket_columns))
    return cols


def parse_export(cfg: Config, name: str, data: bytes, fmt: str = "auto") -> list[Ticket]:
    """Parses and validates; raises TicketFileError listing every problem as FILE:LINE: field: reason.
    `fmt` auto: JSON when the name ends in .json or the text opens a list, CSV otherwise."""
    tz = parse_timezone(cfg.contract.timezone)
    cols = _columns(cfg)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TicketFileError([f"{name}:1: the file is not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    problems: list[str] = []
    is_json = fmt == "json" or fmt == "auto" and (name.lower().endswith(".json") or text.lstrip().startswith("["))
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
    except _TooDeep as exc:
        raise TicketFileError([f"{name}:{exc.lineno}: cannot be read: nested too deeply (a ticket is an object "
                               f"of plain values)"]) from None
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
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(name, text, cols))
    records: list[tuple[int, dict[str, Any]]] = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return records
        except csv.Error as exc:  # the reader cannot go on past it: report it with what came before
            problems.append(f"{name}:{start}: {_csv_problem(exc)}")
            return records
        if None in row:
            problems.append(f"{name}:{reader.line_num}: more fields than the header has")
        else:
            records.append((reader.line_num, row))


def _csv_problem(exc: csv.Error) -> str:
    if "field limit" in str(exc):
        return (f"a field is longer than {csv.field_size_limit()} characters, the most a CSV field may hold "
                f"(is a quote left open?)")
    return f"cannot be read as CSV: {exc}"


def _delimiter(name: str, text: str, cols: dict[str, str]) -> str:
    """The delimiter with which the header line holds the required columns; else TicketFileError naming
    the delimiter the header seems to use, and what is missing."""
    first = text.partition("\n")[0].rstrip("\r")
    required = [cols[f] for f in REQUIRED]

    def header(d: str) -> list[str]:
        try:
            return next(csv.reader([first], delimiter=d), [])
        except csv.Error as exc:
            raise TicketFileError([f"{name}:1: {_csv_problem(exc)}"]) from None

    fits = [d for d in DELIMITERS if all(c in header(d) for c in required)]
    if len(fits) == 1:
        return fits[0]
    if fits:
        raise TicketFileError([f"{name}:1: the header line holds the columns {', '.join(required)} both when "
                               f"split at {fits[0]!r} and at {fits[1]!r}; rename a column (contract.tickets.columns)"])
    marks = [c for c in first if not c.isalnum() and c not in " _-.'\""]
    used = max(marks, key=marks.count) if marks else ","
    if used not in DELIMITERS:
        raise TicketFileError([f"{name}:1: the header line is separated by {used!r}; a CSV export must separate "
                               f"its columns with ',', ';' or a tab"])
    found = header(used)
    missing = [c for c in required if c not in found]
    how = "found" if used == "," else f"found, separated by {used!r}"
    raise TicketFileError([f"{name}:1: header lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                           f"({how}: {', '.join(found) or 'nothing'}); map names with contract.tickets.columns"])


def _value(where: str, col: str, f: str, raw: Any, tz: Any) -> tuple[Any, str]:
    """One field's value, or the problem with it."""
    if f == "id":
        if not isinstance(raw, (str, int)) or isinstance(raw, bool):
            return None, f"{where}: {col}: must be text or a number, got {raw!r}"
        value = str(raw).strip()
        if any(unicodedata.category(c) in _CONTROL for c in value):
            return None, f"{where}: {col}: must not hold control characters (such as a NUL or a line break), " \
                         f"got {value!r}"
        return value, ""
    if f == "priority":
        p = str(raw).strip().upper()
        p = "P" + p if p in ("1", "2", "3") else p
        return (p, "") if p in PRIORITIES else (None, f"{where}: {col}: must be P1, P2 or P3, got {raw!r}")
    if not isinstance(raw, str):
        return None, f"{where}: {col}: must be an ISO 8601 date-time, got {raw!r}"
    try:
        value = parse_instant(raw, tz).timestamp()
    except (ValueError, OverflowError):
        return None, f"{where}: {col}: must be an ISO 8601 date-time such as 2026-11-24T10:30:00+01:00, got {raw!r}"
    if not in_range(value):  # stored, it would break every later `tickets list` and report
        return None, f"{where}: {col}: must be between {INSTANT_RANGE}, got {raw!r}"
    return value, ""


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
        try:
            obj, pos = dec.raw_decode(text, pos)
        except RecursionError:
            raise _TooDeep(line) from None
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
