"""The report as CSV: one line per row of the contract's table; after an empty line, one per ticket."""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from .common import ticket_rows


ROW_HEADER = ["month", "row", "service", "measure", "objective", "value", "verdict"]


def cell(value: Any) -> Any:
    """A figure as a cell: a mapping (latency's per bound) as JSON, none as empty."""
    return "" if value is None else json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


def row_cells(month: str, r: dict[str, Any]) -> list[Any]:
    return [month, r["row"], r["service"], r["measure"], cell(r["objective"]), cell(r["value"]), r["verdict"]]


def render(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    wr = csv.writer(out, lineterminator="\n")
    wr.writerow(ROW_HEADER)
    for r in doc["rows"]:
        wr.writerow(row_cells(doc["month"], r))
    out.write("\n")  # then the tickets, one per line
    wr.writerow(["ticket", "priority", "opened_at", "responded_at", "business_delay", "business_delay_s", "deadline",
                 "state", "counted"])
    for prio, t, this_month in ticket_rows(doc):
        wr.writerow([t["id"], prio, t["opened_at"], t["responded_at"] or "", t["business_response"],
                     t["business_response_s"], t["deadline"], t["state"], "yes" if this_month else "no"])
    return out.getvalue()
