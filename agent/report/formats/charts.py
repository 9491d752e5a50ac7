"""The HTML report's charts: inline SVG drawn from the report's figures, no JavaScript and no outside asset.

Each chart is scaled to the width it is given (its viewBox; the page's CSS sets width 100 %), and its title is
an HTML caption above it, which wraps where an SVG text would be cut at the chart's edge. A share axis starts
below every exact share and objective it shows: a curve is cut where it crosses the axis floor, never pinned
to it (a flat line along the floor reads as a share that was never measured). Latency marks take the colour
of their period's verdict, as its badge does."""
from __future__ import annotations

import html
import math
from typing import Any, Callable

from .common import VERDICT_COLOUR


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def figure(title: str, svg: str, cls: str = "") -> str:
    return f'<figure class="chart {cls}"><figcaption>{_e(title)}</figcaption>{svg}</figure>'


def share_floor(shares: list[float | None]) -> float:
    """The highest of 90, 80, 50 and 0 % under every share given: each is drawn on the axis."""
    lowest = min((s for s in shares if s is not None), default=1.0)
    return next((f for f in (0.9, 0.8, 0.5) if f <= lowest), 0.0)


def daily_svg(service: str, days: list[dict[str, Any]], objective: float) -> str:
    w, h, left, bottom, top = 720, 190, 48, 28, 6
    vals = [d["ratio"] for d in days if d["ratio"] is not None]
    lo = min([objective - 0.01] + vals)
    lo = max(0.0, math.floor(lo * 100) / 100)
    n = max(len(days), 1)
    bw = (w - left - 8) / n

    def y(v: float) -> float:
        return top + (1 - (v - lo) / (1 - lo if lo < 1 else 1)) * (h - top - bottom)

    parts = [f'<svg class="chart daily" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" '
             f'height="{h}" role="img" aria-label="daily availability of {_e(service)}">']
    for frac in (lo, (lo + 1) / 2, 1.0):
        parts.append(f'<line x1="{left}" x2="{w - 8}" y1="{y(frac):.1f}" y2="{y(frac):.1f}" stroke="#ddd"/>'
                     f'<text x="2" y="{y(frac) + 4:.1f}" font-size="10">{frac * 100:.1f}%</text>')
    for i, d in enumerate(days):
        x = left + i * bw
        if i % max(1, n // 10) == 0:  # under the bar's centre, as wide as the bar or centred on it
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{h - 10}" font-size="9" text-anchor="middle">'
                         f'{_e(d["date"][5:])}</text>')
        if d["ratio"] is None:
            parts.append(f'<rect x="{x + 1:.1f}" y="{top}" width="{max(bw - 2, 1):.1f}" height="{h - top - bottom}" '
                         f'fill="#f0f0f0"><title>{_e(d["date"])}: no data</title></rect>')
            continue
        colour = "#1a7f37" if d["ratio"] >= objective else "#cf222e"
        parts.append(f'<rect x="{x + 1:.1f}" y="{y(d["ratio"]):.1f}" width="{max(bw - 2, 1):.1f}" '
                     f'height="{h - bottom - y(d["ratio"]):.1f}" fill="{colour}"><title>{_e(d["date"])}: '
                     f'{d["ratio"] * 100:.3f} %, {d["down_minutes"]} min down</title></rect>')
    parts.append(f'<line x1="{left}" x2="{w - 8}" y1="{y(objective):.1f}" y2="{y(objective):.1f}" stroke="#000" '
                 f'stroke-dasharray="4 3"/><text x="{w - 60}" y="{y(objective) - 3:.1f}" font-size="10">'
                 f'{objective * 100:g} %</text></svg>')
    return figure(f"Daily availability, {service}", "".join(parts), "daily")


def location_strip_svg(service: str, doc: dict[str, Any]) -> str:
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


def cdf_curve(p: dict[str, Any], floor: float) -> list[tuple[float, float]]:
    """The points drawn: the sketch's CDF from where it reaches `floor` (the crossing read on the log scale
    the chart draws), or, before any hour's sketch is closed, the exact shares at the bounds."""
    if not p["cdf"]:
        return sorted((float(t), b["fraction"]) for t, b in p["below"].items() if b["fraction"] is not None)
    pts = [(float(x), float(f)) for x, f in p["cdf"]]
    k = next((i for i, (_, f) in enumerate(pts) if f >= floor), len(pts))
    if 0 < k < len(pts) and pts[k][1] > floor:
        (xa, fa), (xb, fb) = pts[k - 1], pts[k]
        at = math.log10(xa) + (floor - fa) / (fb - fa) * (math.log10(xb) - math.log10(xa))
        return [(10 ** at, floor)] + pts[k:]
    return pts[k:]


