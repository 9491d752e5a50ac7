"""The report as one self-contained HTML file: charts are inline SVG drawn here (no JavaScript, no
outside assets; it prints to PDF)."""
from __future__ import annotations

import html
import io
import json
import math
import urllib.parse
from typing import Any

from .common import (VERDICT_TEXT, counted, evidence_line, hops_line, kinds, location_rows, minutes, ms,
                     path_line, pct, record, row_objective, row_value, ticket_rows, unconfirmed_line)


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _daily_svg(service: str, days: list[dict[str, Any]], objective: float) -> str:
    w, h, left, bottom, top = 720, 200, 48, 28, 12
    vals = [d["ratio"] for d in days if d["ratio"] is not None]
    lo = min([objective - 0.01] + vals)
    lo = max(0.0, math.floor(lo * 100) / 100)
    n = max(len(days), 1)
    bw = (w - left - 8) / n

    def y(v: float) -> float:
        return top + (1 - (v - lo) / (1 - lo if lo < 1 else 1)) * (h - top - bottom)

    parts = [f'<svg class="chart daily" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" '
             f'height="{h}" role="img" aria-label="daily availability of {_e(service)}">',
             f'<text x="{left}" y="10" font-size="11">Daily availability, {_e(service)}</text>']
    for frac in (lo, (lo + 1) / 2, 1.0):
        parts.append(f'<line x1="{left}" x2="{w - 8}" y1="{y(frac):.1f}" y2="{y(frac):.1f}" stroke="#ddd"/>'
                     f'<text x="2" y="{y(frac) + 4:.1f}" font-size="10">{frac * 100:.1f}%</text>')
    for i, d in enumerate(days):
        x = left + i * bw
        if d["ratio"] is None:
            parts.append(f'<rect x="{x + 1:.1f}" y="{top}" width="{max(bw - 2, 1):.1f}" height="{h - top - bottom}" '
                         f'fill="#f0f0f0"><title>{_e(d["date"])}: no data</title></rect>')
            continue
        colour = "#1a7f37" if d["ratio"] >= objective else "#cf222e"
        parts.append(f'<rect x="{x + 1:.1f}" y="{y(d["ratio"]):.1f}" width="{max(bw - 2, 1):.1f}" '
                     f'height="{h - bottom - y(d["ratio"]):.1f}" fill="{colour}"><title>{_e(d["date"])}: '
                     f'{d["ratio"] * 100:.3f} %, {d["down_minutes"]} min down</title></rect>')
        if i % max(1, n // 10) == 0:
            parts.append(f'<text x="{x:.1f}" y="{h - 10}" font-size="9">{_e(d["date"][5:])}</text>')
    parts.append(f'<line x1="{left}" x2="{w - 8}" y1="{y(objective):.1f}" y2="{y(objective):.1f}" stroke="#000" '
                 f'stroke-dasharray="4 3"/><text x="{w - 60}" y="{y(objective) - 3:.1f}" font-size="10">'
                 f'{objective * 100:g} %</text></svg>')
    return "".join(parts)


def _location_strip_svg(service: str, doc: dict[str, Any]) -> str:
    """Under a daily chart: one strip per location, a cell per day, red as its own down minutes grow."""
    by = doc["locations"]["by_location"]
    w, left, row_h = 720, 48, 14
    n = max((len(e["daily"].get(service, [])) for e in by.values()), default=1) or 1
    bw = (w - left - 8) / n
    parts = [f'<svg class="chart locations" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {row_h * len(by) + 4}" '
             f'width="{w}" height="{row_h * len(by) + 4}" role="img" aria-label="each location, {_e(service)}">']
    for r, (name, entry) in enumerate(by.items()):
        y = 2 + r * row_h
        parts.append(f'<text x="2" y="{y + 10}" font-size="10">{_e(name[:8])}</text>')
        for i, d in enumerate(entry["daily"].get(service, [])):
            share = min(1.0, d["down_minutes"] / 60)
            colour = "#f0f0f0" if d["down_minutes"] == 0 else f"rgb(207,{int(34 + 180 * (1 - share))},46)"
            parts.append(f'<rect x="{left + i * bw + 1:.1f}" y="{y}" width="{max(bw - 2, 1):.1f}" height="{row_h - 3}" '
                         f'fill="{colour}"><title>{_e(name)} {_e(d["date"])}: {d["down_minutes"]} min down, '
                         f'{d["unknown_minutes"]} min without data</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def _locations(w: Any, doc: dict[str, Any]) -> None:
    rows = location_rows(doc)
    if not rows:
        return
    w(f'<h2>Locations</h2><p class="small">A slice is down when {doc["locations"]["min_agree"]} locations saw it '
      'down; seen down by fewer and up by none, it is unconfirmed: counted neither way.</p>'
      '<table id="locations"><thead><tr><th>Location</th><th>Figures</th></tr></thead><tbody>')
    for name, cells in rows:
        w(f"<tr><td>{_e(name)}</td><td>{'<br>'.join(_e(c) for c in cells)}</td></tr>")
    w('</tbody></table><h3>Unconfirmed minutes</h3><ul id="unconfirmed">')
    for u in doc["unconfirmed"] or [None]:
        w(f"<li>{_e(unconfirmed_line(u)) if u else 'none'}</li>")
    w("</ul>")


def _cdf_svg(p: dict[str, Any]) -> str:
    w, h, left, bottom, top = 360, 220, 44, 30, 14
    xmin, xmax = math.log10(0.01), math.log10(5.0)
    ylo = 0.9

    def X(sec: float) -> float:
        return left + (math.log10(sec) - xmin) / (xmax - xmin) * (w - left - 8)

    def Y(f: float) -> float:
        return top + (1 - (max(f, ylo) - ylo) / (1 - ylo)) * (h - top - bottom)

    parts = [f'<svg class="chart cdf" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" '
             f'height="{h}" role="img" aria-label="latency CDF {_e(p["start"][:10])}">',
             f'<text x="{left}" y="10" font-size="11">Latency CDF {_e(p["start"][:10])} to {_e(p["end"][:10])}'
             f' ({p["count"]} requests)</text>']
    for f in (0.9, 0.95, 1.0):
        parts.append(f'<line x1="{left}" x2="{w - 8}" y1="{Y(f):.1f}" y2="{Y(f):.1f}" stroke="#eee"/>'
                     f'<text x="2" y="{Y(f) + 4:.1f}" font-size="9">{f * 100:g}%</text>')
    for sec, label in ((0.01, "10ms"), (0.1, "100ms"), (1.0, "1s"), (5.0, "5s")):
        parts.append(f'<text x="{X(sec) - 10:.1f}" y="{h - 12}" font-size="9">{label}</text>')
    for t, b in p["below"].items():
        sec = float(t)
        parts.append(f'<line x1="{X(sec):.1f}" x2="{X(sec):.1f}" y1="{top}" y2="{h - bottom}" stroke="#888" '
                     f'stroke-dasharray="3 3"/><line x1="{left}" x2="{w - 8}" y1="{Y(b["objective"]):.1f}" '
                     f'y2="{Y(b["objective"]):.1f}" stroke="#888" stroke-dasharray="3 3"/>')
        if b["fraction"] is not None:
            colour = "#1a7f37" if b["met"] else "#cf222e"
            parts.append(f'<circle cx="{X(sec):.1f}" cy="{Y(b["fraction"]):.1f}" r="4" fill="{colour}">'
                         f'<title>{b["fraction"] * 100:.3f} % below {t} s (objective {b["objective"] * 100:g} %)'
                         f'</title></circle>')
    if p["cdf"]:
        pts = " ".join(f"{X(x):.1f},{Y(f):.1f}" for x, f in p["cdf"])
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#0969da" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _weekly_svg(periods: list[dict[str, Any]]) -> str:
    w, h, left, bottom, top = 720, 200, 48, 30, 14
    n = max(len(periods), 1)
    ylo = 0.9
    gw = (w - left - 8) / n

    def Y(f: float) -> float:
        return top + (1 - (max(f, ylo) - ylo) / (1 - ylo)) * (h - top - bottom)

    parts = [f'<svg class="chart weekly" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" '
             f'height="{h}" role="img" aria-label="weekly latency compliance">',
             f'<text x="{left}" y="10" font-size="11">Latency compliance per 7-day period</text>']
    for i, p in enumerate(periods):
        items = list(p["below"].items())
        bw = gw / (len(items) + 1)
        for j, (t, b) in enumerate(items):
            x = left + i * gw + j * bw + bw / 2
            f = b["fraction"]
            if f is None:
                continue
            colour = "#1a7f37" if b["met"] else "#cf222e"
            parts.append(f'<rect x="{x:.1f}" y="{Y(f):.1f}" width="{bw - 2:.1f}" height="{h - bottom - Y(f):.1f}" '
                         f'fill="{colour}" opacity="{0.6 + 0.4 * j / max(len(items) - 1, 1):.2f}"><title>'
                         f'{_e(p["start"][:10])}: {f * 100:.3f} % below {t} s</title></rect>'
                         f'<line x1="{x:.1f}" x2="{x + bw - 2:.1f}" y1="{Y(b["objective"]):.1f}" '
                         f'y2="{Y(b["objective"]):.1f}" stroke="#000" stroke-width="2"/>')
        parts.append(f'<text x="{left + i * gw + 4:.1f}" y="{h - 12}" font-size="9">{_e(p["start"][5:10])}</text>')
    for f in (0.9, 0.95, 1.0):
        parts.append(f'<text x="2" y="{Y(f) + 4:.1f}" font-size="9">{f * 100:g}%</text>')
    parts.append("</svg>")
    return "".join(parts)


CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#1f2328;max-width:1000px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
th{background:#f6f8fa}.verdict{font-weight:bold;color:#fff;padding:2px 6px;border-radius:3px}
.verdict.met{background:#1a7f37}.verdict.missed{background:#cf222e}.verdict.insufficient_data{background:#9a6700}.verdict.no_data{background:#6e7781}
.fig{white-space:nowrap}.small{font-size:12px;color:#57606a}.swatch{display:inline-block;width:10px;height:10px;border:1px solid #999}svg{display:block;margin:8px 0}svg.cdf{display:inline-block;margin-right:8px}
@page{size:A4;margin:12mm 12mm 20mm}
@media print{body{margin:0;max-width:none;font-size:12px}h1{margin-top:0}h2{break-after:avoid}table{width:100%;font-size:11px;table-layout:auto}td{overflow-wrap:anywhere}#rows td{overflow-wrap:break-word}tr,svg,.legend{break-inside:avoid}svg{max-width:100%;height:auto}svg.cdf{width:48%}.verdict{border:1.5px solid currentColor;white-space:nowrap}.verdict.met{color:#1a7f37;background:none}.verdict.missed{color:#cf222e;background:none}.verdict.insufficient_data{color:#9a6700;background:none}.verdict.no_data{color:#57606a;background:none}}
"""


def _legend(*items: tuple[str, str]) -> str:
    """A chart's legend: colour swatches (or a dashed/solid line) and what they mean."""
    cells = []
    for colour, text in items:
        if colour in ("dash", "line"):
            dash = ' stroke-dasharray="4 3"' if colour == "dash" else ' stroke-width="2"'
            mark = f'<svg width="18" height="10" style="display:inline"><line x1="0" x2="18" y1="5" y2="5" ' \
                   f'stroke="#000"{dash}/></svg>'
        else:
            mark = f'<span class="swatch" style="background:{colour}"></span>'
        cells.append(f"{mark} {_e(text)}")
    return '<p class="legend small">' + " &nbsp; ".join(cells) + "</p>"


def _figs(text: str) -> str:
    """A figure never cut from its unit and bound ("100.000 % < 1 s"): a cell wraps between figures only."""
    return ", ".join(f'<span class="fig">{_e(part)}</span>' for part in text.split(", "))


def _rows(w: Any, doc: dict[str, Any]) -> None:
    w('<h2>Service levels</h2><table id="rows"><thead><tr><th>Row</th><th>Service</th><th>Measure</th>'
      "<th>Objective</th><th>Measured</th><th>Verdict</th></tr></thead><tbody>")
    for r in doc["rows"]:
        w(f'<tr class="row" data-row="{r["row"]}"><td>{r["row"]}</td><td>{_e(r["service"])}</td>'
          f'<td>{_e(r["measure"])}</td><td>{_figs(row_objective(r))}</td><td>{_figs(row_value(r))}</td>'
          f'<td><span class="verdict {r["verdict"]}">{VERDICT_TEXT[r["verdict"]]}</span></td></tr>')
    w("</tbody></table>")


def _latency(w: Any, doc: dict[str, Any]) -> None:
    w("<h2>Latency per 7-day period</h2>")
    w(_weekly_svg(doc["periods"]))
    w(_legend(("#1a7f37", "share below a bound, objective met"), ("#cf222e", "objective missed"),
              ("line", "the objective of each bound (one bar per bound, lighter = lower bound)")))
    w('<table id="periods"><thead><tr><th>Period</th><th>Service</th><th>Requests</th><th>Below the bounds</th>'
      "<th>p50</th><th>p99</th><th>Verdict</th></tr></thead><tbody>")
    for p in doc["periods"]:
        q = p["quantiles_s"]
        below = ", ".join(f"{pct(b['fraction'])} &lt; {_e(t)} s" for t, b in p["below"].items())
        w(f'<tr><td>{_e(p["start"][:10])} to {_e(p["end"][:10])}</td><td>{_e(p["service"])}</td>'
          f'<td>{p["count"]}</td><td>{below}</td><td>{_e(ms(q.get("0.5")))}</td><td>{_e(ms(q.get("0.99")))}</td>'
          f'<td><span class="verdict {p["verdict"]}">{VERDICT_TEXT[p["verdict"]]}</span></td></tr>')
    w("</tbody></table>")
    if any(p["count"] for p in doc["periods"]):
        w(_legend(("#0969da", "share of requests faster than the time on the x axis"),
                  ("dash", "the bounds (vertical) and their objectives (horizontal)")))
    for p in doc["periods"]:
        if p["count"]:
            w(_cdf_svg(p))
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
    w('<table id="incidents"><thead><tr><th>Start</th><th>End</th><th>Minutes</th><th>Service</th><th>Targets</th>'
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
    w("</tbody></table>")


def _tickets(w: Any, doc: dict[str, Any]) -> None:
    w('<h2>Tickets</h2><table id="tickets"><thead><tr><th>Priority</th><th>Deadline (business h)</th>'
      "<th>Tickets</th><th>Met</th><th>Missed</th><th>Pending</th><th>Share met</th></tr></thead><tbody>")
    for prio, t in doc["tickets"].items():
        w(f'<tr><td>{prio}</td><td>{t["deadline_h"]:g}</td><td>{t["total"]}</td><td>{t["met"]}</td>'
          f'<td>{t["missed"]}</td><td>{t["pending"]}</td><td>{_e(pct(t["ratio"], 1))}</td></tr>')
    w('</tbody></table><table id="ticket-list"><thead><tr><th>Ticket</th><th>Priority</th><th>Opened</th>'
      "<th>Answered</th><th>Business delay</th><th>Deadline</th><th>State</th></tr></thead><tbody>")
    for prio, t, this_month in ticket_rows(doc):
        w(f'<tr class="{t["state"]}"><td>{_e(t["id"])}</td><td>{prio}</td><td>{_e(t["opened_at"])}</td>'
          f'<td>{_e(t["responded_at"] or "-")}</td><td>{_e(t["business_response"])}</td><td>{_e(t["deadline"])}</td>'
          f'<td>{_e(t["state"])}{"" if this_month else " (opened in another month: not counted)"}</td></tr>')
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
    w(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>SLA report {_e(doc["month"])}</title>'
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
        w(_daily_svg(svc, days, obj))
        if doc.get("locations"):
            w(_location_strip_svg(svc, doc))
    w(_legend(("#1a7f37", f"day at or above {obj * 100:g} %"), ("#cf222e", "day below it"),
              ("#f0f0f0", "no data (or not begun)"), ("dash", "the objective")))
    _locations(w, doc)
    _latency(w, doc)
    _incidents(w, doc)
    _tickets(w, doc)
    _footer(w, doc)
    w("</body></html>\n")
    return out.getvalue()
