"""The report's rows as CSV, one line per row of the contract's table."""
from __future__ import annotations

import csv
import io
import json
from typing import Any


def render(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    wr = csv.writer(out, lineterminator="\n")
    wr.writerow(["month", "row", "service", "measure", "objective", "value", "verdict"])
    for r in doc["rows"]:
        obj = r["objective"] if not isinstance(r["objective"], dict) else json.dumps(r["objective"], sort_keys=True)
        val = r["value"] if not isinstance(r["value"], dict) else json.dumps(r["value"], sort_keys=True)
        wr.writerow([doc["month"], r["row"], r["service"], r["measure"], obj, "" if val is None else val, r["verdict"]])
    return out.getvalue()
