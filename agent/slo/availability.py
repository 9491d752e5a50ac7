"""Availability (docs/contract.md, "Availability"): up slices / (up + down slices) of a service, with its coverage and budget."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..calendar import Calendar, iso
from ..config.model import AvailabilitySpec, Contract
from .promql import (AVAILABILITY_GROUP, agreed, BURN_ALERTS, CONTRACT, CONTRACT_GROUP, WINDOWS, WINDOWS_GROUP, burn_expr,
                     burn_name, links, lost_and_at_risk, quorum, service_selector)
from .objective import EvalContext, Month, Objective, RuleContext, RuleSet, Sample
from .slices import DayCache, LedgerView, counts, eligible_minutes
from .verdict import rounded, verdict


@dataclass(frozen=True)
class Availability:
    start: float
    end: float  # evaluated up to here (exclusive)
    up: int
    down: int
    unknown: int
    masked: int
    ratio: float | None
    coverage: float | None
    objective: float
    budget_s: float  # down time the verdict allows: (1 - objective) x (observed + eligible time still to come)
    down_s: float
    verdict: str
    future_s: float = 0.0  # eligible (unmasked) time of the window still to come
    projected: float | None = None  # the ratio at the window's end if the recent burn goes on

    @classmethod
    def from_counts(cls, start: float, end: float, slices: Sequence[int], future_min: int, objective: float,
                    floor: float, recent: Sequence[int] = (), min_observed: int = 0) -> "Availability":
        """From the slice counts [up, down, unknown, masked] observed over [start, end), the unmasked
        minutes of the window still to come, and the [up, down] of the recent stretch the projection
        goes on with. Unknown minutes count in neither the ratio nor the budget: the verdict leaves
        them out. A stretch with fewer than `min_observed` minutes observed does not project (the
        window's own minutes do when they are enough; else nothing is projected)."""
        up, down, unknown, masked = (int(x) for x in slices)
        ratio = up / (up + down) if up + down else None
        eligible = up + down + unknown
        coverage = (up + down) / eligible if eligible else None
        v = verdict(up + down > 0, coverage is None or coverage >= floor, ratio is not None and ratio >= objective)
        budget = round((1 - objective) * (up + down + future_min) * 60.0, 3)
        return cls(start, end, up, down, unknown, masked, ratio, coverage, objective, budget, down * 60.0, v,
                   future_min * 60.0, _projected(up, down, future_min, recent, min_observed))

    @property
    def budget_remaining_ratio(self) -> float | None:
        return None if self.budget_s <= 0 else 1.0 - self.down_s / self.budget_s

    @property
    def budget_remaining_s(self) -> float:
        return self.budget_s - self.down_s

    @property
    def lost(self) -> bool:
        """Even if every minute still to come is up, the window ends below its objective."""
        return self.budget_remaining_s < 0

    def burn_rate(self) -> float | None:
        if self.ratio is None:
            return None
        return (1.0 - self.ratio) / (1.0 - self.objective)

    def to_dict(self) -> dict:
        return {"ratio": rounded(self.ratio), "coverage": rounded(self.coverage), "objective": self.objective,
                "slices": {"up": self.up, "down": self.down, "unknown": self.unknown, "masked": self.masked},
                "down_s": self.down_s, "budget_s": round(self.budget_s, 1),
                "budget_remaining_s": round(self.budget_remaining_s, 1), "future_s": self.future_s,
                "budget_remaining_ratio": rounded(self.budget_remaining_ratio), "burn_rate": rounded(self.burn_rate()),
                "projected_ratio": rounded(self.projected), "lost": self.lost, "verdict": self.verdict}


def _projected(up: int, down: int, future_min: int, recent: Sequence[int], min_observed: int) -> float | None:
    """The ratio at the window's end if the minutes still to come fail as often as the recent ones did
    (as the window's own did, when the recent stretch observed too little)."""
    total = up + down + future_min
    if not total:
        return None
    if not future_min:
        return up / total
    for r_up, r_down in ((int(recent[0]), int(recent[1])) if len(recent) else (0, 0), (up, down)):
        if r_up + r_down >= max(1, min_observed):
            return (up + future_min * (r_up / (r_up + r_down))) / total
    return None


def availability(view: LedgerView, targets: Sequence[str], combine_mode: str, cal: Calendar, contract: Contract,
                 start: float, end: float, now: float, cache: DayCache | None = None,
                 objective: float | None = None, projection_s: float = 0.0) -> Availability:
    """Availability over [start, end) as observed up to `now` (slices after the last closed minute are
    not counted). `objective` defaults to the contract's shorthand. With `projection_s`, the projection
    goes on at the burn of that last stretch before `now`."""
    m0, m_end = int(start // 60), int(end // 60)
    m1 = max(m0, min(m_end, int(now // 60)))
    c = counts(view, targets, combine_mode, cal, contract, m0, m1, now, cache)
    recent: Sequence[int] = ()
    if projection_s > 0 and m1 < m_end:
        recent = counts(view, targets, combine_mode, cal, contract, m1 - int(projection_s // 60), m1, now, cache)[:2]
    obj = contract.availability_objective if objective is None else objective
    return Availability.from_counts(start, m1 * 60.0, c[:4], eligible_minutes(cal, m1, m_end), obj,
                                    contract.coverage_floor, recent, min_observed(projection_s))


def min_observed(projection_s: float) -> int:
    """A projection needs half its stretch observed: one down minute of thirty is not a trend."""
    return int(projection_s // 120)


@dataclass(frozen=True)
class MonthBudget:
    """The calendar month's budget as the report would state it now: up to the last closed minute."""

    month: str  # YYYY-MM
    a: Availability


class AvailabilityObjective(Objective):
    kind = "availability"
    live_windows = ("month", "30d", "budget")
    spec: AvailabilitySpec

    @property
    def subject(self) -> str:
        return self.spec.service

    def evaluate(self, ctx: EvalContext, start: float, end: float, now: float) -> Availability:
        s = self.spec
        return availability(ctx.view, ctx.names(s.service), ctx.mode(s.service), ctx.cal, ctx.contract, start, end,
                            now, ctx.cache, s.objective)

    def live(self, ctx: EvalContext, now: float) -> dict[str, Any]:
        ms, me = ctx.cal.month_bounds(*ctx.cal.month_of(now))
        return {"month": self.evaluate(ctx, ms, me, now), "30d": self.evaluate(ctx, now - 30 * 86400, now, now),
                "budget": self.budget(ctx, now)}

    def budget(self, ctx: EvalContext, now: float) -> MonthBudget:
        """The calendar month as the report would state it at `now` (up to the last closed minute), with
        its projection."""
        s, (year, month) = self.spec, ctx.cal.month_of(now)
        ms, me = ctx.cal.month_bounds(year, month)
        a = availability(ctx.view, ctx.names(s.service), ctx.mode(s.service), ctx.cal, ctx.contract, ms, me,
                         max(ms, ctx.settled(now)), ctx.cache, s.objective, ctx.projection_s)
        return MonthBudget(f"{year:04d}-{month:02d}", a)

    def month(self, mc: Month) -> dict[str, Any]:
        s = self.spec
        a = mc.service(s.service).availability(s.objective, mc.ctx.projection_s)
        return {"row": self._row(a, "monthly availability", a.to_dict())}

    def period(self, reports: Sequence[dict[str, Any]], contract: Contract) -> dict[str, Any]:
        """The slices of every month added up: availability over all the period's observed minutes, not a mean
        of the monthly ratios. No budget or projection: the contract judges months, this only sums them."""
        s = self.spec
        rows = self.rows_in(reports)
        slices = [sum(r["details"]["slices"][k] for r in rows) for k in ("up", "down", "unknown", "masked")]
        a = Availability.from_counts(0.0, 0.0, slices, 0, s.objective, contract.coverage_floor)
        details = {k: v for k, v in a.to_dict().items() if k in ("ratio", "coverage", "objective", "slices", "down_s",
                                                                 "budget_s", "verdict")}
        return self._row(a, "availability over the period's observed minutes", details)

    def _row(self, a: Availability, what: str, details: dict[str, Any]) -> dict[str, Any]:
        s = self.spec
        return {"row": s.row, "service": s.service, "measure": "availability",
                "description": f"{s.title}: {what}, 24/7, maintenance and declared exclusions left out",
                "objective": s.objective, "value": rounded(a.ratio), "verdict": a.verdict, "details": details}

    def samples(self, window: str, a: Any) -> Iterable[Sample]:
        if isinstance(a, MonthBudget):
            yield from _budget_samples(self.spec.service, a)
            return
        svc = ("service", self.spec.service)
        w = ("window", window)
        obj = ("objective", "availability")
        if a.ratio is not None:
            yield Sample("sla_availability_ratio", (svc, w), a.ratio)
            yield Sample("sla_objective_met", (svc, obj, w), 1.0 if a.ratio >= a.objective else 0.0)
            yield Sample("sla_burn_rate", (svc, obj, w), a.burn_rate() or 0.0)
        if a.coverage is not None:
            yield Sample("sla_coverage_ratio", (svc, w), a.coverage)
        if a.budget_remaining_ratio is not None:
            yield Sample("sla_error_budget_remaining_ratio", (svc, obj, w), a.budget_remaining_ratio)
        yield Sample("sla_error_budget_remaining_seconds", (svc, w), a.budget_remaining_s)

    def status(self, window: str, a: Any, tz: Any) -> dict[str, Any]:
        if isinstance(a, MonthBudget):
            b = a.a
            return {"month": a.month, "as_of": iso(b.end, tz), "budget_s": round(b.budget_s, 1),
                    "spent_s": b.down_s, "remaining_s": round(b.budget_remaining_s, 1),
                    "projected_ratio": rounded(b.projected), "lost": b.lost}
        return {"start": iso(a.start, tz), "end": iso(a.end, tz), **a.to_dict()}

    @classmethod
    def rules(cls, objectives: Sequence["AvailabilityObjective"], rc: RuleContext) -> RuleSet:
        """Burn rates from the counted probes (maintenance and inconclusive left out), targets combined as
        the report combines slices; one alert set per objective value. The month's own budget, from the
        agent's gauges, for the contract alerts."""
        contract = rc.contract
        recording, windows = _recording([o.spec.service for o in objectives], contract)
        by_objective: dict[float, list[str]] = {}
        for o in objectives:
            by_objective.setdefault(o.spec.objective, []).append(o.spec.service)
        selectors = {objective: "" if len(by_objective) == 1 else service_selector(group)
                     for objective, group in by_objective.items()}
        alerts = [rule for objective, sel in selectors.items() for rule in _alerts(objective, sel)]
        recording += _confirmed_down(contract)
        alerts.append(_confirmed_down_alert(contract))
        month = [rule for objective, sel in selectors.items() for rule in _month_alerts(objective, sel, rc)]
        return RuleSet({AVAILABILITY_GROUP: recording, WINDOWS_GROUP: windows},
                       {AVAILABILITY_GROUP: alerts, CONTRACT_GROUP: month})


def _budget_samples(service: str, b: MonthBudget) -> Iterable[Sample]:
    labels = (("service", service), ("month", b.month))
    yield Sample("sla_month_budget_seconds", labels, b.a.budget_s)
    yield Sample("sla_month_budget_spent_seconds", labels, b.a.down_s)
    yield Sample("sla_month_budget_remaining_seconds", labels, b.a.budget_remaining_s)
    if b.a.projected is not None:
        yield Sample("sla_month_projected_availability_ratio", labels, b.a.projected)


def _combine_targets(mode: str, expr: str) -> str:
    """Service error ratio from per-target ratios, as the report combines slices."""
    if mode == "any":
        return f"max by (service, location) ({expr})"
    if mode == "all":
        return f"min by (service, location) ({expr})"
    return f"quantile by (service, location) (0.5, {expr})"


def _recording(services: list[str], contract: Contract) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_mode: dict[str, list[str]] = {}
    for svc in services:
        by_mode.setdefault(contract.policy(svc).combine, []).append(svc)
    rules: list[dict[str, Any]] = []
    for mode, group in sorted(by_mode.items()):
        sel = service_selector(group)
        for w in WINDOWS:
            per_target = (f'sum by (service, target, location) (rate(sla_counted_probes_total{{{sel},'
                          f'outcome="down"}}[{w}]))\n/\nsum by (service, target, location) '
                          f'(rate(sla_counted_probes_total{{{sel}}}[{w}]))')
            rules.append({"record": f"sla:availability_error_ratio:rate{w}", "expr": _combine_targets(mode, per_target),
                          "labels": {"objective": "availability", "combine": mode}})
    for w in WINDOWS:
        rules.append({"record": f"sla:availability_error_ratio_quorum:rate{w}",
                      "expr": quorum(f"sla:availability_error_ratio:rate{w}"), "labels": {"objective": "availability"}})
    # the same figures as the agent's /api/v1/status, from the closed-slice counters
    windows = [
        {"record": "sla:slices:increase30d",
         "expr": "sum by (service, state, location) (increase(sla_slices_total[30d]))"},
        {"record": "sla:availability:ratio30d",
         "expr": 'sum by (service, location) (increase(sla_slices_total{state="up"}[30d]))\n/\n'
                 'sum by (service, location) (increase(sla_slices_total{state=~"up|down"}[30d]))'},
    ]
    return rules, windows


def _confirmed_down(contract: Contract) -> list[dict[str, Any]]:
    """The report's rule across locations (slo/locations.py), minute by minute: how many locations closed
    the last minute down, and how many locations report at all."""
    return [
        {"record": "sla:slice_down_locations:1m",
         "expr": 'count by (service) (increase(sla_slices_total{state="down"}[1m]) > 0)'},
        {"record": "sla:locations:count", "expr": "count(count by (location) (sla_agent_build_info))"},
    ]


def _confirmed_down_alert(contract: Contract) -> dict[str, Any]:
    need = contract.min_agree
    return {
        "alert": "SLAServiceDownConfirmed",
        "expr": f"sla:slice_down_locations:1m >= scalar(clamp_max(sla:locations:count, {need}))",
        "labels": {"severity": "ticket", "slo": "availability"},
        "annotations": {
            "summary": "{{ $labels.service }}: the last minute is down at {{ $value }} locations: it counts in the "
                       "monthly report",
            "description": f"The report counts a minute down when at least {need} locations (or every location, "
                           f"when there are fewer) closed it down; one location alone is unconfirmed.",
        },
    }


def _month_alerts(objective: float, selector: str, rc: RuleContext) -> list[dict[str, Any]]:
    """The month lost (down time beyond what the month allows, whatever comes next) and at risk (at the
    recent burn it will be), when `min_agree` locations say so (or every one, when fewer report)."""
    sel, by, pct = f"{{{selector}}}" if selector else "", "service, month", f"{objective * 100:g} %"
    k = rc.contract.min_agree
    overrun = agreed(f"-sla_month_budget_remaining_seconds{sel}", by, k)
    down_share = agreed(f"(1 - sla_month_projected_availability_ratio{sel})", by, k)
    return lost_and_at_risk("SLAMonth", f"{overrun} > 0", f"{down_share} > {round(1 - objective, 9)}", by,
                            {"severity": "ticket", "slo": "availability", **CONTRACT}, ({
        "summary": f"{{{{ $labels.service }}}}: the {pct} availability of {{{{ $labels.month }}}} is lost",
        "description": f"Down time already exceeds the month's budget by {{{{ $value | humanizeDuration }}}}: "
                       f"even if every minute left is up, the month ends below {pct}. Maintenance and "
                       f"declared exclusions are left out.",
        **links(rc.url)}, {
        "summary": f"{{{{ $labels.service }}}}: the {pct} availability of {{{{ $labels.month }}}} is at risk",
        "description": f"At the burn of the last {rc.projection} the month ends with {{{{ $value | "
                       f"humanizePercentage }}}} of its time down (at most {(1 - objective) * 100:g} % keeps "
                       f"{pct}): its budget runs out before the month does.",
        **links(rc.url)}))


def _alerts(objective: float, selector: str) -> list[dict[str, Any]]:
    budget = 1 - objective
    rules = []
    for sev, long_w, short_w, factor, for_ in BURN_ALERTS:
        thr = round(factor * budget, 6)
        rules.append({
            "alert": burn_name("SLAAvailabilityBurnRate", sev, long_w),
            "expr": burn_expr("sla:availability_error_ratio_quorum:rate", thr, long_w, short_w,
                              f"{{{selector}}}" if selector else ""),
            "for": for_,
            "labels": {"severity": sev, "slo": "availability"},
            "annotations": {
                "summary": f"{{{{ $labels.service }}}} is burning its {objective * 100:g} % "
                           f"availability budget {factor:g}x too fast ({long_w} and {short_w} windows)",
                "description": f"Error ratio over {long_w}: {{{{ $value | humanizePercentage }}}} (budget "
                               f"{budget * 100:g} %). Seen by at least two locations, or by the only one. "
                               f"Maintenance windows and inconclusive probes are left out.",
            },
        })
    return rules
