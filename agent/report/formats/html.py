"""The report as one self-contained HTML file: charts are inline SVG (charts.py; no JavaScript, no outside
assets); it reads on a phone and prints to PDF."""
from __future__ import annotations

import html
import io
import json
import urllib.parse
from typing import Any

from .charts import cdf_svg, daily_svg, legend, location_strip_svg, weekly_svg
from .common import (FAVICON_LINK, STATE_COLOUR, VERDICT_COLOUR, VERDICT_TEXT, counted, evidence_line, hops_line,
                     kinds, location_rows, minutes, ms, noted_periods, path_line, pct, record, row_objective, row_value,
                     ticket_rows, unconfirmed_line)


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _locations(w: Any, doc: dict[str, Any]) -> None:
    rows = location_rows(doc)
    if not rows:
        return
    w(f'<h2>Locations</h2><p class="small">A slice is down when {doc["locations"]["min_agree"]} locations saw it '
      'down; seen down by fewer and up by none, it is unconfirmed: counted neither way.</p>'
      '<div class="wide"><table id="locations"><thead><tr><th>Location</th><th>Figures</th></tr></thead><tbody>')
    for name, cells in rows:
        w(f"<tr><td>{_e(name)}</td><td>{'<br>'.join(_e(c) for c in cells)}</td></tr>")
    w('</tbody></table></div><h3>Unconfirmed minutes</h3><ul id="unconfirmed">')
    for u in doc["unconfirmed"] or [None]:
        w(f"<li>{_e(unconfirmed_line(u)) if u else 'none'}</li>")
    w("</ul>")


def _badges(screen: bool) -> str:
    """A badge per verdict and ticket state: white on its colour on screen, its colour on white in print."""
    pairs = [(f".verdict.{k}", c) for k, c in VERDICT_COLOUR.items()] + [(f".badge.{k}", c) for k, c in STATE_COLOUR.items()]
    return "".join(f"{sel}{{background:{c}}}" if screen else f"{sel}{{color:{c};background:none}}" for sel, c in pairs)


# On a phone (under 640 px) the tables holding a verdict or a state read as one card per row, each cell named
# by its column, so the verdict is never off the screen; the other tables scroll inside their own box.
CSS = ("""
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#1f2328;max-width:1000px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}p,li{overflow-wrap:anywhere}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
th{background:#f6f8fa}.verdict,.badge{font-weight:bold;color:#fff;padding:2px 6px;border-radius:3px;white-space:nowrap}
""" + _badges(True) + """
.wide{overflow-x:auto;max-width:100%}.wide table{margin:0}
.fig{white-space:nowrap}.small{font-size:12px;color:#57606a}.swatch{display:inline-block;width:10px;height:10px;border:1px solid #999}
figure{margin:8px 0;max-width:720px}figcaption{font-size:13px;font-weight:600}svg{display:block}
svg.chart{width:100%;height:auto;margin:4px 0}figure.cdf{display:inline-block;width:360px;max-width:100%;vertical-align:top;margin:0 8px 8px 0}
@media screen and (max-width:640px){body{margin:10px}table.cards,table.cards tbody,table.cards tr,table.cards td{display:block}
table.cards thead{display:none}table.cards tr{border:1px solid #d0d7de;border-radius:4px;margin:0 0 8px;padding:4px 6px}
table.cards td{border:none;padding:2px 0}table.cards td[data-label]::before{content:attr(data-label) ": ";font-weight:600}}
@page{size:A4;margin:12mm 12mm 20mm}
@media print{body{margin:0;max-width:none;font-size:12px}h1{margin-top:0}h2{break-after:avoid}table{width:100%;font-size:11px;table-layout:auto}td{overflow-wrap:anywhere}#rows td{overflow-wrap:break-word}tr,figure,.legend{break-inside:avoid}.wide{overflow:visible}figure{max-width:100%}figure.cdf{width:48%}.verdict,.badge{border:1.5px solid currentColor;white-space:nowrap}"""
       + _badges(False) + "}\n")


def _cells(labels: tuple[str, ...], cells: list[str]) -> str:
    """A row's cells, each named by its column (a phone shows the name beside it)."""
    return "".join(f'<td data-label="{_e(label)}">{cell}</td>' for label, cell in zip(labels, cells))


