"""The report as plain text, for a terminal or an e-mail."""
from __future__ import annotations

import io
from typing import Any

from .common import VERDICT_TEXT, kinds, ms, pct, row_objective, row_value


def render(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    w = out.write
    w(f"SLA report {doc['month']} ({doc['timezone']}), generated {doc['generated_at']}"
      f"{'' if doc['complete'] else ' - month in progress'}\n\n")
    w(f"{'row':<4}{'service':<12}{'measure':<16}{'objective':<34}{'measured':<36}verdict\n")
    for r in doc["rows"]:
        w(f"{r['row']:<4}{r['service']:<12}{r['measure']:<16}{row_objective(r):<34}{row_value(r):<36}"
          f"{VERDICT_TEXT[r['verdict']]}\n")
    w("\n7-day periods (API latency, exact counts):\n")
    for p in doc["periods"]:
        below = ", ".join(f"{pct(b['fraction'])} < {t} s ({b['count']}/{p['count']})" for t, b in p["below"].items())
        q = p["quantiles_s"]
        w(f"  {p['start'][:10]} -> {p['end'][:10]} {p['service']}: {below}; p50 {ms(q.get('0.5'))} "
          f"p99 {ms(q.get('0.99'))}; {VERDICT_TEXT[p['verdict']]}{'' if p['complete'] else ' (in progress)'}\n")
    w("\ncoverage: " + ", ".join(f"{s} {pct(v['ratio'], 2)}" for s, v in doc["coverage"]["services"].items()) +
      f" (floor {doc['coverage']['floor'] * 100:g} %)\n")
    counted = [i for i in doc["incidents"] if not i["during"]]
    w(f"\nincidents counted ({len(counted)}):\n")
    for i in counted:
        w(f"  {i['start']} -> {i['end'][11:]} {i['service']:<5} {i['duration_s'] / 60:.0f} min  "
          f"{', '.join(i['targets'])}  {kinds(i)}\n")
    masked = [i for i in doc["incidents"] if i["during"]]
    if masked:
        w(f"incidents inside maintenance or exclusion windows, not counted ({len(masked)}):\n")
        for i in masked:
            w(f"  {i['start']} -> {i['end'][11:]} {i['service']:<5} {i['duration_s'] / 60:.0f} min  ({i['during']})\n")
    w(f"\nmaintenance windows applied: {len(doc['maintenance'])}; exclusions: {len(doc['exclusions'])}\n")
    for x in doc["exclusions"]:
        w(f"  exclusion {x['start']} -> {x['end']}: {x['reason']}\n")
    w(f"\nevidence: sha256 {doc['evidence']['ledger_sha256']} over {doc['evidence']['rows_hashed']} stored rows\n")
    return out.getvalue()
