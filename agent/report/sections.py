"""The report's per-service sections, all read off one ServiceMonth: daily bars, incidents, gaps, coverage;
and the readings of the annexe the report states."""
from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

import numpy as np

from ..calendar import iso
from ..config.model import DAYS, Config, PathOwner
from ..timeutil import parse_timezone
from ..slo import S_DOWN, ServiceMonth, rounded
from ..store import Store
from .paths import episode_paths

GAP_MINUTES = 5  # runs of unknown slices shorter than this are not listed as gaps


def daily(sm: ServiceMonth) -> list[dict[str, Any]]:
    out = []
    for day, (up, down, unknown, masked) in sm.days():
        out.append({"date": day.isoformat(), "ratio": rounded(up / (up + down)) if up + down else None,
                    "down_minutes": int(down), "masked_minutes": int(masked), "unknown_minutes": int(unknown)})
    return out


def _brief(record: dict[str, Any] | None, tz: Any) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"id": record["id"], "at": iso(record["at"], tz), "target": record["target"],
            "error_kind": record["error_kind"], "status": record["status"], "error": record["error"],
            "address": record["address"]}


def _during(maint: np.ndarray, excl: np.ndarray) -> str | None:
    if maint.all():
        return "maintenance"
    if excl.all():
        return "exclusion"
    if (maint | excl).all():
        return "maintenance+exclusion"
    return None


def incidents(sm: ServiceMonth, stores: Sequence[Store], location: str = "",
              owners: Sequence[PathOwner] = ()) -> list[dict[str, Any]]:
    """Failure episodes: runs of minutes with a down probe. Each says how many of its minutes the slice
    rule counts down (the rest are degraded: some probes down, fewer than the rule needs), which fell in a
    maintenance or exclusion window, the exact error kinds, and the journal's first and last records
    (over every location's ledger in `stores`), and the paths traced to its failing targets (report/paths.py)."""
    tz, m0 = sm.ctx.cal.tz, sm.m0
    out = []
    for a, b in sm.episodes():
        s, e = (m0 + a) * 60.0, (m0 + b) * 60.0
        down = sm.raw[a:b] == S_DOWN
        masked = sm.maintenance[a:b] | sm.exclusion[a:b]
        targets = sorted(n for n, failing in sm.failing.items() if failing[a:b].any())
        kinds: dict[str, int] = {}
        for store in stores:
            for name in targets:
                for k, v in store.error_kinds(name, s, e).items():
                    kinds[k] = kinds.get(k, 0) + v
        ep = _episode([store.journal_episode(targets, s, e) for store in stores])
        episode = {"service": sm.service, "start": iso(s, tz), "end": iso(e, tz), "duration_s": e - s,
                   "down_minutes": int(down.sum()), "degraded_minutes": int((~down).sum()),
                   "counted_minutes": int((down & ~masked).sum()),
                   "during": _during(sm.maintenance[a:b], sm.exclusion[a:b]), "targets": targets,
                   "error_kinds": dict(sorted(kinds.items())),
                   "journal": {"records": ep["records"], "first": _brief(ep["first"], tz),
                               "last": _brief(ep["last"], tz)},
                   "locations": ep["locations"] or ([location] if location else [])}
        paths = episode_paths(stores, targets, s, e, owners, tz)
        if paths:  # only then: a report made before paths were traced reads the same when checked again
            episode["paths"] = paths
        out.append(episode)
    return out


def _episode(found: list[dict[str, Any]]) -> dict[str, Any]:
    """The journal of one episode over several ledgers: records added up, the earliest and the latest."""
    firsts = [f["first"] for f in found if f["first"]]
    lasts = [f["last"] for f in found if f["last"]]
    return {"records": sum(f["records"] for f in found),
            "first": min(firsts, key=lambda r: (r["at"], r["id"])) if firsts else None,
            "last": max(lasts, key=lambda r: (r["at"], r["id"])) if lasts else None,
            "locations": sorted({loc for f in found for loc in f["locations"]})}


def coverage(sm: ServiceMonth) -> dict[str, Any]:
    up, down, unknown, masked = (int(x) for x in sm.slices())
    eligible = up + down + unknown
    tz = sm.ctx.cal.tz
    gaps = [{"start": iso((sm.m0 + a) * 60.0, tz), "end": iso((sm.m0 + b) * 60.0, tz), "minutes": b - a}
            for a, b in sm.unknown_runs(GAP_MINUTES)]
    return {"ratio": rounded((up + down) / eligible) if eligible else None, "observed_minutes": up + down,
            "eligible_minutes": eligible, "unknown_minutes": unknown, "masked_minutes": masked, "gaps": gaps}


def _summer(tz_name: str, start: dt.time, end: dt.time) -> str:
    """What a fixed offset's hours mean where clocks move an hour forward in summer."""
    if tz_name.strip() in ("UTC", "Z", "GMT"):
        return " all year (UTC has no summer time)"
    if not isinstance(parse_timezone(tz_name), dt.timezone):
        return " (a named zone: it follows summer time)"
    def later(t: dt.time) -> str:
        return f"{(t.hour + 1) % 24:02d}:{t.minute:02d}"
    return (f" all year: a fixed offset does not follow summer time, so where clocks move an hour forward in "
            f"summer (France: last Sunday of March to last Sunday of October) this is {later(start)}-{later(end)} "
            f"local summer time")


def readings(cfg: Config) -> dict[str, Any]:
    """How the report read each ambiguous clause of the annexe (every one is a config setting)."""
    c = cfg.contract
    bh_tz = c.business_timezone or c.timezone
    weekly = "; ".join(f"{DAYS[w.day].capitalize()} {w.start:%H:%M}-{w.end:%H:%M} at {c.timezone}"
                       f"{_summer(c.timezone, w.start, w.end)}" for w in c.weekly) or "none"
    return {
        "timezone": f"{c.timezone} (the annexe says 'GMT+1'): months, days and 7-day periods are cut in it",
        "maintenance_time": weekly,
        "business_hours_time": f"{c.business_start:%H:%M}-{c.business_end:%H:%M} at {bh_tz}"
                               f"{_summer(bh_tz, c.business_start, c.business_end)}",
        "period": {"iso_week": "ISO weeks, Monday 00:00 contract time", "month_start":
                   "days 1-7, 8-14, 15-21, 22-28, 29-end"}[c.period],
        "combine": {s: c.policy(s).combine for s in cfg.services},
        "slice": f"1-minute slices; down when >= {c.slice_down_ratio:g} of its probes are down; a slice touching a "
                 "maintenance or exclusion window is masked",
        "incidents": "a failure episode is a run of minutes with at least one down probe; its minutes below the "
                     "slice rule are degraded: shown, not counted",
        "latency_population": "probes that sent a request and got any answer or timed out (a timeout counts as "
                              "slower than every threshold); strict '<' on exact counts; quantiles from t-digests",
        "tickets": "first response = taken in charge by support; business hours on working days, "
                   f"{c.holidays_country} public holidays excluded; a workaround changes the resolution delay, "
                   "not the response time; tickets opened in another month are listed, not counted",
        "coverage_floor": f"below {c.coverage_floor * 100:g} % observed time a row is insufficient_data",
        "cutoff": "figures stop at the last closed minute (no probe can still land in it): a report of a month in "
                  "progress verifies later against the same rows",
    }