def _figs(text: str) -> str:
    """A figure never cut from its unit and bound ("100.000 % < 1 s"): a cell wraps between figures only."""
    return ", ".join(f'<span class="fig">{_e(part)}</span>' for part in text.split(", "))


def _rows(w: Any, doc: dict[str, Any]) -> None:
    labels = ("Row", "Service", "Measure", "Objective", "Measured", "Verdict")
    w('<h2>Service levels</h2><table id="rows" class="cards"><thead><tr>' + "".join(f"<th>{h}</th>" for h in labels)
      + "</tr></thead><tbody>")
    for r in doc["rows"]:
        w(f'<tr class="row" data-row="{r["row"]}">' + _cells(labels, [
            str(r["row"]), _e(r["service"]), _e(r["measure"]), _figs(row_objective(r)), _figs(row_value(r)),
            f'<span class="verdict {r["verdict"]}">{VERDICT_TEXT[r["verdict"]]}</span>']) + "</tr>")
    w("</tbody></table>")


def _latency(w: Any, doc: dict[str, Any]) -> None:
    w("<h2>Latency per 7-day period</h2>")
    w(weekly_svg(doc["periods"]))
    w(legend(*[(VERDICT_COLOUR[k], f"share below a bound, period {VERDICT_TEXT[k]}") for k in VERDICT_COLOUR
               if any(p["verdict"] == k for p in doc["periods"])],
             ("line", "the objective of each bound (one bar per bound, lighter = lower bound)")))
    labels = ("Period", "Service", "Requests", "Below the bounds", "p50", "p99", "Verdict")
    w('<table id="periods" class="cards"><thead><tr>' + "".join(f"<th>{h}</th>" for h in labels)
      + "</tr></thead><tbody>")
    for p in doc["periods"]:
        q = p["quantiles_s"]
        below = ", ".join(f"{pct(b['fraction'])} &lt; {_e(t)} s" for t, b in p["below"].items())
        w("<tr>" + _cells(labels, [f'{_e(p["start"][:10])} to {_e(p["end"][:10])}', _e(p["service"]), str(p["count"]),
                                   below, _e(ms(q.get("0.5"))), _e(ms(q.get("0.99"))),
                                   f'<span class="verdict {p["verdict"]}">{VERDICT_TEXT[p["verdict"]]}</span>'])
          + "</tr>")
    w("</tbody></table>")
    for line in noted_periods(doc):  # beside the table: what a table holds is compared across versions as it is
        style = ' style="background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px"' if "SIMULATED" in line else ""
        w(f'<p class="small period-note"{style}>{_e(line)}</p>')
    if any(p["count"] for p in doc["periods"]):
        w(legend(("#0969da", "share of requests faster than the time on the x axis"),
                  ("dash", "the bounds (vertical) and their objectives (horizontal)")))
    for p in doc["periods"]:
        if p["count"]:
            w(cdf_svg(p))
    empty = [f'{p["start"][:10]} to {p["end"][:10]} ({p["service"]})' for p in doc["periods"] if not p["count"]]
    if empty:
        w(f'<p class="small" id="periods-without-data">No request yet in: {_e("; ".join(empty))}.</p>')


def _journal_link(i: dict[str, Any]) -> str:
    q = urllib.parse.urlencode({"service": i["service"], "from": i["start"], "to": i["end"]})
    return f'<a href="api/v1/journal?{_e(q)}">{i["journal"]["records"]} records</a>'


def _incidents(w: Any, doc: dict[str, Any]) -> None:
    w('<h2>Failure episodes</h2><p class="small">Runs of minutes with a down probe. Degraded minutes had down '
      "probes below the slice rule: shown, not counted.</p>")
    if not doc["incidents"]:
        w('<p id="no-incidents">No failure this month.</p>')
        return
    w('<div class="wide"><table id="incidents"><thead><tr><th>Start</th><th>End</th><th>Minutes</th><th>Service</th><th>Targets</th>'
      "<th>Errors</th><th>Counted</th><th>Journal</th></tr></thead><tbody>")
    for i in doc["incidents"]:
        j = i["journal"]
        w(f'<tr><td>{_e(i["start"])}</td><td>{_e(i["end"])}</td><td>{_e(minutes(i))}</td>'
          f'<td>{_e(i["service"])}</td><td>{_e(", ".join(i["targets"]))}</td><td>{_e(kinds(i))}</td>'
          f'<td>{_e(counted(i))}</td><td>{_journal_link(i)}<br><span class="small">first {_e(record(j["first"]))}'
          f'<br>last {_e(record(j["last"]))}</span></td></tr>')
        for p in i.get("paths", ()):
            w(f'<tr class="path"><td></td><td colspan="7">Path {_e(path_line(p))}'
              f'<br><span class="small">{_e(hops_line(p))}</span></td></tr>')
    w("</tbody></table></div>")


