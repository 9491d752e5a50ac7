"""The report as CSV: one line per row of the contract's table; after an empty line, one per ticket."""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from .common import ticket_rows


def render(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    wr = csv.writer(out, lineterminator="\n")
    wr.writerow(["month", "row", "service", "measure", "objective", "value", "verdict"])
    for r in doc["rows"]:
        obj = r["objective"] if not isinstance(r["objective"], dict) else json.dumps(r["objective"], sort_keys=True)
        val = r["value"] if not isinstance(r["value"], dict) else json.dumps(r["value"], sort_keys=True)
        wr.writerow([doc["month"], r["row"], r["service"], r["measure"], obj, "" if val is None else val, r["verdict"]])
    out.write("\n")  # then the tickets, one per line
    wr.writerow(["ticket", "priority", "opened_at", "responded_at", "business_delay", "business_delay_s", "deadline",
                 "state", "counted"])
    for prio, t, this_month in ticket_rows(doc):
        wr.writerow([t["id"], prio, t["opened_at"], t["responded_at"] or "", t["business_response"],
                     t["business_response_s"], t["deadline"], t["state"], "yes" if this_month else "no"])
    return out.getvalue()
