"""The report as Markdown, for a wiki page or a ticket. Every value from data (a ticket id, a target, a
reason, a reading) goes through md(), so that it shows as written and is never markup, HTML, a link, a
line break or the end of a table cell; only the figures and verdicts this module writes itself (Own)
are left as they are."""
from __future__ import annotations

import io
import json
import re
from typing import Any

from .common import (VERDICT_TEXT, counted, evidence_line, hops_line, kinds, location_rows, minutes, ms,
                     noted_periods, path_line, pct, record, row_objective, row_value, ticket_rows, unconfirmed_line)

# Backslash escapes where CommonMark has them; entities for what an HTML-passing renderer would read as a
# tag or an entity. `#`, `-`, `+` matter only at a line's start, where no value from data is written.
_ESCAPES = {"\\": "\\\\", "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]", "|": "\\|", "~": "\\~",
            "<": "&lt;", ">": "&gt;", "&": "&amp;"}
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")  # inside a word it never emphasises


class Own(str):
    """Text this module writes itself (figures, objectives, verdicts): not escaped."""


def md(value: object) -> str:
    """A value from data as Markdown text that reads as written, inside a table cell or a line."""
    if isinstance(value, Own):
        return value
    text = "".join(_ESCAPES.get(c, c) for c in _BREAKS.sub(" ", str(value)))
    return _EDGE_UNDERSCORE.sub(r"\\_", text)


def _row(*cells: object) -> str:
    return "| " + " | ".join(md(c) for c in cells) + " |\n"


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
        w(_row(i["start"], i["end"], minutes(i), i["service"], ", ".join(i["targets"]), kinds(i), counted(i),
               record(j["first"]), record(j["last"])))
    traced = [(i, p) for i in doc["incidents"] for p in i.get("paths", ())]
    if traced:
        w("\nThe path to each failing target, traced when it failed (the first trace of each episode and "
          "location):\n\n| Episode | Path | Hops |\n|---|---|---|\n")
        for i, p in traced:
            w(_row(i["start"], path_line(p), hops_line(p)))


def _locations(w: Any, doc: dict[str, Any]) -> None:
    rows = location_rows(doc)
    if not rows:
        return
    w(f"\n## Locations\n\nA slice is down when {md(doc['locations']['min_agree'])} locations saw it down.\n\n"
      "| Location | Figures |\n|---|---|\n")
    for name, cells in rows:
        w(_row(name, "; ".join(cells)))
    w("\nUnconfirmed minutes (seen down by too few locations, counted neither way):\n\n")
    for u in doc["unconfirmed"] or [None]:
        w(f"- {md(unconfirmed_line(u)) if u else 'none'}\n")


def _tickets(w: Any, doc: dict[str, Any]) -> None:
    w("\n## Tickets\n\n| Priority | Deadline (business h) | Tickets | Met | Missed | Pending | Share met |\n"
      "|---|---|---|---|---|---|---|\n")
    for prio, t in doc["tickets"].items():
        w(_row(prio, f"{t['deadline_h']:g}", t["total"], t["met"], t["missed"], t["pending"], pct(t["ratio"], 1)))
    rows = ticket_rows(doc)
    if rows:
        w("\n| Ticket | Priority | Opened | Answered | Business delay | Deadline | State |\n"
          "|---|---|---|---|---|---|---|\n")
    for prio, t, this_month in rows:
        w(_row(t["id"], prio, t["opened_at"], t["responded_at"] or "-", t["business_response"], t["deadline"],
               t["state"] + ("" if this_month else " (opened in another month: not counted)")))


def _periods(w: Any, doc: dict[str, Any]) -> None:
    w("\n## 7-day periods\n\n| Period | Service | Requests | " +
      " | ".join(f"< {t} s" for t in (doc["periods"][0]["below"] if doc["periods"] else {})) +
      " | p50 | p90 | p98 | p99 | p99.9 | Verdict |\n")
    if doc["periods"]:
        w("|" + "---|" * (9 + len(doc["periods"][0]["below"])) + "\n")
    for p in doc["periods"]:
        q = p["quantiles_s"]
        w(_row(f"{p['start'][:10]} to {p['end'][:10]}", p["service"], p["count"],
               *(pct(b["fraction"]) for b in p["below"].values()),
               *(ms(q.get(k)) for k in ("0.5", "0.9", "0.98", "0.99", "0.999")), VERDICT_TEXT[p["verdict"]]))
    notes = noted_periods(doc)
    if notes:
        w("\n" + "".join(f"- {md(line)}\n" for line in notes))


def render(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    w = out.write
    w(f"# SLA report {md(doc['month'])}\n\n")
    w(f"Time zone {md(doc['timezone'])}; generated {md(doc['generated_at'])}"
      f"{'' if doc['complete'] else ' (month in progress)'}.\n\n")
    w("| Row | Service | Measure | Objective | Measured | Verdict |\n|---|---|---|---|---|---|\n")
    for r in doc["rows"]:
        w(_row(r["row"], r["service"], r["measure"], Own(row_objective(r)), Own(row_value(r)),
               Own(f"**{VERDICT_TEXT[r['verdict']]}**")))
    _periods(w, doc)
    _locations(w, doc)
    _incidents(w, doc)
    w("\n## Maintenance and exclusions\n\n")
    for x in doc["maintenance"] + doc["exclusions"]:
        w(f"- {md(x['kind'])} {md(x['start'])} to {md(x['end'])}: {md(x['reason'])}\n")
    w("\n## Coverage\n\n")
    for s, v in doc["coverage"]["services"].items():
        w(f"- {md(s)}: {pct(v['ratio'], 2)} of eligible time observed ({v['unknown_minutes']} minutes without "
          f"data)\n")
    _tickets(w, doc)
    w("\n## Readings of the annexe\n\n")
    for k, v in doc["readings"].items():
        w(f"- {md(k)}: {md(v if isinstance(v, str) else json.dumps(v))}\n")
    w(f"\n## Evidence\n\n{md(evidence_line(doc))}; verify with `sla-agent report --verify REPORT.json`.\n")
    return out.getvalue()
