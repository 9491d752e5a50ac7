"""Ticket first response (docs/contract.md, "Tickets"): the share of a priority's tickets opened in the month that were
answered within its deadline in business hours."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..calendar.business import BusinessHours
from ..config.model import Contract, TicketResponseSpec
from ..tickets import outcomes_of, tally
from .objective import EvalContext, Month, Objective, RuleSet, Sample
from .promql import HEALTH_GROUP
from .verdict import rounded, verdict

STATES = ("met", "missed", "pending")
EARLIER = 400 * 86400  # tickets opened before the month and answered in it (or still open) are listed apart


def ticket_verdict(figures: dict[str, Any], objective: float) -> str:
    """No ticket; none decided yet (all pending); met or missed."""
    ratio = figures["ratio"]
    return verdict(figures["total"] > 0, ratio is not None, ratio is not None and ratio >= objective)


class TicketResponseObjective(Objective):
    kind = "ticket_response"
    live_windows = ("month",)
    per_service = False
    spec: TicketResponseSpec

    @property
    def subject(self) -> str:
        return self.spec.priority

    def outcomes(self, ctx: EvalContext, start: float, end: float, now: float) -> list:
        return outcomes_of(ctx.tickets(start, end), self.spec, BusinessHours(ctx.contract), now)

    def live(self, ctx: EvalContext, now: float) -> dict[str, dict[str, Any]]:
        ms, me = ctx.cal.month_bounds(*ctx.cal.month_of(now))
        return {"month": tally(self.outcomes(ctx, ms, me, now), self.spec.deadline_s)}

    def month(self, mc: Month) -> dict[str, Any]:
        s = self.spec
        outcomes = self.outcomes(mc.ctx, mc.start, mc.end, mc.now)
        figures = tally(outcomes, s.deadline_s)
        row = {
            "row": s.row, "service": f"ticket_{s.priority}", "measure": "first_response",
            "description": f"{s.title}: first response within {figures['deadline_h']:g} business hours for "
                           f"{s.objective * 100:g} % of tickets",
            "objective": s.objective, "value": rounded(figures["ratio"]), "verdict": ticket_verdict(figures, s.objective),
            "details": figures,
        }
        earlier = [t for t in mc.ctx.tickets(mc.start - EARLIER, mc.start)
                   if t.responded_at is None or mc.start <= t.responded_at < mc.end]
        others = outcomes_of(earlier, s, BusinessHours(mc.ctx.contract), mc.now)
        tz = mc.ctx.cal.tz
        return {"row": row, "tickets": {s.priority: {**figures, "list": [o.to_dict(tz) for o in outcomes],
                                                     "other_months": [o.to_dict(tz) for o in others]}}}

    def samples(self, window: str, figures: dict[str, Any]) -> Iterable[Sample]:
        prio, w = ("priority", self.spec.priority), ("window", window)
        if figures["ratio"] is not None:
            yield Sample("sla_ticket_response_met_ratio", (prio, w), figures["ratio"])
        for state in STATES:
            yield Sample("sla_tickets", (prio, ("state", state), w), figures[state])

    def status(self, window: str, figures: dict[str, Any], tz: Any) -> dict[str, Any]:
        return dict(figures)

    def status_key(self, window: str) -> tuple[str, ...]:
        return ("tickets", self.subject)

    @classmethod
    def rules(cls, objectives: Sequence["TicketResponseObjective"], contract: Contract) -> RuleSet:
        by_objective: dict[float, list[str]] = {}
        for o in objectives:
            by_objective.setdefault(o.spec.objective, []).append(o.spec.priority)
        alerts = []
        for objective, prios in by_objective.items():
            sel = "" if len(by_objective) == 1 else f',priority=~"{"|".join(prios)}"'
            alerts.append({
                "alert": "SLATicketComplianceLow",
                "expr": f'sla_ticket_response_met_ratio{{window="month"{sel}}} < {objective}', "for": "1h",
                "labels": {"severity": "ticket", "slo": "tickets"},
                "annotations": {"summary": "{{ $labels.priority }} tickets: {{ $value | humanizePercentage }} "
                                           f"answered in time this month (objective {objective * 100:g} %)",
                                "description": "Import the support tool's export with `sla-agent tickets import`."}})
        return RuleSet({}, {HEALTH_GROUP: alerts})
