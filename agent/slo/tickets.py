"""Ticket first response (docs/contract.md, "Tickets"): the share of a priority's tickets opened in the month that were
answered within its deadline in business hours."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..calendar.business import BusinessHours
from ..config.model import Contract, TicketResponseSpec
from ..calendar import Calendar
from ..tickets import Ticket, TicketOutcome, figures_of, outcomes_of, tally
from .objective import EvalContext, Month, Objective, RuleContext, RuleSet, Sample
from .promql import CONTRACT, CONTRACT_GROUP, HEALTH_GROUP
from .verdict import rounded, verdict

STATES = ("met", "missed", "pending")
EARLIER = 400 * 86400  # tickets opened before the month and answered in it (or still open) are listed apart
OPEN_LOOKBACK = 62 * 86400  # open tickets watched for their deadline: opened this month or the one before


def ticket_verdict(figures: dict[str, Any], objective: float) -> str:
    """No ticket; none decided yet (all pending); met or missed."""
    ratio = figures["ratio"]
    return verdict(figures["total"] > 0, ratio is not None, ratio is not None and ratio >= objective)


@dataclass(frozen=True)
class OpenTickets:
    """The priority's unanswered tickets, each with the business time it has used of its deadline."""

    outcomes: list[TicketOutcome]
    cal: Calendar


def _open(t: Ticket) -> bool:
    """Not answered. A ticket resolved or closed without a first response is still one: the report counts
    it pending, then missed."""
    return t.responded_at is None


class TicketResponseObjective(Objective):
    kind = "ticket_response"
    live_windows = ("month", "open")
    per_service = False
    spec: TicketResponseSpec

    @property
    def subject(self) -> str:
        return self.spec.priority

    def outcomes(self, ctx: EvalContext, start: float, end: float, now: float) -> list:
        return outcomes_of(ctx.tickets(start, end), self.spec, BusinessHours(ctx.contract), now)

    def live(self, ctx: EvalContext, now: float) -> dict[str, Any]:
        ms, me = ctx.cal.month_bounds(*ctx.cal.month_of(now))
        return {"month": tally(self.outcomes(ctx, ms, me, now), self.spec.deadline_s),
                "open": OpenTickets([o for o in self.outcomes(ctx, now - OPEN_LOOKBACK, now + 1, now) if _open(o.ticket)],
                                    ctx.cal)}

    def month(self, mc: Month) -> dict[str, Any]:
        s = self.spec
        outcomes = self.outcomes(mc.ctx, mc.start, mc.end, mc.now)
        figures = tally(outcomes, s.deadline_s)
        row = self._row(figures)
        earlier = [t for t in mc.ctx.tickets(mc.start - EARLIER, mc.start)
                   if t.responded_at is None or mc.start <= t.responded_at < mc.end]
        others = outcomes_of(earlier, s, BusinessHours(mc.ctx.contract), mc.now)
        tz = mc.ctx.cal.tz
        return {"row": row, "tickets": {s.priority: {**figures, "list": [o.to_dict(tz) for o in outcomes],
                                                     "other_months": [o.to_dict(tz) for o in others]}}}

    def period(self, reports: Sequence[dict[str, Any]], contract: Contract) -> dict[str, Any]:
        """The tickets each month counted (those opened in it), added up."""
        rows = self.rows_in(reports)
        return self._row(figures_of(*(sum(r["details"][k] for r in rows) for k in STATES), self.spec.deadline_s))

    def _row(self, figures: dict[str, Any]) -> dict[str, Any]:
        s = self.spec
        return {"row": s.row, "service": f"ticket_{s.priority}", "measure": "first_response",
                "description": f"{s.title}: first response within {figures['deadline_h']:g} business hours for "
                               f"{s.objective * 100:g} % of tickets",
                "objective": s.objective, "value": rounded(figures["ratio"]),
                "verdict": ticket_verdict(figures, s.objective), "details": figures}

    def samples(self, window: str, figures: Any) -> Iterable[Sample]:
        prio, w = ("priority", self.spec.priority), ("window", window)
        if isinstance(figures, OpenTickets):
            for o in figures.outcomes:
                month = "{:04d}-{:02d}".format(*figures.cal.month_of(o.ticket.opened_at))
                yield Sample("sla_ticket_business_seconds_left", (prio, ("ticket", o.ticket.id), ("month", month)),
                             o.deadline_s - o.business_s)
            return
        if figures["ratio"] is not None:
            yield Sample("sla_ticket_response_met_ratio", (prio, w), figures["ratio"])
        for state in STATES:
            yield Sample("sla_tickets", (prio, ("state", state), w), figures[state])

    def status(self, window: str, figures: Any, tz: Any) -> Any:
        if isinstance(figures, OpenTickets):
            return [{**o.to_dict(tz), "business_left_s": round(o.deadline_s - o.business_s, 3)}
                    for o in figures.outcomes]
        return dict(figures)

    def status_key(self, window: str) -> tuple[str, ...]:
        return ("tickets", self.subject) + (("open",) if window == "open" else ())

    @classmethod
    def rules(cls, objectives: Sequence["TicketResponseObjective"], rc: RuleContext) -> RuleSet:
        by_objective: dict[float, list[str]] = {}
        for o in objectives:
            by_objective.setdefault(o.spec.objective, []).append(o.spec.priority)
        alerts = []
        for objective, prios in by_objective.items():
            sel = "" if len(by_objective) == 1 else f',priority=~"{"|".join(prios)}"'
            alerts.append({
                "alert": "SLATicketComplianceLow",
                "expr": f'sla_ticket_response_met_ratio{{window="month"{sel}}} < {objective}', "for": "1h",
                "labels": {"severity": "ticket", "slo": "tickets", **CONTRACT},
                "annotations": {"summary": "{{ $labels.priority }} tickets: {{ $value | humanizePercentage }} "
                                           f"answered in time this month (objective {objective * 100:g} %)",
                                "description": "Import the support tool's export with `sla-agent tickets import`."}})
        deadlines = [a for o in objectives for a in _deadline_alerts(o.spec, rc)]
        return RuleSet({}, {HEALTH_GROUP: alerts, CONTRACT_GROUP: deadlines})


