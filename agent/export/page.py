"""The live status page at `/`: the month to date against the contract, at a glance. Server-rendered
HTML with inline SVG, no script and no external asset; it reloads itself every 30 s and reads on a
phone. Built from what /api/v1/status and the month's report already hold."""
from __future__ import annotations

import html
from typing import Any

from ..report.formats.common import FAVICON_LINK, VERDICT_TEXT, row_objective, row_value
from . import banner, charts
from .banner import hm

REFRESH_S = 30
CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:16px;color:#1f2328;max-width:980px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border-bottom:1px solid #e5e7eb;padding:5px 6px;
text-align:left;vertical-align:top}th{background:#f6f8fa}.small{font-size:12px;color:#57606a}
.v{font-weight:bold;color:#fff;padding:1px 6px;border-radius:3px;white-space:nowrap}.met,.up{background:#1a7f37}
.missed,.down{background:#cf222e}.insufficient_data,.inconclusive{background:#9a6700}.no_data,.unknown{background:#6e7781}
.sim{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;margin:8px 0}a{color:#0969da}
@media (max-width:640px){body{margin:8px}td,th{padding:4px 3px;font-size:12px}.wide{display:none}}
"""
# `/` only (the archive's pages share CSS): tables that wrap rather than widen the page on a phone, the
# banner, the charts
PAGE_CSS = """
table{table-layout:fixed}td,th{overflow-wrap:anywhere}td .v{white-space:normal;display:inline-block;overflow-wrap:normal}svg.budget{width:100%;max-width:120px;height:12px}
#objectives th:last-child,#objectives td:last-child,#latency td:last-child{width:9em}.banner{list-style:none;padding:0;margin:6px 0}
.banner li{margin:4px 0;padding:6px 8px;border-left:6px solid #6e7781;background:#f6f8fa}
.banner li.on_track{border-color:#1a7f37}.banner li.at_risk{border-color:#9a6700}.banner li.lost{border-color:#cf222e}
.v.on_track{background:#1a7f37}.v.at_risk{background:#9a6700}.v.lost{background:#cf222e}.v.pending{background:#6e7781}
.failing{color:#a40e26;font-weight:bold}
@media (max-width:640px){#objectives th:nth-child(2),#objectives td:nth-child(2){display:none}
#objectives th:last-child,#objectives td:last-child,#latency td:last-child{width:8.5em}td .v{font-size:11px}}
""" + charts.CSS


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _pct(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f} %"


def _budget_svg(remaining: float | None, state: str) -> str:
    """A bar of the month's error budget left, coloured by the row's headline: red only once it is lost."""
    r = 0.0 if remaining is None else max(0.0, min(1.0, remaining))
    colour = charts.STATE_COLOURS[state]
    return (f'<svg class="budget" width="120" height="12" role="img" aria-label="budget left {r * 100:.0f} %">'
            f'<rect width="120" height="12" fill="#eee"/><rect width="{120 * r:.1f}" height="12" fill="{colour}"/>'
            "</svg>")


def _budget_text(d: dict[str, Any]) -> str:
    """What is left of the month's down time, and where the recent burn leads."""
    left = d["budget_remaining_s"]
    text = "lost" if d["lost"] else f"{hm(left)} left"
    if d.get("projected_ratio") is not None and not d["lost"]:
        text += f", heading for {_pct(d['projected_ratio'])}"
    return _e(text)


def _open_tickets(w: Any, status: dict[str, Any]) -> None:
    rows = sorted((t for figures in status["tickets"].values() for t in figures.get("open", [])),
                  key=lambda t: t["business_left_s"])
    if not rows:
        return
    w('<h2>Tickets waiting for a first response</h2><table id="open-tickets"><thead><tr><th>Ticket</th>'
      '<th>Priority</th><th>Opened</th><th>Business time left</th></tr></thead><tbody>')
    for t in rows:
        left = t["business_left_s"]
        w(f'<tr><td>{_e(t["id"])}</td><td>{_e(t["priority"])}</td><td>{_e(t["opened_at"])}</td>'
          f'<td>{"missed by " + hm(-left) if left < 0 else hm(left)}</td></tr>')
    w("</tbody></table>")


def _objectives(w: Any, report: dict[str, Any], states: dict[int, str]) -> None:
    w('<h2>The contract, month to date</h2><table id="objectives"><thead><tr><th>Row</th><th>Objective</th>'
      '<th>Measured</th><th>Budget left</th><th class="wide">Burn rate</th><th>Verdict</th></tr></thead><tbody>')
    for r in report["rows"]:
        d = r["details"] if r["measure"] == "availability" else None
        budget = burn = ""
        if d is not None:
            budget = f'{_budget_svg(d["budget_remaining_ratio"], states[r["row"]])} {_budget_text(d)}'
            burn = "-" if d["burn_rate"] is None else f'{d["burn_rate"]:.2f}'
        w(f'<tr class="objective"><td>{r["row"]}. {_e(r["service"])} {_e(r["measure"])}</td>'
          f"<td>{_e(row_objective(r))}</td><td>{_e(row_value(r))}</td><td>{budget}</td>"
          f'<td class="wide">{_e(burn)}</td><td><span class="v {r["verdict"]}">{VERDICT_TEXT[r["verdict"]]}</span>'
          "</td></tr>")
    w("</tbody></table>")


def _targets(w: Any, status: dict[str, Any]) -> None:
    w('<h2>Targets and control checks now</h2><table id="targets"><thead><tr><th>Target</th><th>Service</th>'
      '<th>State</th><th>Since</th><th class="wide">Last probe</th></tr></thead><tbody>')
    for name, t in status["targets"].items():
        outcome = t["outcome"] or "unknown"
        last = "-" if t["duration_s"] is None else f'{t["duration_s"] * 1000:.0f} ms'
        if t["error"]:
            last += f' ({_e(t["error_kind"])}: {_e(t["error"])})'
        w(f'<tr class="target"><td>{_e(name)}</td><td>{_e("control" if t["control"] else t["service"])}</td>'
          f'<td><span class="v {outcome}">{_e(outcome)}</span></td><td>{_e((t["state_since"] or "-")[11:19])}</td>'
          f'<td class="wide">{last}</td></tr>')
    w("</tbody></table>")


def _latency(w: Any, status: dict[str, Any], report: dict[str, Any]) -> None:
    w('<h2>Latency, current 7-day period</h2><table id="latency"><tbody>')
    for svc, s in status["services"].items():
        p = s.get("latency", {}).get("period")
        if p is None:
            continue
        simulated = next((r["simulated"] for r in report["periods"]
                          if r["service"] == svc and r["start"] == p["start"] and r.get("simulated")), None)
        below = ", ".join(f'{_pct(b["fraction"])} &lt; {_e(t)} s (objective {b["objective"] * 100:g} %)'
                          for t, b in p["below"].items())
        w(f'<tr><td>{_e(svc)}</td><td class="wide">{_e(p["start"][:10])} to {_e(p["end"][:10])}</td><td>{p["count"]} requests'
          f'</td><td>{below}{_simulated_days(simulated)}</td>'
          f'<td><span class="v {p["verdict"]}">{VERDICT_TEXT[p["verdict"]]}</span></td></tr>')
    w("</tbody></table>")


def _simulated_days(months: list[str] | None) -> str:
    """The current period read across the month's edge into a month the demo simulated: its figures mix them."""
    if not months:
        return ""
    return (f'<br><span class="sim simulated-days">holds the SIMULATED days of {_e(", ".join(months))}: '
            "not measured</span>")


def _incidents(w: Any, report: dict[str, Any]) -> None:
    w("<h2>Incidents this month</h2>")
    recent = report["incidents"][-10:][::-1]
    if not recent:
        w('<p id="no-incidents">No failure episode this month.</p>')
        return
    w('<table id="incidents"><thead><tr><th>Start</th><th>Service</th><th>Minutes</th><th class="wide">Errors'
      "</th><th>Counted down</th></tr></thead><tbody>")
    for i in recent:
        kinds = ", ".join(f"{k} x{n}" for k, n in i["error_kinds"].items())
        w(f'<tr class="incident"><td>{_e(i["start"][5:16].replace("T", " "))}</td><td>{_e(i["service"])}</td>'
          f'<td>{i["down_minutes"] + i["degraded_minutes"]}</td><td class="wide">{_e(kinds)}</td>'
          f'<td>{i["counted_minutes"]} min</td></tr>')
    w("</tbody></table>")


def _delivery(w: Any, status: dict[str, Any]) -> None:
    """One line per delivery channel of the last closed month: said plainly while it fails."""
    for name, ch in sorted(status.get("delivery", {}).items()):
        what = f'{ch.get("month", "")} ({ch.get("revision", "")}) by {"mail" if name == "email" else name}'
        if ch.get("state") == "sent":
            text, cls = f"sent after {ch.get('attempts', 1)} attempt(s)", "small"
        else:
            state = {"failed": "given up after a day", "retrying": "not delivered yet, retrying"}.get(
                ch.get("state", ""), "being delivered")
            text, cls = f"{state} ({ch.get('attempts', 0)} attempts; last error: {ch.get('error', '')})", "sim"
        w(f'<p class="{cls} delivery" data-channel="{_e(name)}">Delivery of {_e(what)}: {_e(text)}</p>')


def _banner(w: Any, heads: list[dict[str, Any]]) -> None:
    """Final-looking states and those without enough data in two lists: a blank is never read as a verdict."""
    def item(h: dict[str, Any]) -> str:
        failing = "".join(f' <span class="failing">failing now: {_e(t)} since {_e(since)} (counted once its '
                          "minutes close)</span>" for t, since in h["failing"])
        return (f'<li class="{h["state"]}" data-row="{h["row"]}" data-state="{h["state"]}"><span class="v '
                f'{h["state"]}">{banner.TEXT[h["state"]]}</span> <b>{h["row"]}. {_e(h["service"])} '
                f'{_e(h["measure"])}</b>: {_e(h["figure"])}{failing}</li>')
    judged = [h for h in heads if h["state"] != banner.PENDING]
    pending = [h for h in heads if h["state"] == banner.PENDING]
    w('<section id="banner"><h2>Where the month is heading</h2>')
    if judged:
        w('<ul class="banner" id="banner-verdicts">' + "".join(item(h) for h in judged) + "</ul>")
    if pending:
        w('<p><b>Not enough data yet for a verdict:</b></p><ul class="banner" id="banner-pending">'
          + "".join(item(h) for h in pending) + "</ul>")
    w('<p class="small">' + " · ".join(f"{banner.TEXT[s]}: {m}" for s, m in banner.MEANING.items())
      + ". The verdict column below judges only what is observed.</p></section>")


def _history(w: Any, status: dict[str, Any], report: dict[str, Any], history: dict[str, Any],
             states: dict[int, str]) -> None:
    w('<h2>History</h2><section id="strips">')
    for name, s in history["strips"].items():
        w(charts.strips(name, s, status["targets"].get(name)))
    w(charts.strip_keys() + "</section>")
    for svc, lat in history["latency"].items():
        w(f"<h3>{_e(svc)}: latency of the 7-day period from {_e(lat['start'][:10])}, hour by hour</h3>"
          + charts.latency_chart(svc, lat))
    for r in report["rows"]:
        if r["measure"] == "availability":
            w(f"<h3>{_e(r['service'])}: the month's down time budget</h3>" + charts.burn_down(
                r["service"], r, report["daily"].get(r["service"], []), states[r["row"]], history["until"]))


def render_page(status: dict[str, Any], report: dict[str, Any], next_window: dict[str, Any] | None,
                closed: tuple[str, str] | None = None, history: dict[str, Any] | None = None) -> str:
    """`closed`: the last closed month and its latest revision (the archive at /reports), if any;
    `history`: report.history's strips and hourly latency, drawn when given."""
    out: list[str] = []
    w = out.append
    month = report["month"]
    w(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
      f'content="width=device-width,initial-scale=1"><meta http-equiv="refresh" content="{REFRESH_S}">'
      f"<title>SLA {_e(month)}: status</title>{FAVICON_LINK}<style>{CSS}{PAGE_CSS}</style></head><body>")
    w(f'<h1>SLA status, {_e(month)}</h1><p class="small">Now {_e(status["now"])} (contract time '
      f'{_e(status["timezone"])}); figures of {_e(status["evaluated_at"])}; this page reloads every {REFRESH_S} s. '
      f'<a href="report?month={_e(month)}">The month\'s report</a> · <a href="metrics">/metrics</a> · '
      '<a href="api/v1/status">status as JSON</a></p>')
    if closed is not None:
        month, rev = closed
        w(f'<p class="small" id="last-closed">Last closed month: <a href="reports/{_e(month)}/{_e(rev)}/report.html">'
          f'{_e(month)}</a> ({_e(rev)}) · <a href="reports">every closed month</a></p>')
    _delivery(w, status)
    if "data" in report.get("readings", {}):
        w(f'<p class="sim">{_e(report["readings"]["data"])}</p>')
    if status["maintenance_active"]:
        w(f'<p class="sim" id="maintenance-now">Maintenance window now: {_e(status["maintenance"])}</p>')
    heads = banner.verdicts(status, report)
    states = {h["row"]: h["state"] for h in heads}
    _banner(w, heads)
    _objectives(w, report, states)
    _open_tickets(w, status)
    if history is not None:
        _history(w, status, report, history, states)
    _targets(w, status)
    _latency(w, status, report)
    _incidents(w, report)
    w("<h2>Next maintenance window</h2>")
    w(f'<p id="next-window">{_e(next_window["start"])} to {_e(next_window["end"][11:])}: {_e(next_window["reason"])}'
      "</p>" if next_window else '<p id="next-window">None in the next 8 days.</p>')
    w("</body></html>\n")
    return "".join(out)