def _tickets(w: Any, doc: dict[str, Any]) -> None:
    w('<h2>Tickets</h2><div class="wide"><table id="tickets"><thead><tr><th>Priority</th><th>Deadline (business h)</th>'
      "<th>Tickets</th><th>Met</th><th>Missed</th><th>Pending</th><th>Share met</th></tr></thead><tbody>")
    for prio, t in doc["tickets"].items():
        w(f'<tr><td>{prio}</td><td>{t["deadline_h"]:g}</td><td>{t["total"]}</td><td>{t["met"]}</td>'
          f'<td>{t["missed"]}</td><td>{t["pending"]}</td><td>{_e(pct(t["ratio"], 1))}</td></tr>')
    labels = ("Ticket", "Priority", "Opened", "Answered", "Business delay", "Deadline", "State")
    w('</tbody></table></div><table id="ticket-list" class="cards"><thead><tr>' + "".join(f"<th>{h}</th>" for h in labels)
      + "</tr></thead><tbody>")
    for prio, t, this_month in ticket_rows(doc):  # the state a badge: a row coloured whole read at 3:1
        state = f'<span class="badge {_e(t["state"])}">{_e(t["state"])}</span>'
        w(f'<tr data-state="{_e(t["state"])}">' + _cells(labels, [
            _e(t["id"]), prio, _e(t["opened_at"]), _e(t["responded_at"] or "-"), _e(t["business_response"]),
            _e(t["deadline"]), state + ("" if this_month else " (opened in another month: not counted)")]) + "</tr>")
    w("</tbody></table>")


def _footer(w: Any, doc: dict[str, Any]) -> None:
    w("<h2>Maintenance and exclusions</h2><ul>")
    for x in doc["maintenance"] + doc["exclusions"]:
        w(f'<li>{_e(x["kind"])} {_e(x["start"])} to {_e(x["end"])}: {_e(x["reason"])}</li>')
    w("</ul><h2>Coverage and readings</h2><ul>")
    for s, v in doc["coverage"]["services"].items():
        w(f'<li>{_e(s)}: {_e(pct(v["ratio"], 2))} of eligible time observed</li>')
    for k, v in doc["readings"].items():
        w(f"<li>{_e(k)}: {_e(v if isinstance(v, str) else json.dumps(v))}</li>")
    w(f'</ul><p class="small">Evidence: {_e(evidence_line(doc))}. Verify with '
      f"<code>sla-agent report --verify REPORT.json</code>.</p>")


def render(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    w = out.write
    w(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
      f'content="width=device-width,initial-scale=1"><title>SLA report {_e(doc["month"])}</title>{FAVICON_LINK}'
      f"<style>{CSS}</style></head><body>")
    w(f'<h1>SLA report {_e(doc["month"])}</h1><p class="small">Time zone {_e(doc["timezone"])}; generated '
      f'{_e(doc["generated_at"])}{"" if doc["complete"] else " (month in progress)"}; sla-agent '
      f'{_e(doc.get("agent_version", ""))}</p>')
    if "data" in doc.get("readings", {}):
        w(f'<p class="simulated" style="background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px">'
          f'{_e(doc["readings"]["data"])}</p>')
    _rows(w, doc)
    obj = next((r["objective"] for r in doc["rows"] if r["measure"] == "availability"), 0.99)
    w("<h2>Daily availability</h2>")
    for svc, days in doc["daily"].items():
        w(daily_svg(svc, days, obj))
        if doc.get("locations"):
            w(location_strip_svg(svc, doc))
    w(legend(("#1a7f37", f"day at or above {obj * 100:g} %"), ("#cf222e", "day below it"),
              ("#f0f0f0", "no data (or not begun)"), ("dash", "the objective")))
    _locations(w, doc)
    _latency(w, doc)
    _incidents(w, doc)
    _tickets(w, doc)
    _footer(w, doc)
    w("</body></html>\n")
    return out.getvalue()
