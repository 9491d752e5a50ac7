"""A period's report (report/period.py) in each format of the monthly one: the same tables, the period's
totals, each month's rows, each month's 7-day periods, the tickets and the evidence, laid out by format."""
from __future__ import annotations

import html as _html
import textwrap
from dataclasses import dataclass
from typing import Any

from .common import FAVICON_LINK, VERDICT_TEXT, evidence_line, ms, pct, row_objective, row_value
from .csv import ROW_HEADER, cell, one_table, row_cells
from .html import CSS
from .markdown import Own, md


class Verdict(str):
    """A verdict's cell: its text, and the verdict it stands for (the HTML colours it)."""

    key: str

    def __new__(cls, key: str) -> "Verdict":
        v = super().__new__(cls, VERDICT_TEXT[key])
        v.key = key
        return v


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    note: str
    header: tuple[str, ...]
    rows: list[list[str]]


def title(doc: dict[str, Any]) -> str:
    p = doc["period"]
    return f"SLA report {p['from']} to {p['to']}"


def _counted(r: dict[str, Any]) -> str:
    """What a total row was added up from."""
    d = r["details"]
    if "slices" in d:
        s = d["slices"]
        return (f"{s['up']} min up, {s['down']} min down, {s['unknown']} min without data, {s['masked']} min "
                f"left out (coverage {pct(d['coverage'], 2)})")
    if "periods" in d:
        return f"{len(d['periods'])} 7-day periods"
    return f"{d['total']} tickets: {d['met']} met, {d['missed']} missed, {d['pending']} pending"


def _periods(doc: dict[str, Any]) -> list[list[str]]:
    out = []
    for rep in doc["reports"]:
        for p in rep["periods"]:
            q = p["quantiles_s"]
            below = ", ".join(f"{pct(b['fraction'])} < {t} s" for t, b in p["below"].items())
            span = f"{p['start'][:10]} to {p['end'][:10]}" + ("" if p["complete"] else " (its days in the month)")
            out.append([rep["month"], span, p["service"], str(p["count"]), below, ms(q.get("0.5")),
                        ms(q.get("0.99")), Verdict(p["verdict"])])
    return out


