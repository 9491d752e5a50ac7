"""What the status page draws of the month so far, read as the report reads it (the stored rows up to the
last closed minute): per target the month's hours and the last hours' minutes in the strip's states
(slo.ServiceMonth.target_states), and per service the current 7-day period's exact latency counts hour
by hour (slo.range_counts)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..calendar import Calendar, iso
from ..config.model import Config
from ..ledger import nfields
from ..slo import HEARTBEAT_NAMES, S_DEGRADED, S_DOWN, S_MASKED, S_UNKNOWN, S_UP, MonthContext, context, range_counts
from ..slo.promql import threshold_label
from ..store import Store
from .build import StoreView, cutoff, open_store

RECENT_MIN = 180  # the strip's zoom: the last three closed hours minute by minute
WORST_FIRST = (S_DOWN, S_DEGRADED, S_UNKNOWN, S_UP)  # an hour shows its worst unmasked minute


def page_history(cfg: Config, state_dir: str, now: float) -> dict[str, Any]:
    store = open_store(cfg, state_dir)
    try:
        return history(cfg, store, now)
    finally:
        store.close()


def history(cfg: Config, store: Store, now: float) -> dict[str, Any]:
    c = cfg.contract
    cal = Calendar(c, [w for _, w in store.windows()])
    year, mon = cal.month_of(now)
    start, end = cal.month_bounds(year, mon)
    until = max(start, min(cutoff(cfg, now), end))
    view = StoreView(store, nfields(c.thresholds), until)
    ctx = context(view, cfg, cal)
    mc = MonthContext(ctx, year, mon, start, end, now, until)
    strips: dict[str, Any] = {}
    latency: dict[str, Any] = {}
    for s in cfg.services:
        sm = mc.service(s)
        for name in ctx.names(s):
            strips[name] = strip(sm.target_states(name), sm.m0, sm.m_end, cal)
    ps, pe = cal.period_bounds(now)
    for spec in c.objectives:
        if getattr(spec, "bounds", None) and spec.service in cfg.services:
            latency[spec.service] = hourly_latency(view, ctx.names(spec.service), ctx.mode(spec.service), cal, cfg,
                                                   spec.bounds, ps, pe, until)
    return {"month": f"{year:04d}-{mon:02d}", "until": iso(until, cal.tz), "strips": strips, "latency": latency}


def _hour_state(minutes: np.ndarray) -> int:
    kept = minutes[minutes != S_MASKED]
    if not len(kept):
        return S_MASKED
    return next(s for s in WORST_FIRST if (kept == s).any())


def _runs(states: list[int], counts: list[np.ndarray], first: int, step: int, cal: Calendar) -> list[dict[str, Any]]:
    """Equal neighbours merged: a quiet month is a handful of rectangles, not 744."""
    out: list[dict[str, Any]] = []
    for i, (st, n) in enumerate(zip(states, counts)):
        if out and out[-1]["state"] == HEARTBEAT_NAMES[st] and out[-1]["b"] == i:
            out[-1]["b"] = i + 1
            out[-1]["_n"] += n
            continue
        out.append({"a": i, "b": i + 1, "state": HEARTBEAT_NAMES[st], "_n": n.copy()})
    for r in out:
        n = r.pop("_n")
        r["from"] = iso((first + r["a"] * step) * 60.0, cal.tz)
        r["to"] = iso((first + r["b"] * step) * 60.0, cal.tz)
        r["minutes"] = {HEARTBEAT_NAMES[k]: int(v) for k, v in enumerate(n) if v}
    return out


def strip(states: np.ndarray, m0: int, m_end: int, cal: Calendar) -> dict[str, Any]:
    """The month's hours (each its worst unmasked minute), and the last closed minutes one by one."""
    hours, counts = [], []
    for a in range(0, len(states), 60):
        part = states[a:a + 60]
        hours.append(_hour_state(part))
        counts.append(np.bincount(part, minlength=len(HEARTBEAT_NAMES)))
    r0 = max(0, len(states) - RECENT_MIN)
    recent = states[r0:].tolist()
    return {"hours": -(-(m_end - m0) // 60), "by_hour": _runs(hours, counts, m0, 60, cal),
            "minutes": RECENT_MIN, "by_minute": _runs(recent, [np.eye(len(HEARTBEAT_NAMES), dtype=np.int64)[s]
                                                              for s in recent], m0 + r0, 1, cal)}


def hourly_latency(view: StoreView, names: list[str], mode: str, cal: Calendar, cfg: Config, bounds: Any,
                   ps: float, pe: float, until: float) -> dict[str, Any]:
    """Per closed hour of the period: requests, and those strictly below each bound (exact counts, as the
    verdict reads them)."""
    c = cfg.contract
    m0, m1 = int(ps // 60), int(min(pe, max(ps, until)) // 60)
    cols = [5 + c.thresholds.index(b.below) for b in bounds]
    points = []
    for h in range(m0, m1, 60):
        row = range_counts(view, names, mode, cal, c, h, min(h + 60, m1))
        points.append([int(row[4])] + [int(row[i]) for i in cols])
    return {"start": iso(ps, cal.tz), "end": iso(pe, cal.tz), "hours": int((pe - ps) // 3600),
            "bounds": [{"below": threshold_label(b.below), "objective": b.ratio} for b in bounds], "points": points}
