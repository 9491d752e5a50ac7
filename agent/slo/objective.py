"""What every objective class has: the context it evaluates in, and the ways its results leave the engine.

An objective is one class (slo/availability.py, slo/latency.py, slo/tickets.py) built from one entry of
the contract's table. It evaluates itself over any window of a ledger view with the shared verdict
ladder; its live windows feed the exporter and /api/v1/status, its month feeds the report's row, and it
says which metric samples and which Prometheus rules stand for it. Exporter, status page, report and
rule generator only iterate over the objectives.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Mapping, Protocol, Sequence

from ..calendar import Calendar
from ..config.model import Contract
from ..tickets import Ticket
from .slices import DayCache, LedgerView

@dataclass(frozen=True)
class Sample:
    """One metric sample an objective stands for: family name, labels, value, and the sample's own name
    when it differs from the family's (a summary's _sum and _count)."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    value: float
    name: str = ""


@dataclass
class EvalContext:
    """What objectives evaluate over: a ledger view (the live ledger or the stored one), the calendar,
    the contract, the target names of each service, the tickets, and the cache of closed days."""

    view: LedgerView
    cal: Calendar
    contract: Contract
    targets: Mapping[str, tuple[str, ...]]
    tickets: Callable[[float, float], list[Ticket]] = field(default=lambda start, end: [])
    cache: DayCache | None = None
    settle: float = 0.0  # how long after a minute its results may still land (slowest timeout + a flush)
    projection_s: float = 86400.0  # projections go on at the burn of this last stretch

    def settled(self, now: float) -> float:
        """The last closed minute as of `now`: nothing before it changes any more (the report's cut-off)."""
        return math.floor((now - self.settle) / 60) * 60.0

    def names(self, service: str) -> list[str]:
        return list(self.targets.get(service, ()))

    def mode(self, service: str) -> str:
        return self.contract.policy(service).combine


class Month(Protocol):
    """The month a report is built for (slo/month.py's MonthContext)."""

    ctx: EvalContext
    year: int
    month: int
    start: float
    end: float
    now: float
    until: float
    horizon: float

    def service(self, name: str) -> Any:
        """The service's ServiceMonth: its minute states, computed once."""


@dataclass(frozen=True)
class RuleContext:
    """What the rules of the objectives are generated for: the contract, where people reach the agent
    (links in the contract alerts), and when a ticket's deadline warns."""

    contract: Contract
    url: str = "http://127.0.0.1:9810"
    ticket_deadline_soon: float = 0.25
    projection_s: float = 86400.0

    @property
    def projection(self) -> str:
        """The projection's stretch as the annotations say it: "1 d", "6 h"."""
        s = self.projection_s
        return f"{s / 86400:g} d" if s % 86400 == 0 else f"{s / 3600:g} h"


@dataclass(frozen=True)
class RuleSet:
    """Prometheus rules an objective stands for: recording rules by group, alerts by group."""

    recording: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class Objective:
    """Base of the objective classes; `spec` is the contract table's entry."""

    kind: ClassVar[str]
    live_windows: ClassVar[tuple[str, ...]]
    per_service: ClassVar[bool] = True  # about a service (its status sits under services.<name>.<kind>)

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.spec == self.spec  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.spec))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    @property
    def row(self) -> int:
        return self.spec.row

    @property
    def subject(self) -> str:
        """The service, or the ticket priority."""
        raise NotImplementedError

    def live(self, ctx: EvalContext, now: float) -> dict[str, Any]:
        """The results of each live window at `now`."""
        raise NotImplementedError

    def month(self, mc: Month) -> dict[str, Any]:
        """The report's row for the month, plus the sections the objective adds to the report."""
        raise NotImplementedError

    def period(self, reports: Sequence[dict[str, Any]], contract: Contract) -> dict[str, Any]:
        """The row over several months from their reports (what month() gave each), judged as a month is."""
        raise NotImplementedError

    def rows_in(self, reports: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """This objective's row in each month's report."""
        return [next(r for r in doc["rows"] if r["row"] == self.row) for doc in reports]

    def samples(self, window: str, result: Any) -> Iterable[Sample]:
        raise NotImplementedError

    def status(self, window: str, result: Any, tz: Any) -> dict[str, Any]:
        raise NotImplementedError

    def status_key(self, window: str) -> tuple[str, ...]:
        """Where the window's figures sit in /api/v1/status."""
        return ("services", self.subject, self.kind, window)

    @classmethod
    def rules(cls, objectives: Any, rc: RuleContext) -> RuleSet:
        """The Prometheus rules of every objective of this class in the table."""
        return RuleSet()
