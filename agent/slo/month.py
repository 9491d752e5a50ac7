"""A month as the report reads it: each service's minute states computed once, up to the report's cut-off.
The month's availability, its days, its down runs and its gaps all derive from the same states."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from .availability import Availability, min_observed
from .objective import EvalContext
from ..ledger import DOWN_I
from .slices import S_MASKED, S_UNKNOWN, S_UP, combine, counts, eligible_minutes, slice_states

S_DEGRADED = 4  # a minute with a down probe that the slice rule does not count down (an incident's "degraded")
HEARTBEAT_NAMES = ("up", "down", "unknown", "masked", "degraded")  # indexed by state


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of the True runs."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


class ServiceMonth:
    """One service over [start, until): per target, the slice states with and without the masks; the
    service's states combined from them; the maintenance and exclusion masks."""

    def __init__(self, ctx: EvalContext, service: str, start: float, end: float, until: float) -> None:
        self.ctx, self.service, self.start, self.end, self.until = ctx, service, start, end, until
        self.m0, self.m_end = int(start // 60), int(end // 60)
        self.m1 = max(self.m0, min(self.m_end, int(until // 60)))
        n = self.m1 - self.m0
        cal, down_ratio = ctx.cal, ctx.contract.slice_down_ratio
        mask = cal.mask(self.m0, self.m1)
        nomask = np.zeros(n, dtype=bool)
        self.per_target: dict[str, np.ndarray] = {}  # unmasked states, for which targets an incident touched
        self.failing: dict[str, np.ndarray] = {}  # minutes with at least one down probe, per target
        masked = []
        for name in ctx.names(service):
            m = ctx.view.matrix(name, self.m0, self.m1)
            masked.append(slice_states(m, mask, down_ratio))
            self.per_target[name] = slice_states(m, nomask, down_ratio)
            self.failing[name] = m[:, DOWN_I] > 0
        mode = ctx.mode(service)
        self.states = combine(masked, mode) if masked else _empty(n, mask)
        self.raw = combine(list(self.per_target.values()), mode) if masked else np.full(n, S_UNKNOWN, np.int8)
        self.maintenance = cal.mask(self.m0, self.m1, ("maintenance",))
        self.exclusion = cal.mask(self.m0, self.m1, ("exclusion",))
        self.future = eligible_minutes(cal, self.m1, self.m_end)

    def target_states(self, name: str) -> np.ndarray:
        """One target's minutes as the status page's strip shows them: its own slice states, a minute
        failing below the slice rule degraded, maintenance and exclusions masked."""
        st = self.per_target[name].copy()
        st[self.failing[name] & (st == S_UP)] = S_DEGRADED
        st[self.maintenance | self.exclusion] = S_MASKED
        return st

    def slices(self, a: int = 0, b: int | None = None) -> np.ndarray:
        """[up, down, unknown, masked] over the state indexes [a, b)."""
        return np.bincount(self.states[a:b], minlength=4)[:4]

    def availability(self, objective: float, projection_s: float = 0.0) -> Availability:
        """The month up to the cut-off; the projection goes on at the burn of the last `projection_s`
        (read through the view, as the live figures are: the stretch may begin in the month before)."""
        recent = self.recent(int(projection_s // 60)) if projection_s > 0 and self.future else ()
        return Availability.from_counts(self.start, self.m1 * 60.0, self.slices(), self.future, objective,
                                        self.ctx.contract.coverage_floor, recent, min_observed(projection_s))

    def recent(self, minutes: int) -> Sequence[int]:
        """[up, down] of the last `minutes` before the cut-off."""
        ctx = self.ctx
        return counts(ctx.view, ctx.names(self.service), ctx.mode(self.service), ctx.cal, ctx.contract,
                      self.m1 - minutes, self.m1, self.until, ctx.cache)[:2]

    def days(self) -> Iterator[tuple[dt.date, np.ndarray]]:
        """Each local day of the month that has begun by the cut-off, with its slice counts."""
        cal = self.ctx.cal
        day, t = cal.local_date(self.start), self.start
        while t < self.end:
            nxt = cal.local_epoch(day + dt.timedelta(days=1), dt.time(0))
            if t < self.until:
                a = int(t // 60) - self.m0
                yield day, self.slices(a, max(a, min(int(nxt // 60), self.m1) - self.m0))
            t, day = nxt, day + dt.timedelta(days=1)

    def episodes(self) -> list[tuple[int, int]]:
        """Failure episodes: runs of minutes in which some target of the service had a down probe,
        whether or not the slice rule counts the minute down."""
        if not self.failing:
            return []
        return runs(np.logical_or.reduce(list(self.failing.values())))

    def unknown_runs(self, minimum: int) -> list[tuple[int, int]]:
        return [(a, b) for a, b in runs(self.states == S_UNKNOWN) if b - a >= minimum]


def _empty(n: int, mask: np.ndarray) -> np.ndarray:
    st = np.full(n, S_UNKNOWN, dtype=np.int8)
    st[mask] = S_MASKED
    return st


@dataclass
class MonthContext:
    """The month a report is built for: its bounds, the report's `now`, and its cut-off `until`: the
    month's end, or for a month in progress the last minute no probe can still land in."""

    ctx: EvalContext
    year: int
    month: int
    start: float
    end: float
    now: float
    until: float
    _services: dict[str, ServiceMonth] = field(default_factory=dict)

    @property
    def horizon(self) -> float:
        """How far periods reaching past the month are looked at: `now` once the month is over (the
        stored rows stop at its end), the cut-off while it is in progress."""
        return self.now if self.until >= self.end else self.until

    def service(self, name: str) -> ServiceMonth:
        sm = self._services.get(name)
        if sm is None:
            sm = self._services[name] = ServiceMonth(self.ctx, name, self.start, self.end, self.until)
        return sm
