"""The contract's objectives as classes, and the live snapshot of all of them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..calendar import Calendar
from ..config.model import Config, Contract
from ..probes import probe_type
from ..store.chain import SEAL_DELAY
from ..tickets import Ticket
from .availability import AvailabilityObjective
from .latency import LatencyObjective
from .objective import EvalContext, Objective
from .slices import DayCache, LedgerView
from .tickets import TicketResponseObjective

OBJECTIVE_CLASSES: dict[str, type[Objective]] = {
    cls.kind: cls for cls in (AvailabilityObjective, LatencyObjective, TicketResponseObjective)}


def objectives_of(contract: Contract) -> tuple[Objective, ...]:
    """One objective per row of the contract's table, in row order."""
    return tuple(OBJECTIVE_CLASSES[s.kind](s) for s in sorted(contract.objectives, key=lambda s: s.row))


def by_class(objectives: Iterable[Objective]) -> dict[type[Objective], list[Objective]]:
    out: dict[type[Objective], list[Objective]] = {}
    for o in objectives:
        out.setdefault(type(o), []).append(o)
    return out


def settle_of(cfg: Config) -> float:
    """A result lands in the minute its probe started, up to the longest a probe can run later (a
    transaction: a timeout per step), and reaches the database up to a flush after that."""
    longest = (probe_type(t).longest(t.options, t.timeout) for t in cfg.all_targets)
    return max(longest, default=0.0) + cfg.agent.flush_interval


def seal_delay_of(cfg: Config) -> float:
    """How long after an hour ends its rows are sealed, never to change: a quarter of an hour, or longer
    when a result can still land in it later (a long transaction; a minute more for a browser worker that
    starts first and answers after the check's timeout). A result refused behind a seal would be a slow
    one, so the seal waits for the slowest."""
    return max(SEAL_DELAY, settle_of(cfg) + 60.0)


def context(view: LedgerView, cfg: Config, cal: Calendar, *, cache: DayCache | None = None,
            tickets: Callable[[float, float], list[Ticket]] | None = None) -> EvalContext:
    targets = {s: tuple(t.name for t in cfg.targets_of(s)) for s in cfg.services}
    ctx = EvalContext(view, cal, cfg.contract, targets, cache=cache, settle=settle_of(cfg),
                      projection_s=cfg.alerts.projection_window)
    if tickets is not None:
        ctx.tickets = tickets
    return ctx


@dataclass(frozen=True)
class Snapshot:
    """Every objective's live windows at `now`: (objective, {window: result}) in row order."""

    now: float
    results: tuple[tuple[Objective, dict[str, Any]], ...]
    maintenance_active: bool

    def of(self, kind: str, subject: str) -> dict[str, Any]:
        """The live results of one objective, such as ("availability", "api"); empty when absent."""
        return next((r for o, r in self.results if o.kind == kind and o.subject == subject), {})


def evaluate(view: LedgerView, cfg: Config, cal: Calendar, now: float, cache: DayCache | None = None,
             tickets: Callable[[float, float], list[Ticket]] | None = None) -> Snapshot:
    """Everything the exporter and /api/v1/status show, for `now`."""
    if cache is not None:
        cache.new_evaluation(now)
    ctx = context(view, cfg, cal, cache=cache, tickets=tickets)
    results = tuple((o, o.live(ctx, now)) for o in objectives_of(cfg.contract))
    return Snapshot(now, results, cal.active(now) is not None)
