"""The report's per-service sections, all read off one ServiceMonth: daily bars, incidents, gaps, coverage;
and the readings of the annexe the report states."""
from __future__ import annotations

from typing import Any

from ..calendar import iso
from ..config.model import Config
from ..slo import S_DOWN, ServiceMonth, rounded
from ..store import Store

GAP_MINUTES = 5  # runs of unknown slices shorter than this are not listed as gaps


def daily(sm: ServiceMonth) -> list[dict[str, Any]]:
    out = []
    for day, (up, down, unknown, masked) in sm.days():
        out.append({"date": day.isoformat(), "ratio": rounded(up / (up + down)) if up + down else None,
                    "down_minutes": int(down), "masked_minutes": int(masked), "unknown_minutes": int(unknown)})
    return out


def incidents(sm: ServiceMonth, store: Store) -> list[dict[str, Any]]:
    """Runs of down slices (before masking), each with the windows it fell in and the error kinds."""
    tz, m0 = sm.ctx.cal.tz, sm.m0
    out = []
    for a, b in sm.down_runs():
        s, e = (m0 + a) * 60.0, (m0 + b) * 60.0
        maint, excl = sm.maintenance[a:b], sm.exclusion[a:b]
        during = None
        if maint.all():
            during = "maintenance"
        elif excl.all():
            during = "exclusion"
        elif (maint | excl).all():
            during = "maintenance+exclusion"
        kinds: dict[str, int] = {}
        down_targets = []
        for name, st in sm.per_target.items():
            if (st[a:b] == S_DOWN).any():
                down_targets.append(name)
                for k, v in store.error_kinds(name, s, e).items():
                    kinds[k] = kinds.get(k, 0) + v
        out.append({"service": sm.service, "start": iso(s, tz), "end": iso(e, tz), "duration_s": e - s,
                    "counted_minutes": int((~(maint | excl)).sum()), "during": during,
                    "targets": sorted(down_targets), "error_kinds": dict(sorted(kinds.items()))})
    return out


def coverage(sm: ServiceMonth) -> dict[str, Any]:
    up, down, unknown, masked = (int(x) for x in sm.slices())
    eligible = up + down + unknown
    tz = sm.ctx.cal.tz
    gaps = [{"start": iso((sm.m0 + a) * 60.0, tz), "end": iso((sm.m0 + b) * 60.0, tz), "minutes": b - a}
            for a, b in sm.unknown_runs(GAP_MINUTES)]
    return {"ratio": rounded((up + down) / eligible) if eligible else None, "observed_minutes": up + down,
            "eligible_minutes": eligible, "unknown_minutes": unknown, "masked_minutes": masked, "gaps": gaps}


def readings(cfg: Config) -> dict[str, Any]:
    """How the report read each ambiguous clause of the annexe (every one is a config setting)."""
    c = cfg.contract
    return {
        "timezone": f"{c.timezone} (the annexe says 'GMT+1')",
        "period": {"iso_week": "ISO weeks, Monday 00:00 contract time", "month_start":
                   "days 1-7, 8-14, 15-21, 22-28, 29-end"}[c.period],
        "combine": {s: c.policy(s).combine for s in cfg.services},
        "slice": f"1-minute slices; down when >= {c.slice_down_ratio:g} of its probes are down; a slice touching a "
                 "maintenance or exclusion window is masked",
        "latency_population": "probes that sent a request and got any answer or timed out (a timeout counts as "
                              "slower than every threshold); strict '<' on exact counts; quantiles from t-digests",
        "tickets": "first response = taken in charge by support; business hours "
                   f"{c.business_start:%H:%M}-{c.business_end:%H:%M} on working days, "
                   f"{c.holidays_country} public holidays excluded; a workaround changes the resolution delay, "
                   "not the response time",
        "coverage_floor": f"below {c.coverage_floor * 100:g} % observed time a row is insufficient_data",
    }
