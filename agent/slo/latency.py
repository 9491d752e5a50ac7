"""Latency (docs/contract.md, "Latency"): exact shares of requests strictly below each bound, per 7-day period; t-digest
quantiles shown beside them, never deciding."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from fastdigest import TDigest

from ..calendar import Calendar, iso
from ..config.model import Contract, LatencyBound, LatencySpec
from ..ledger import QUANTILES, cdf_points, merged_summary
from .objective import EvalContext, Month, Objective, RuleContext, RuleSet, Sample
from .promql import (BURN_ALERTS, CONTRACT, CONTRACT_GROUP, LATENCY_GROUP, WINDOWS, WINDOWS_GROUP, burn_expr,
                     across_places, burn_name, le, lost_and_at_risk, objective_name, service_selector, threshold_label)
from .availability import min_observed
from .slices import DayCache, LedgerView, counts, eligible_minutes
from .verdict import combine_verdicts, rounded, verdict

CDF_POINTS = tuple(round(x, 4) for x in np.geomspace(0.01, 5.0, 40))  # 10 ms to 5 s, log-spaced


@dataclass(frozen=True)
class Latency:
    start: float
    end: float
    count: int
    below: tuple[int, ...]
    thresholds: tuple[float, ...]
    objectives: tuple[float, ...]
    quantiles: dict[str, float | None]
    coverage: float | None
    verdict: str
    elapsed_ratio: float  # share of the period already observed (for budget projection)
    objective_met: tuple[bool | None, ...] = field(default=())
    sketch_count: int = 0  # the t-digest's own population (masking applied when the sample arrived)
    sketch_sum: float = 0.0

    def fractions(self) -> tuple[float | None, ...]:
        return tuple(b / self.count if self.count else None for b in self.below)

    def budget_remaining(self) -> tuple[float | None, ...]:
        """Per bound: 1 untouched, 0 spent, < 0 overspent. Slow requests allowed for the period are
        projected from the current rate: (1 - ratio) x count / elapsed share."""
        out: list[float | None] = []
        for b, ratio in zip(self.below, self.objectives):
            if not self.count:
                out.append(None)
                continue
            allowed = (1 - ratio) * self.count / max(self.elapsed_ratio, 1e-9)
            slow = self.count - b
            out.append(1.0 - slow / allowed if allowed > 0 else (1.0 if slow == 0 else -1.0))
        return tuple(out)

    def to_dict(self) -> dict:
        fr = self.fractions()
        return {
            "count": self.count,
            "below": {threshold_label(t): {"count": b, "fraction": rounded(f), "objective": o,
                                           "met": (None if f is None else f >= o)}
                      for t, b, f, o in zip(self.thresholds, self.below, fr, self.objectives)},
            "quantiles_s": {q: rounded(v) for q, v in self.quantiles.items()},
            "coverage": rounded(self.coverage),
            "verdict": self.verdict,
        }


def latency(view: LedgerView, targets: Sequence[str], cal: Calendar, contract: Contract, start: float, end: float,
            now: float, *, coverage_targets_combine: str = "any", cache: DayCache | None = None,
            bounds: tuple[LatencyBound, ...] | None = None) -> Latency:
    """Exact fractions over [start, end) up to `now`; the open minute counts too (requests are requests,
    unlike slices), so a live window agrees with Prometheus' rate() over the same span. `bounds`
    defaults to the contract's shorthand."""
    bounds = contract.latency_objectives if bounds is None else bounds
    m0, m_end = int(start // 60), math.ceil(end / 60)  # a window ending now keeps the open minute too
    m1 = max(m0, min(m_end, math.ceil(now / 60)))
    c = counts(view, targets, coverage_targets_combine, cal, contract, m0, m1, now, cache)
    up, down, unknown, count = int(c[0]), int(c[1]), int(c[2]), int(c[4])
    below = tuple(int(c[5 + contract.thresholds.index(b.below)]) for b in bounds)
    eligible = up + down + unknown
    coverage = (up + down) / eligible if eligible else None
    digests: list[TDigest] = []
    for t in targets:
        digests.extend(view.digests(t, start, min(end, now)))
    quantiles, sketch_count, sketch_sum = merged_summary(digests)
    ratios = tuple(b.ratio for b in bounds)
    met = tuple(None if not count else n / count >= r for n, r in zip(below, ratios))
    v = verdict(count > 0, coverage is None or coverage >= contract.coverage_floor, all(met))
    elapsed = (min(end, now) - start) / (end - start) if end > start else 1.0
    return Latency(start, m1 * 60.0, count, below, tuple(b.below for b in bounds), ratios, quantiles, coverage, v,
                   max(0.0, min(1.0, elapsed)), met, sketch_count, sketch_sum)


@dataclass(frozen=True)
class Allowance:
    """One bound's slow requests (at or above it) in the current 7-day period: spent so far, allowed at
    the period's expected volume, and projected to its end at the recent share."""

    below: float
    ratio: float
    slow: int
    allowed: float
    projected: float

    @property
    def lost(self) -> bool:
        """Even if every request still to come is fast, the period ends below its objective."""
        return self.slow > self.allowed


@dataclass(frozen=True)
class PeriodAllowance:
    period: str  # the period's first day (YYYY-MM-DD); its month's report lists it
    expected: float  # requests the period will hold at the rate seen over its eligible time so far
    bounds: tuple[Allowance, ...]


def allowance(ctx: EvalContext, spec: LatencySpec, lat: Latency, ps: float, pe: float, now: float) -> PeriodAllowance:
    """The period's volume goes on at the rate of its observed minutes over its unmasked minutes still to
    come (a synthetic monitor's volume is its schedule's); the slow share of the last `ctx.projection_s`
    (the period's own when that stretch observed too little) goes on to the end."""
    cal, names, mode = ctx.cal, ctx.names(spec.service), ctx.mode(spec.service)
    m0, m_end = int(ps // 60), int(pe // 60)
    mn = max(m0, min(m_end, int(now // 60)))
    settled = max(m0, min(mn, int(ctx.settled(now) // 60)))  # the closed minutes, as the month's budget
    so_far = counts(ctx.view, names, mode, cal, ctx.contract, m0, settled, now, ctx.cache)
    observed, in_so_far = int(so_far[0] + so_far[1]), int(so_far[4])
    to_come = eligible_minutes(cal, mn, m_end)
    if mn < m_end and not cal.mask(mn, mn + 1)[0]:
        to_come -= now / 60 - mn  # the open minute's part gone by: its results are in lat.count already
    expected = lat.count + (in_so_far / observed * to_come if observed else 0.0)
    r = counts(ctx.view, names, mode, cal, ctx.contract, settled - int(ctx.projection_s // 60), settled, now,
               ctx.cache)
    recent_ok = r[0] + r[1] >= max(1, min_observed(ctx.projection_s)) and r[4] > 0
    bounds = []
    for b, below in zip(spec.bounds, lat.below):
        slow = lat.count - below
        if recent_ok:
            share = (int(r[4]) - int(r[5 + ctx.contract.thresholds.index(b.below)])) / int(r[4])
        else:
            share = slow / lat.count if lat.count else 0.0
        bounds.append(Allowance(b.below, b.ratio, slow, round((1 - b.ratio) * expected, 6),
                                slow + (expected - lat.count) * share))
    return PeriodAllowance(iso(ps, cal.tz)[:10], expected, tuple(bounds))


class LatencyObjective(Objective):
    kind = "latency"
    live_windows = ("period", "7d", "allowance")
    spec: LatencySpec

    @property
    def subject(self) -> str:
        return self.spec.service

    def evaluate(self, ctx: EvalContext, start: float, end: float, now: float) -> Latency:
        s = self.spec
        return latency(ctx.view, ctx.names(s.service), ctx.cal, ctx.contract, start, end, now,
                       coverage_targets_combine=ctx.mode(s.service), cache=ctx.cache, bounds=s.bounds)

    def live(self, ctx: EvalContext, now: float) -> dict[str, Any]:
        ps, pe = ctx.cal.period_bounds(now)
        period = self.evaluate(ctx, ps, pe, now)
        return {"period": period, "7d": self.evaluate(ctx, now - 7 * 86400, now, now),
                "allowance": allowance(ctx, self.spec, period, ps, pe, now)}

    def month(self, mc: Month) -> dict[str, Any]:
        """Every 7-day period overlapping the month; the row is met when every period is met."""
        periods = self.periods(mc)
        return {"row": self.row_of(periods), "periods": periods}

    def periods(self, mc: Month) -> list[dict[str, Any]]:
        """The 7-day periods overlapping the month that have begun by the cut-off, each evaluated."""
        s, tz, ctx = self.spec, mc.ctx.cal.tz, mc.ctx
        periods = []
        for ps, pe in ctx.cal.periods_of_month(mc.year, mc.month):
            if ps >= mc.horizon:
                continue  # not begun by the cut-off
            # the rows read stop at the month's end: a period running past it is judged on its days in the
            # month (coverage over those), in full in the next month's report
            stop = min(mc.horizon, pe, mc.until)
            lat = self.evaluate(ctx, ps, pe, stop)
            digests = [d for n in ctx.names(s.service) for d in ctx.view.digests(n, ps, stop)]
            periods.append({"service": s.service, "start": iso(ps, tz), "end": iso(pe, tz),
                            "complete": stop >= pe, **lat.to_dict(), "cdf": cdf_points(digests, CDF_POINTS)})
        return periods

    def period(self, reports: Sequence[dict[str, Any]], contract: Contract) -> dict[str, Any]:
        """Every 7-day period of the months' reports, once: a period running past a month's end is in two of
        them, judged on its days in the first and in full in the next, and the next one's stands."""
        s = self.spec
        labels = {threshold_label(b.below) for b in s.bounds}
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for doc in reports:
            for p in doc["periods"]:
                if p["service"] == s.service and set(p["below"]) == labels:
                    latest[(p["start"], p["end"])] = p
        row = self.row_of(sorted(latest.values(), key=lambda p: p["start"]))
        row["details"]["rule"] = ("the period is met when every 7-day period of its months is met (worst period "
                                  "shown)")
        return row

    def row_of(self, periods: list[dict[str, Any]]) -> dict[str, Any]:
        """The report's row from the periods: the worst fraction of each bound; met when all are met."""
        s = self.spec
        value = {}
        for b in s.bounds:
            fr = [p["below"][threshold_label(b.below)]["fraction"] for p in periods if p["count"]]
            value[threshold_label(b.below)] = min(fr) if fr else None
        row = {
            "row": s.row, "service": s.service, "measure": "latency",
            "description": f"{s.title} response time per 7-day period: " + " and ".join(
                f"{b.ratio * 100:g} % of requests < {b.below * 1000:g} ms" if b.below < 1 else
                f"{b.ratio * 100:g} % of requests < {b.below:g} s" for b in s.bounds),
            "objective": {threshold_label(b.below): b.ratio for b in s.bounds},
            "value": value,
            "verdict": combine_verdicts([p["verdict"] for p in periods]),
            "details": {"periods": [{"start": p["start"], "end": p["end"], "verdict": p["verdict"]} for p in periods],
                        "rule": "the month is met when every 7-day period overlapping it is met (worst period shown)"},
        }
        return row

    def samples(self, window: str, lat: Any) -> Iterable[Sample]:
        if isinstance(lat, PeriodAllowance):
            yield from _allowance_samples(self.spec.service, lat)
            return
        svc, w = ("service", self.spec.service), ("window", window)
        for th, f, ok, rem in zip(lat.thresholds, lat.fractions(), lat.objective_met, lat.budget_remaining()):
            if f is None:
                continue
            obj = ("objective", objective_name(th))
            yield Sample("sla_latency_below_ratio", (svc, ("threshold", threshold_label(th)), w), f)
            yield Sample("sla_objective_met", (svc, obj, w), 1.0 if ok else 0.0)
            if rem is not None:
                yield Sample("sla_error_budget_remaining_ratio", (svc, obj, w), rem)
        if lat.sketch_count:
            for q in QUANTILES:
                v = lat.quantiles.get(f"{q:g}")
                if v is not None:
                    yield Sample("sla_latency_quantile_seconds", (svc, w, ("quantile", f"{q:g}")), v)
            yield Sample("sla_latency_quantile_seconds", (svc, w), lat.sketch_sum, "sla_latency_quantile_seconds_sum")
            yield Sample("sla_latency_quantile_seconds", (svc, w), float(lat.sketch_count),
                         "sla_latency_quantile_seconds_count")

    def status(self, window: str, lat: Any, tz: Any) -> dict[str, Any]:
        if isinstance(lat, PeriodAllowance):
            return {"period": lat.period, "expected_requests": round(lat.expected, 1), "below": {
                threshold_label(a.below): {"slow": a.slow, "allowed": round(a.allowed, 1),
                                           "projected": round(a.projected, 1), "lost": a.lost} for a in lat.bounds}}
        d = {"start": iso(lat.start, tz), "end": iso(lat.end, tz), **lat.to_dict()}
        for b, r in zip(d["below"].values(), lat.budget_remaining()):
            b["budget_remaining_ratio"] = rounded(r)
        return d

    @classmethod
    def rules(cls, objectives: Sequence["LatencyObjective"], rc: RuleContext) -> RuleSet:
        """Burn rates from the `le` buckets of the latency population's histogram, per bound."""
        by_bound: dict[float, list[str]] = {}
        for o in objectives:
            for b in o.spec.bounds:
                by_bound.setdefault(b.below, []).append(o.spec.service)
        recording = [_slow_ratio(th, by_bound[th], w) for th in sorted(by_bound) for w in WINDOWS]
        recording += [{"record": f"sla:latency_slow_ratio_quorum:rate{w}",
                       "expr": f"min by (service, threshold, objective) (topk by (service, threshold, objective) "
                               f"(2, sla:latency_slow_ratio:rate{w}))"} for w in WINDOWS]
        windows = [{
            "record": "sla:latency_below:ratio7d",
            "expr": f'sum by (service, location) (increase(sla_probe_duration_seconds_bucket{{le="{le(th)}"}}[7d]))'
                    f'\n/\nsum by (service, location) (increase(sla_probe_duration_seconds_count[7d]))',
            "labels": {"threshold": threshold_label(th)}} for th in sorted(by_bound)]
        alerts = [a for o in objectives for b in o.spec.bounds for a in _alerts(o.spec.service, b)]
        period = [a for o in objectives for b in o.spec.bounds for a in _period_alerts(o.spec.service, b, rc)]
        return RuleSet({LATENCY_GROUP: recording, WINDOWS_GROUP: windows},
                       {LATENCY_GROUP: alerts, CONTRACT_GROUP: period})


def _allowance_samples(service: str, p: PeriodAllowance) -> Iterable[Sample]:
    for a in p.bounds:
        labels = (("service", service), ("objective", objective_name(a.below)),
                  ("threshold", threshold_label(a.below)), ("period", p.period), ("month", p.period[:7]))
        yield Sample("sla_period_slow_requests", labels, float(a.slow))
        yield Sample("sla_period_slow_allowed", labels, a.allowed)
        yield Sample("sla_period_slow_projected", labels, a.projected)


def _slow_ratio(th: float, services: list[str], w: str) -> dict[str, Any]:
    sel = service_selector(dict.fromkeys(services))
    expr = (f'1 - (\n  sum by (service, location) (rate(sla_probe_duration_seconds_bucket{{{sel},'
            f'le="{le(th)}"}}[{w}]))\n  /\n  sum by (service, location) '
            f'(rate(sla_probe_duration_seconds_count{{{sel}}}[{w}]))\n)')
    return {"record": f"sla:latency_slow_ratio:rate{w}", "expr": expr,
            "labels": {"threshold": threshold_label(th), "objective": objective_name(th)}}


def _period_alerts(service: str, b: LatencyBound, rc: RuleContext) -> list[dict[str, Any]]:
    """The current 7-day period lost (more slow requests than it allows at its expected volume, whatever
    comes next) and at risk (at the recent slow share it will be), across locations as the report decides."""
    by = "service, objective, threshold, period, month"
    sel = f'{{service="{service}",objective="{objective_name(b.below)}"}}'
    c = rc.contract
    over = across_places(f"(sla_period_slow_requests{sel} - sla_period_slow_allowed{sel})", by, c.min_agree,
                         c.latency_locations)
    projected = across_places(f"(sla_period_slow_projected{sel} - sla_period_slow_allowed{sel})", by, c.min_agree,
                              c.latency_locations)
    terms = f"{b.ratio * 100:g} % of requests < {threshold_label(b.below)} s"
    where = "{{ $labels.service }}: the 7-day period from {{ $labels.period }}"
    period_links = {"report": f"{rc.url}/report?month={{{{ $labels.month }}}}",
                    "evidence": f"{rc.url}/api/v1/journal?period={{{{ $labels.period }}}}&service={service}"}
    return lost_and_at_risk("SLALatencyPeriod", f"{over} > 0", f"{projected} > 0", by,
                            {"severity": "ticket", "slo": objective_name(b.below), **CONTRACT}, ({
        "summary": f"{where} is lost ({terms})",
        "description": f"{{{{ $value | printf \"%.0f\" }}}} more requests at or above {threshold_label(b.below)} s "
                       f"than the period allows at its expected volume: even if every request left is fast, "
                       f"it ends below {b.ratio * 100:g} %.",
        **period_links}, {
        "summary": f"{where} is at risk ({terms})",
        "description": f"At the slow share of the last {rc.projection} the period ends "
                       f"{{{{ $value | printf \"%.0f\" }}}} slow requests beyond its allowance.",
        **period_links}))


def _alerts(service: str, b: LatencyBound) -> list[dict[str, Any]]:
    budget, name = 1 - b.ratio, objective_name(b.below)
    out = []
    for sev, long_w, short_w, factor, for_ in BURN_ALERTS:
        out.append({
            "alert": burn_name("SLALatencyBurnRate", sev, long_w),
            "expr": burn_expr("sla:latency_slow_ratio_quorum:rate", round(factor * budget, 6), long_w, short_w,
                              f'{{service="{service}",objective="{name}"}}'),
            "for": for_,
            "labels": {"severity": sev, "slo": name},
            "annotations": {
                "summary": f"{service}: requests slower than {threshold_label(b.below)} s burn the "
                           f"{b.ratio * 100:g} % objective {factor:g}x too fast",
                "description": f"Share of requests >= {threshold_label(b.below)} s over {long_w}: "
                               f"{{{{ $value | humanizePercentage }}}} (allowed {budget * 100:g} % "
                               f"per 7-day period).",
            },
        })
    return out