def ticket_figures(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(month, priority, figures) for each month, then (`FROM to TO`, priority, figures) for the period."""
    span = f"{doc['period']['from']} to {doc['period']['to']}"
    out = [(rep["month"], prio, t) for rep in doc["reports"] for prio, t in rep["tickets"].items()]
    return out + [(span, r["service"].removeprefix("ticket_"), r["details"]) for r in doc["period"]["totals"]["rows"]
                  if r["measure"] == "first_response"]


def tables(doc: dict[str, Any]) -> list[Table]:
    totals = doc["period"]["totals"]["rows"]
    return [
        Table("totals", "Over the period", "Availability over all the period's observed minutes (not a mean of the "
              "monthly ratios); latency over every 7-day period of its months; the tickets each month counted. The "
              "contract judges each month: their verdicts are beside.",
              ("Row", "Service", "Measure", "Objective", "Over the period", "Verdict", "Each month", "Counted"),
              [[str(r["row"]), r["service"], r["measure"], row_objective(r), row_value(r), Verdict(r["verdict"]),
                "; ".join(f"{m} {VERDICT_TEXT[v]}" for m, v in r["months"].items()), _counted(r)] for r in totals]),
        Table("months", "Each month", "As each month's own report has it.",
              ("Month", "Row", "Service", "Measure", "Objective", "Measured", "Verdict"),
              [[rep["month"], str(r["row"]), r["service"], r["measure"], row_objective(r), row_value(r),
                Verdict(r["verdict"])] for rep in doc["reports"] for r in rep["rows"]]),
        Table("periods", "7-day periods", "Each month's, as its report has them: a period running past a month's "
              "end is judged on its days in that month there, and in full in the next month's report.",
              ("Month", "Period", "Service", "Requests", "Below the bounds", "p50", "p99", "Verdict"), _periods(doc)),
        Table("tickets", "Tickets", "Opened in each month; the last lines add the months up.",
              ("Month", "Priority", "Deadline (business h)", "Tickets", "Met", "Missed", "Pending", "Share met"),
              [[m, prio, f"{t['deadline_h']:g}", str(t["total"]), str(t["met"]), str(t["missed"]), str(t["pending"]),
                pct(t["ratio"], 1)] for m, prio, t in ticket_figures(doc)]),
    ]


def evidence_lines(doc: dict[str, Any]) -> list[str]:
    sig = doc["evidence"].get("signature")
    own = (f"the period's report: sha256 {doc['evidence']['report_sha256']}" +
           (f"; signed (ed25519, key {sig['key_sha256'][:16]}...)" if sig else "; not signed"))
    return [own] + [f"{rep['month']}: {evidence_line(rep)}" for rep in doc["reports"]]


def _head(doc: dict[str, Any]) -> str:
    return (f"Time zone {doc['timezone']}; generated {doc['generated_at']}"
            f"{'' if doc['complete'] else ' (period in progress)'}; months {', '.join(doc['period']['months'])}")


def simulated(doc: dict[str, Any]) -> str:
    """What the months' readings say of simulated figures (`sla-agent demo`), or nothing."""
    said = [f"{rep['month']}: {rep['readings']['data']}" for rep in doc["reports"] if "data" in rep["readings"]]
    return "; ".join(said)


VERIFY = "sla-agent report --verify REPORT.json"


def text(doc: dict[str, Any]) -> str:
    out = [f"{title(doc)}\n{_head(doc)}\n" + (f"{simulated(doc)}\n" if simulated(doc) else "")]
    for t in tables(doc):
        widths = [max([len(h)] + [len(r[i]) for r in t.rows]) for i, h in enumerate(t.header)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [list(t.header)] + t.rows]
        note = textwrap.fill(t.note, 110, initial_indent="  ", subsequent_indent="  ")
        out.append(f"\n{t.title}:\n{note}\n\n" + "\n".join(lines) + "\n")
    out.append("\nevidence:\n" + "".join(f"  {line}\n" for line in evidence_lines(doc)) + f"verify with {VERIFY}\n")
    return "".join(out)


def markdown(doc: dict[str, Any]) -> str:
    out = [f"# {md(title(doc))}\n\n{md(_head(doc))}.\n" + (f"\n**{md(simulated(doc))}**\n" if simulated(doc) else "")]
    for t in tables(doc):
        out.append(f"\n## {t.title}\n\n{md(t.note)}\n\n| " + " | ".join(t.header) + " |\n|" + "---|" * len(t.header)
                   + "\n")
        out += ["| " + " | ".join(Own(f"**{c}**") if isinstance(c, Verdict) else md(c) for c in row) + " |\n"
                for row in t.rows]
    out.append("\n## Evidence\n\n" + "".join(f"- {md(line)}\n" for line in evidence_lines(doc)) +
               f"\nVerify with `{VERIFY}`.\n")
    return "".join(out)


def _h(x: Any) -> str:
    return _html.escape(str(x), quote=True)


def _html_cell(label: str, c: str) -> str:
    """A cell named by its column: on a phone each row reads as a card (the monthly report's CSS)."""
    inner = f'<span class="verdict {c.key}">{_h(c)}</span>' if isinstance(c, Verdict) else _h(c)
    return f'<td data-label="{_h(label)}">{inner}</td>'


def html(doc: dict[str, Any]) -> str:
    out = [f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
           f'content="width=device-width,initial-scale=1"><title>{_h(title(doc))}</title>{FAVICON_LINK}'
           f'<style>{CSS}</style></head><body><h1>{_h(title(doc))}</h1><p class="small">{_h(_head(doc))}</p>']
    if simulated(doc):
        out.append(f'<p class="simulated" style="background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px">'
                   f"{_h(simulated(doc))}</p>")
    for t in tables(doc):
        out.append(f'<h2>{_h(t.title)}</h2><p class="small">{_h(t.note)}</p><table id="{t.id}" class="cards"><thead><tr>' +
                   "".join(f"<th>{_h(h)}</th>" for h in t.header) + "</tr></thead><tbody>")
        out += ["<tr>" + "".join(_html_cell(h, c) for h, c in zip(t.header, row)) + "</tr>" for row in t.rows]
        out.append("</tbody></table>")
    out.append('<h2>Evidence</h2><ul class="small">' + "".join(f"<li>{_h(line)}</li>" for line in evidence_lines(doc))
               + f"</ul><p class=\"small\">Verify with <code>{_h(VERIFY)}</code>.</p></body></html>\n")
    return "".join(out)


def csv(doc: dict[str, Any]) -> str:
    """One table (formats/csv.py): the monthly CSV's rows for each month, then the totals (month: `FROM to
    TO`), the ticket counts of each month and priority, and the 7-day periods."""
    span = f"{doc['period']['from']} to {doc['period']['to']}"
    rows = [row_cells(rep["month"], r) for rep in doc["reports"] for r in rep["rows"]]
    rows += [row_cells(span, r) for r in doc["period"]["totals"]["rows"]]
    tickets = ([m, prio, t["deadline_h"], t["total"], t["met"], t["missed"], t["pending"], cell(t["ratio"])]
               for m, prio, t in ticket_figures(doc))
    periods = ([rep["month"], p["service"], p["start"], p["end"], p["complete"], p["count"],
                cell({t: b["fraction"] for t, b in p["below"].items()}), p["verdict"]]
               for rep in doc["reports"] for p in rep["periods"])
    return one_table([("row", ROW_HEADER, rows),
                      ("tickets", ["month", "priority", "deadline_h", "total", "met", "missed", "pending", "ratio"],
                       tickets),
                      ("period", ["month", "service", "start", "end", "complete", "count", "below", "verdict"],
                       periods)])


RENDERERS = {"text": text, "markdown": markdown, "html": html, "csv": csv}
