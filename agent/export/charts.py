"""The status page's inline SVG: the heartbeat strips, the 7-day period's latency hour by hour, the month's
budget burn-down. Each scales to the page's width (viewBox, width 100 %); colours say a state or a
verdict, never a figure's size alone."""
from __future__ import annotations

import calendar
import datetime as dt
import html
from typing import Any

from ..report.formats.common import pct

STATE_COLOURS = {"on_track": "#1a7f37", "at_risk": "#9a6700", "lost": "#cf222e", "pending": "#6e7781"}
CSS = """
svg.strip{display:block;width:100%;height:14px;background:#f6f8fa}svg.chart{display:block;width:100%;max-width:640px;height:auto}
rect.up{fill:#1a7f37}rect.down{fill:#cf222e}rect.degraded{fill:#fb8f44}rect.masked{fill:#8250df}
rect.unknown{fill:#afb8c1}.strip-row{margin:6px 0}.keys span{display:inline-block;margin-right:10px}
.key{display:inline-block;width:10px;height:10px;margin-right:3px;vertical-align:middle}
"""
KEYS = (("up", "#1a7f37"), ("degraded", "#fb8f44"), ("down", "#cf222e"), ("masked", "#8250df"),
        ("unknown", "#afb8c1"))


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _title(r: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {k}" for k, n in r["minutes"].items())
    return f'{r["from"][5:16].replace("T", " ")} to {r["to"][5:16].replace("T", " ")}: {r["state"]} ({counts} min)'


def _cells(runs: list[dict[str, Any]], grain: str) -> str:
    return "".join(f'<rect x="{r["a"]}" width="{r["b"] - r["a"]}" height="1" class="{r["state"]} cell" '
                   f'data-grain="{grain}" data-state="{r["state"]}" data-from="{_e(r["from"])}" '
                   f'data-to="{_e(r["to"])}" data-minutes="{_e(_minutes(r))}"><title>{_e(_title(r))}</title></rect>'
                   for r in runs)


def _minutes(r: dict[str, Any]) -> str:
    return " ".join(f"{k}:{n}" for k, n in sorted(r["minutes"].items()))


def strips(name: str, s: dict[str, Any], live: dict[str, Any] | None) -> str:
    """The month's hours, then the last closed minutes and the open one (the target's live state: a
    failing probe shows at once, before its minute closes and counts)."""
    n = s["minutes"]
    outcome = (live or {}).get("outcome") or "unknown"
    state = {"up": "up", "down": "down"}.get(outcome, "unknown")
    since = (live or {}).get("state_since") or ""
    now = (f'<rect x="{n + 1}" width="2" height="1" class="{state} cell open" data-grain="open" data-state="{state}">'
           f'<title>now: {_e("failing" if state == "down" else state)}{" since " + _e(since[11:19]) if since else ""}'
           f' (the open minute counts once it closes)</title></rect>')
    return (f'<div class="strip-row" data-target="{_e(name)}"><b>{_e(name)}</b>'
            f'<svg class="strip month" viewBox="0 0 {s["hours"]} 1" preserveAspectRatio="none" role="img" '
            f'aria-label="{_e(name)}: the month by hour">{_cells(s["by_hour"], "hour")}</svg>'
            f'<svg class="strip recent" viewBox="0 0 {n + 3} 1" preserveAspectRatio="none" role="img" '
            f'aria-label="{_e(name)}: the last {n} closed minutes and now">{_cells(s["by_minute"], "minute")}{now}</svg>'
            "</div>")


def strip_keys() -> str:
    return '<p class="small keys">' + "".join(
        f'<span><i class="key" style="background:{c}"></i>{k}</span>' for k, c in KEYS) + (
        "<span>upper strip: the month by hour (its worst minute); lower: the last three closed hours by minute, "
        "then now</span></p>")


def _path(points: list[tuple[float, float | None]]) -> str:
    """A line broken where there is no value (an hour without a request is no share)."""
    out, pen = [], "M"
    for x, y in points:
        if y is None:
            pen = "M"
            continue
        out.append(f"{pen}{x:.1f} {y:.1f}")
        pen = "L"
    return " ".join(out)


W, H, X0, Y0, PH = 600, 180, 64, 10, 132  # the charts' viewBox, plot origin and plot height


def latency_chart(service: str, lat: dict[str, Any]) -> str:
    """The share of requests below each bound, hour by hour, against its objective. The axis reaches
    down to the lowest share: a bad hour is drawn where it is, never pinned to the axis."""
    pts, hours = lat["points"], max(1, lat["hours"])
    shares = [[(p[1 + i] / p[0]) if p[0] else None for p in pts] for i in range(len(lat["bounds"]))]
    lows = [s for line in shares for s in line if s is not None] + [b["objective"] for b in lat["bounds"]]
    lo = max(0.0, (int(min(lows) * 100) - 1) / 100)
    def y(v: float) -> float:
        return Y0 + PH * (1 - (v - lo) / (1 - lo))
    def x(i: float) -> float:
        return X0 + (W - X0 - 6) * i / hours
    colours = ("#0969da", "#1f2328")
    out = [f'<svg class="chart latency" data-service="{_e(service)}" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{_e(service)}: share of requests below each bound per hour, {_e(lat["start"][:10])} to '
           f'{_e(lat["end"][:10])}">']
    for v in (lo, 1.0):
        out.append(f'<text x="{X0 - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="13">{v * 100:g} %</text>'
                   f'<line x1="{X0}" x2="{W - 6}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#d0d7de"/>')
    for d in range(0, hours, 24):
        day = dt.date.fromisoformat(lat["start"][:10]) + dt.timedelta(days=d // 24)
        out.append(f'<text x="{x(d) + 2:.1f}" y="{H - 18}" font-size="13">{day.isoformat()[5:]}</text>')
    for i, b in enumerate(lat["bounds"]):
        c = colours[i % 2]
        out.append(f'<line x1="{X0}" x2="{W - 6}" y1="{y(b["objective"]):.1f}" y2="{y(b["objective"]):.1f}" '
                   f'stroke="{c}" stroke-dasharray="4 3"/><path d="{_path([(x(j + 0.5), None if s is None else y(s)) for j, s in enumerate(shares[i])])}" '
                   f'fill="none" stroke="{c}" stroke-width="1.5"/><text x="{X0 + 4 + 150 * i}" y="{H - 2}" '
                   f'font-size="13" fill="{c}">&lt; {_e(b["below"])} s (dashed: {b["objective"] * 100:g} %)</text>')
    out.append("</svg>")
    return "".join(out)


def burn_down(service: str, r: dict[str, Any], daily: list[dict[str, Any]], state: str, until: str) -> str:
    """The month's down time budget left day by day, and where the recent burn takes it by the month's end
    (dashed): the engine's projected ratio over the month's observed and still-to-come minutes."""
    d = r["details"]
    year, month = int(until[:4]), int(until[5:7])
    days = calendar.monthrange(year, month)[1]
    budget = d["budget_s"] / 60
    left, pts = budget, [(0.0, budget)]
    for i, day in enumerate(daily):
        left -= day["down_minutes"]
        pts.append((min(i + 1.0, int(until[8:10]) - 1 + (int(until[11:13]) * 60 + int(until[14:16])) / 1440), left))
    end = None
    if d["projected_ratio"] is not None:
        total = d["slices"]["up"] + d["slices"]["down"] + d["future_s"] / 60
        end = budget - total * (1 - d["projected_ratio"])
    lo = min([0.0, left] + ([end] if end is not None else []))
    span = max(budget - lo, 1e-9)
    def y(v: float) -> float:
        return Y0 + PH * (budget - v) / span
    def x(v: float) -> float:
        return X0 + (W - X0 - 6) * v / days
    c = STATE_COLOURS[state]
    out = [f'<svg class="chart burn" data-service="{_e(service)}" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{_e(service)}: the month\'s down time budget left per day">',
           f'<text x="{X0 - 4}" y="{y(budget) + 4:.1f}" text-anchor="end" font-size="13">{budget:.0f} min</text>',
           f'<text x="{X0 - 4}" y="{y(0) + 4:.1f}" text-anchor="end" font-size="13">0</text>'
           f'<line x1="{X0}" x2="{W - 6}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#57606a"/>',
           f'<path d="{_path([(x(a), y(b)) for a, b in pts])}" fill="none" stroke="{c}" stroke-width="2"/>']
    if end is not None:
        out.append(f'<path d="M{x(pts[-1][0]):.1f} {y(left):.1f} L{x(days):.1f} {y(end):.1f}" fill="none" '
                   f'stroke="{c}" stroke-dasharray="5 4"/>')
    for dd in range(0, days, 7):
        out.append(f'<text x="{x(dd) + 2:.1f}" y="{H - 18}" font-size="13">{month:02d}-{dd + 1:02d}</text>')
    proj = "no projection yet" if end is None else f"heading for {pct(d['projected_ratio'])} at the month's end"
    out.append(f'<text x="{X0 + 4}" y="{H - 2}" font-size="13">budget left (min); dashed: {_e(proj)}</text></svg>')
    return "".join(out)
