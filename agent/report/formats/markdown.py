"""The report as Markdown, for a wiki page or a ticket."""
from __future__ import annotations

import io
import json
from typing import Any

from .common import (VERDICT_TEXT, counted, evidence_line, kinds, location_rows, minutes, ms, pct, record,
                     row_objective, row_value, ticket_rows, unconfirmed_line)


def _incidents(w: Any, doc: dict[str, Any]) -> None:
    w("\n## Failure episodes\n\nRuns of minutes with a down probe; degraded minutes had down probes below the "
      "slice rule (shown, not counted).\n\n")
    if not doc["incidents"]:
        w("No failure this month.\n")
        return
    w("| Start | End | Minutes | Service | Targets | Errors | Counted | First record | Last record |\n"
      "|---|---|---|---|---|---|---|---|---|\n")
    for i in doc["incidents"]:
        j = i["journal"]
        w(f"| {i['start']} | {i['end']} | {minutes(i)} | {i['service']} | {', '.join(i['targets'])} | {kinds(i)} | "
          f"{counted(i)} | {record(j['first'])} | {record(j['last'])} |\n")


def _locations(w: Any, doc: dict[str, Any]) -> None:
    rows = location_rows(doc)
    if not rows:
        return
    w(f"\n## Locations\n\nA slice is down when {doc['locations']['min_agree']} locations saw it down.\n\n"
      "| Location | Figures |\n|---|---|\n")
    for name, cells in rows:
        w(f"| {name} | {'; '.join(cells)} |\n")
    w("\nUnconfirmed minutes (seen down by too few locations, counted neither way):\n\n")
    for u in doc["unconfirmed"] or [None]:
        w(f"- {unconfirmed_line(u) if u else 'none'}\n")


def _tickets(w: Any, doc: dict[str, Any]) -> None:
    w("\n## Tickets\n\n| Priority | Deadline (business h) | Tickets | Met | Missed | Pending | Share met |\n"
      "|---|---|---|---|---|---|---|\n")
    for prio, t in doc["tickets"].items():
        w(f"| {prio} | {t['deadline_h']:g} | {t['total']} | {t['met']} | {t['missed']} | {t['pending']} | "
          f"{pct(t['ratio'], 1)} |\n")
    rows = ticket_rows(doc)
    if rows:
        w("\n| Ticket | Priority | Opened | Answered | Business delay | Deadline | State |\n"
          "|---|---|---|---|---|---|---|\n")
    for prio, t, this_month in rows:
        w(f"| {t['id']} | {prio} | {t['opened_at']} | {t['responded_at'] or '-'} | {t['business_response']} | "
          f"{t['deadline']} | {t['state']}{'' if this_month else ' (opened in another month: not counted)'} |\n")


def render(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    w = out.write
    w(f"# SLA report {doc['month']}\n\n")
    w(f"Time zone {doc['timezone']}; generated {doc['generated_at']}"
      f"{'' if doc['complete'] else ' (month in progress)'}.\n\n")
    w("| Row | Service | Measure | Objective | Measured | Verdict |\n|---|---|---|---|---|---|\n")
    for r in doc["rows"]:
        w(f"| {r['row']} | {r['service']} | {r['measure']} | {row_objective(r)} | {row_value(r)} | "
          f"**{VERDICT_TEXT[r['verdict']]}** |\n")
    w("\n## 7-day periods\n\n| Period | Service | Requests | " +
      " | ".join(f"< {t} s" for t in (doc["periods"][0]["below"] if doc["periods"] else {})) +
      " | p50 | p90 | p98 | p99 | p99.9 | Verdict |\n")
    if doc["periods"]:
        w("|" + "---|" * (9 + len(doc["periods"][0]["below"])) + "\n")
    for p in doc["periods"]:
        q = p["quantiles_s"]
        w(f"| {p['start'][:10]} to {p['end'][:10]} | {p['service']} | {p['count']} | " +
          " | ".join(pct(b["fraction"]) for b in p["below"].values()) +
          f" | {ms(q.get('0.5'))} | {ms(q.get('0.9'))} | {ms(q.get('0.98'))} | {ms(q.get('0.99'))} | "
          f"{ms(q.get('0.999'))} | {VERDICT_TEXT[p['verdict']]} |\n")
    _locations(w, doc)
    _incidents(w, doc)
    w("\n## Maintenance and exclusions\n\n")
    for x in doc["maintenance"] + doc["exclusions"]:
        w(f"- {x['kind']} {x['start']} to {x['end']}: {x['reason']}\n")
    w("\n## Coverage\n\n")
    for s, v in doc["coverage"]["services"].items():
        w(f"- {s}: {pct(v['ratio'], 2)} of eligible time observed ({v['unknown_minutes']} minutes without data)\n")
    _tickets(w, doc)
    w("\n## Readings of the annexe\n\n")
    for k, v in doc["readings"].items():
        w(f"- {k}: {v if isinstance(v, str) else json.dumps(v)}\n")
    w(f"\n## Evidence\n\n{evidence_line(doc)}; verify with `sla-agent report --verify REPORT.json`.\n")
    return out.getvalue()
