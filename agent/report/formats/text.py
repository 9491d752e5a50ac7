"""The report as plain text, for a terminal or an e-mail."""
from __future__ import annotations

import io
import json
from typing import Any

from .common import (VERDICT_TEXT, counted, evidence_line, hops_line, kinds, location_rows, minutes, ms,
                     path_line, period_notes, pct, record, row_objective, row_value, ticket_rows, unconfirmed_line)


def _periods(w: Any, doc: dict[str, Any]) -> None:
    w("\n7-day periods (latency, exact counts):\n")
    for p in doc["periods"]:
        below = ", ".join(f"{pct(b['fraction'])} < {t} s ({b['count']}/{p['count']})" for t, b in p["below"].items())
        q = p["quantiles_s"]
        where = f" [{p['location']}]" if p.get("location") else ""
        w(f"  {p['start'][:10]} -> {p['end'][:10]} {p['service']}{where}: {below}; p50 {ms(q.get('0.5'))} "
          f"p99 {ms(q.get('0.99'))}; {VERDICT_TEXT[p['verdict']]}{_partial(p, doc)}\n")


def _partial(p: dict[str, Any], doc: dict[str, Any]) -> str:
    return "".join(f" ({note})" for note in period_notes(p, doc))


def _locations(w: Any, doc: dict[str, Any]) -> None:
    rows = location_rows(doc)
    if not rows:
        return
    loc = doc["locations"]
    w(f"\nlocations ({len(rows)}; a slice is down when {loc['min_agree']} of them saw it down):\n")
    for name, cells in rows:
        w(f"  {name:<12} " + "; ".join(cells) + "\n")
    w(f"\nunconfirmed minutes ({sum(u['minutes'] for u in doc['unconfirmed'])}; seen down by too few locations, "
      "counted neither way):\n")
    for u in doc["unconfirmed"] or [None]:
        w(f"  {unconfirmed_line(u) if u else 'none'}\n")


def _incidents(w: Any, doc: dict[str, Any]) -> None:
    w(f"\nfailure episodes ({len(doc['incidents'])}; degraded minutes had down probes below the slice rule):\n")
    if not doc["incidents"]:
        w("  none\n")
    for i in doc["incidents"]:
        j = i["journal"]
        w(f"  {i['start']} -> {i['end'][11:]} {i['service']:<5} {minutes(i)}; counted {counted(i)}\n"
          f"      {', '.join(i['targets'])}: {kinds(i)}; journal {j['records']} records, first {record(j['first'])}, "
          f"last {record(j['last'])}\n")
        for p in i.get("paths", ()):
            w(f"      path {path_line(p)}\n        hops: {hops_line(p)}\n")


def _tickets(w: Any, doc: dict[str, Any]) -> None:
    rows = ticket_rows(doc)
    w(f"\ntickets ({len(rows)}; business delay h:mm:ss against the deadline):\n")
    for prio, t, this_month in rows:
        w(f"  {t['id']:<12} {prio}  opened {t['opened_at']}  answered {t['responded_at'] or '-':<25}  "
          f"{t['business_response']:>9} / {t['deadline']:>8}  {t['state']}"
          f"{'' if this_month else '  (opened in another month: not counted)'}\n")


def rows_table(doc: dict[str, Any]) -> str:
    """The contract's table with the month's values and verdicts (the report's head; the demo prints it)."""
    lines = [f"{'row':<4}{'service':<12}{'measure':<16}{'objective':<34}{'measured':<36}verdict"]
    lines += [f"{r['row']:<4}{r['service']:<12}{r['measure']:<16}{row_objective(r):<34}{row_value(r):<36}"
              f"{VERDICT_TEXT[r['verdict']]}" for r in doc["rows"]]
    return "\n".join(lines) + "\n"


def render(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    w = out.write
    w(f"SLA report {doc['month']} ({doc['timezone']}), generated {doc['generated_at']}"
      f"{'' if doc['complete'] else ' - month in progress'}\n\n")
    w(rows_table(doc))
    _periods(w, doc)
    w("\ncoverage: " + ", ".join(f"{s} {pct(v['ratio'], 2)}" for s, v in doc["coverage"]["services"].items()) +
      f" (floor {doc['coverage']['floor'] * 100:g} %)\n")
    _locations(w, doc)
    _incidents(w, doc)
    _tickets(w, doc)
    w(f"\nmaintenance windows applied: {len(doc['maintenance'])}; exclusions: {len(doc['exclusions'])}\n")
    for x in doc["exclusions"]:
        w(f"  exclusion {x['start']} -> {x['end']}: {x['reason']}\n")
    w("\nreadings of the annexe:\n")
    for k, v in doc["readings"].items():
        w(f"  {k}: {v if isinstance(v, str) else json.dumps(v)}\n")
    w(f"\nevidence: {evidence_line(doc)}\n")
    return out.getvalue()
