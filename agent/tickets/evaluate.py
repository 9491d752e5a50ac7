"""First-response time of tickets in business hours, against each priority's deadline (docs/contract.md, "Tickets")."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..calendar import iso
from ..calendar.business import BusinessHours
from ..config.model import Config, TicketResponseSpec
from ..timeutil import hms
from .model import Ticket


@dataclass(frozen=True)
class TicketOutcome:
    ticket: Ticket
    business_s: float  # business time to first response (so far, when unanswered)
    deadline_s: float
    state: str  # met | missed | pending

    def to_dict(self, tz: dt.tzinfo) -> dict:
        t = self.ticket
        return {"id": t.id, "priority": t.priority, "opened_at": iso(t.opened_at, tz),
                "responded_at": iso(t.responded_at, tz) if t.responded_at is not None else None,
                "workaround_at": iso(t.workaround_at, tz) if t.workaround_at is not None else None,
                "business_response_h": round(self.business_s / 3600, 3), "deadline_h": self.deadline_s / 3600,
                "business_response_s": round(self.business_s, 3), "business_response": hms(self.business_s),
                "deadline": hms(self.deadline_s), "state": self.state}


def evaluate_ticket(t: Ticket, bh: BusinessHours, deadline_s: float, now: float) -> TicketOutcome:
    if t.responded_at is not None:
        used = bh.seconds_between(t.opened_at, t.responded_at)
        return TicketOutcome(t, used, deadline_s, "met" if used <= deadline_s else "missed")
    used = bh.seconds_between(t.opened_at, now)
    return TicketOutcome(t, used, deadline_s, "missed" if used > deadline_s else "pending")


def tally(outcomes: list[TicketOutcome], deadline_s: float) -> dict:
    """A priority's figures: tickets met, missed and pending, and the share met among those decided."""
    met = sum(o.state == "met" for o in outcomes)
    missed = sum(o.state == "missed" for o in outcomes)
    return figures_of(met, missed, len(outcomes) - met - missed, deadline_s)


def figures_of(met: int, missed: int, pending: int, deadline_s: float) -> dict:
    """The figures of a priority from its counts (a month's, or several months' added up)."""
    decided = met + missed
    return {"deadline_h": deadline_s / 3600, "total": decided + pending, "met": met, "missed": missed,
            "pending": pending, "ratio": (met / decided) if decided else None}


def outcomes_of(tickets: list[Ticket], spec: TicketResponseSpec, bh: BusinessHours, now: float) -> list[TicketOutcome]:
    return [evaluate_ticket(t, bh, spec.deadline_s, now) for t in tickets if t.priority == spec.priority]


def summarize(tickets: list[Ticket], cfg: Config, now: float) -> dict[str, dict]:
    """Per priority of the contract's table: its tally and the outcome of each ticket."""
    bh = BusinessHours(cfg.contract)
    out: dict[str, dict] = {}
    for spec in cfg.contract.objectives:
        if isinstance(spec, TicketResponseSpec):
            outcomes = outcomes_of(tickets, spec, bh, now)
            out[spec.priority] = {**tally(outcomes, spec.deadline_s), "outcomes": outcomes}
    return out
