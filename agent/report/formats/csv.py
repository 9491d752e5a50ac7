"""The report as CSV: one table, its first column `kind` saying what a line is (a row of the contract's
table, a ticket); each kind fills its own columns and leaves the others empty, so that a spreadsheet or
a CSV reader takes the file as one table with one header."""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable, Sequence

from .common import ticket_rows


ROW_HEADER = ["month", "row", "service", "measure", "objective", "value", "verdict"]
TICKET_HEADER = ["month", "ticket", "priority", "opened_at", "responded_at", "business_delay", "business_delay_s",
                 "deadline", "state", "counted"]


def cell(value: Any) -> Any:
    """A figure as a cell: a mapping (latency's per bound) as JSON, none as empty."""
    return "" if value is None else json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


def row_cells(month: str, r: dict[str, Any]) -> list[Any]:
    return [month, r["row"], r["service"], r["measure"], cell(r["objective"]), cell(r["value"]), r["verdict"]]


def one_table(parts: Sequence[tuple[str, Sequence[str], Iterable[Sequence[Any]]]]) -> str:
    """Lines of several kinds as one table: `kind`, then every kind's columns in the order first named (a
    column two kinds name, such as month, is one column)."""
    columns: list[str] = []
    for _, header, _ in parts:
        columns += [c for c in header if c not in columns]
    out = io.StringIO()
    wr = csv.writer(out, lineterminator="\n")
    wr.writerow(["kind", *columns])
    for kind, header, lines in parts:
        at = [columns.index(c) for c in header]
        for line in lines:
            cells: list[Any] = [""] * len(columns)
            for i, value in zip(at, line):
                cells[i] = value
            wr.writerow([kind, *cells])
    return out.getvalue()


def render(doc: dict[str, Any]) -> str:
    tickets = ([doc["month"], t["id"], prio, t["opened_at"], t["responded_at"] or "", t["business_response"],
                t["business_response_s"], t["deadline"], t["state"], "yes" if this_month else "no"]
               for prio, t, this_month in ticket_rows(doc))
    return one_table([("row", ROW_HEADER, (row_cells(doc["month"], r) for r in doc["rows"])),
                      ("ticket", TICKET_HEADER, tickets)])