def _deadline_alerts(spec: TicketResponseSpec, rc: RuleContext) -> list[dict[str, Any]]:
    """An open ticket near its first-response deadline, and past it, in business time (the agent's
    gauge counts it: weekends, holidays and closed days do not move it)."""
    left = f'min by (priority, ticket, month) (sla_ticket_business_seconds_left{{priority="{spec.priority}"}})'
    soon = spec.deadline_s * rc.ticket_deadline_soon
    deadline = f"{spec.deadline_s / 3600:g} business hours"
    links = {"report": f"{rc.url}/report?month={{{{ $labels.month }}}}"}
    return [{
        "alert": "SLATicketDeadlineSoon", "expr": f"({left} <= {soon:g}) >= 0",
        "labels": {"severity": "page", "slo": "tickets", "priority": spec.priority, **CONTRACT},
        "annotations": {
            "summary": f"{spec.priority} ticket {{{{ $labels.ticket }}}} is unanswered with {{{{ $value | "
                       f"humanizeDuration }}}} of business time left",
            "description": f"The first response is due within {deadline}; "
                           f"{rc.ticket_deadline_soon * 100:g} % or less of it is left. Worth a call to the vendor now.",
            **links}}, {
        "alert": "SLATicketDeadlineMissed", "expr": f"-{left} > 0",
        "labels": {"severity": "ticket", "slo": "tickets", "priority": spec.priority, **CONTRACT},
        "annotations": {
            "summary": f"{spec.priority} ticket {{{{ $labels.ticket }}}} missed its {deadline} first-response deadline",
            "description": "Still unanswered, {{ $value | humanizeDuration }} of business time past the deadline.",
            **links}}]