def share_axis(ylo: float, left: float, right: float, top: float,
               base: float) -> tuple[Callable[[float], float], str]:
    """A share axis from `ylo` to 100 %, `top` to `base` in y: its scale, and its three labelled gridlines."""
    def Y(f: float) -> float:
        return top + (1 - (f - ylo) / (1 - ylo)) * (base - top)

    grid = "".join(f'<line x1="{left}" x2="{right}" y1="{Y(f):.1f}" y2="{Y(f):.1f}" stroke="#eee"/>'
                   f'<text x="2" y="{Y(f) + 4:.1f}" font-size="9">{f * 100:g}%</text>'
                   for f in (ylo, (ylo + 1) / 2, 1.0))
    return Y, grid


def cdf_svg(p: dict[str, Any]) -> str:
    w, h, left, bottom, top = 360, 200, 44, 30, 8
    xmin, xmax = math.log10(0.01), math.log10(5.0)
    ylo = share_floor([b["fraction"] for b in p["below"].values()] + [b["objective"] for b in p["below"].values()])
    colour = VERDICT_COLOUR[p["verdict"]]

    def X(sec: float) -> float:
        return left + (math.log10(sec) - xmin) / (xmax - xmin) * (w - left - 8)

    Y, grid = share_axis(ylo, left, w - 8, top, h - bottom)
    parts = [f'<svg class="chart cdf" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" '
             f'height="{h}" role="img" aria-label="latency CDF {_e(p["start"][:10])}">']
    parts.append(grid)
    for sec, label in ((0.01, "10ms"), (0.1, "100ms"), (1.0, "1s"), (5.0, "5s")):
        anchor = "end" if sec == 5.0 else "middle"  # the last one kept inside the chart
        parts.append(f'<text x="{X(sec) + (4 if sec == 5.0 else 0):.1f}" y="{h - 12}" font-size="9" '
                     f'text-anchor="{anchor}">{label}</text>')
    for t, b in p["below"].items():
        sec = float(t)
        parts.append(f'<line x1="{X(sec):.1f}" x2="{X(sec):.1f}" y1="{top}" y2="{h - bottom}" stroke="#888" '
                     f'stroke-dasharray="3 3"/><line x1="{left}" x2="{w - 8}" y1="{Y(b["objective"]):.1f}" '
                     f'y2="{Y(b["objective"]):.1f}" stroke="#888" stroke-dasharray="3 3"/>')
        if b["fraction"] is not None:
            parts.append(f'<circle cx="{X(sec):.1f}" cy="{Y(b["fraction"]):.1f}" r="4" fill="{colour}">'
                         f'<title>{b["fraction"] * 100:.3f} % below {t} s (objective {b["objective"] * 100:g} %)'
                         f'</title></circle>')
    curve = cdf_curve(p, ylo)
    if curve:
        dash = "" if p["cdf"] else ' stroke-dasharray="5 3"'
        pts = " ".join(f"{X(x):.1f},{Y(f):.1f}" for x, f in curve)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#0969da" stroke-width="2"{dash}/>')
    parts.append("</svg>")
    title = f'Latency CDF {p["start"][:10]} to {p["end"][:10]} ({p["count"]} requests)'
    if not p["cdf"]:
        title += ": from the exact counts at the bounds only, until the first hour's latency sketch is closed"
    return figure(title, "".join(parts), "cdf")


def weekly_svg(periods: list[dict[str, Any]]) -> str:
    w, h, left, bottom, top = 720, 190, 48, 30, 6
    n = max(len(periods), 1)
    ylo = share_floor([v for p in periods for b in p["below"].values() for v in (b["fraction"], b["objective"])])
    gw = (w - left - 8) / n

    Y, grid = share_axis(ylo, left, w - 8, top, h - bottom)
    parts = [f'<svg class="chart weekly" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" '
             f'height="{h}" role="img" aria-label="weekly latency compliance">']
    parts.append(grid)
    for i, p in enumerate(periods):
        items = list(p["below"].items())
        bw = gw / (len(items) + 1)
        for j, (t, b) in enumerate(items):
            x = left + i * gw + j * bw + bw / 2
            f = b["fraction"]
            if f is None:
                continue
            parts.append(f'<rect x="{x:.1f}" y="{Y(f):.1f}" width="{bw - 2:.1f}" height="{h - bottom - Y(f):.1f}" '
                         f'fill="{VERDICT_COLOUR[p["verdict"]]}" opacity="{0.6 + 0.4 * j / max(len(items) - 1, 1):.2f}">'
                         f'<title>{_e(p["start"][:10])}: {f * 100:.3f} % below {t} s</title></rect>'
                         f'<line x1="{x:.1f}" x2="{x + bw - 2:.1f}" y1="{Y(b["objective"]):.1f}" '
                         f'y2="{Y(b["objective"]):.1f}" stroke="#000" stroke-width="2"/>')
        # the bars of a period span [bw/2, len(items) * bw + bw/2 - 2] of its group: the label at their centre
        parts.append(f'<text x="{left + i * gw + gw / 2 - 1:.1f}" y="{h - 12}" font-size="9" text-anchor="middle">'
                     f'{_e(p["start"][5:10])}</text>')
    parts.append("</svg>")
    return figure("Latency compliance per 7-day period", "".join(parts), "weekly")


def legend(*items: tuple[str, str]) -> str:
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
