"""One verdict from several vantage points (the contract's `locations` rule).

"Your network, not our service" is the vendor's first answer to a claim; agents in several places answer
it. Each location's slices are computed as for one agent; then, minute by minute:

- `down` when at least `min_agree` locations that decided the minute saw it down;
- `up` when at least one location saw it up and fewer than `min_agree` saw it down;
- `unconfirmed` when only fewer than `min_agree` locations could decide it, all of them down: listed
  with those locations, counted neither up nor down (it lowers the coverage, like an unknown minute);
- `unknown` when no location decided it.

A location whose control checks all failed in a minute does not vote in it (its own network is suspect).
`min_agree` is capped at the number of locations of the report: one agent alone is its own quorum.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np

from .month import MonthContext, ServiceMonth, runs
from .objective import EvalContext
from .slices import S_DOWN, S_MASKED, S_UNKNOWN, S_UP, combine, slice_states


@dataclass(frozen=True)
class Votes:
    """The minute states across locations: the combined states, which minutes are unconfirmed, and
    each location's vote (its own state, or unknown where it did not vote)."""

    states: np.ndarray
    unconfirmed: np.ndarray
    votes: dict[str, np.ndarray]


def across(per_location: Mapping[str, np.ndarray], min_agree: int) -> Votes:
    """The rule above over aligned per-location state arrays (S_UP, S_DOWN, S_UNKNOWN, S_MASKED)."""
    names = list(per_location)
    st = np.stack([per_location[n] for n in names])
    ups = (st == S_UP).sum(axis=0)
    downs = (st == S_DOWN).sum(axis=0)
    need = max(1, min(min_agree, len(names)))
    out = np.full(st.shape[1], S_UNKNOWN, dtype=np.int8)
    out[ups >= 1] = S_UP
    out[downs >= need] = S_DOWN
    masked = (st == S_MASKED).any(axis=0)
    out[masked] = S_MASKED
    unconfirmed = (downs > 0) & (downs < need) & (ups == 0) & ~masked
    return Votes(out, unconfirmed, dict(per_location))


def control_failing(ctx: EvalContext, controls: Sequence[str], m0: int, m1: int) -> np.ndarray:
    """Minutes in which every control check of a location that has a result for it was down."""
    if not controls:
        return np.zeros(max(0, m1 - m0), dtype=bool)
    nomask = np.zeros(max(0, m1 - m0), dtype=bool)
    per = [slice_states(ctx.view.matrix(n, m0, m1), nomask, ctx.contract.slice_down_ratio) for n in controls]
    return combine(per, "all") == S_DOWN


class LocationsServiceMonth(ServiceMonth):
    """A service's month over several locations: the states of the rule above, in place of one agent's,
    and the per-location months behind them."""

    def __init__(self, months: Mapping[str, ServiceMonth], silenced: Mapping[str, np.ndarray], min_agree: int) -> None:
        first = next(iter(months.values()))
        self.__dict__.update({k: getattr(first, k) for k in ("ctx", "service", "start", "end", "until", "m0", "m_end",
                                                              "m1", "maintenance", "exclusion", "future")})
        self.locations = dict(months)
        self.votes = across({n: _silence(m.states, silenced[n]) for n, m in months.items()}, min_agree)
        raw = across({n: _silence(m.raw, silenced[n]) for n, m in months.items()}, min_agree)
        self.states = self.votes.states
        self.raw = raw.states
        self.failing = {}
        for m in months.values():
            for name, f in m.failing.items():
                self.failing[name] = self.failing.get(name, np.zeros_like(f)) | f

    def recent(self, minutes: int) -> Sequence[int]:
        """[up, down] of the combined states over the last `minutes` of the month before the cut-off
        (the combined states begin with the month)."""
        return self.slices(max(0, self.m1 - self.m0 - minutes))[:2]

    def unconfirmed_runs(self) -> Iterator[tuple[int, int, list[str]]]:
        """Runs of unconfirmed minutes, with the locations that saw them down."""
        for a, b in runs(self.votes.unconfirmed):
            seen = sorted(n for n, v in self.votes.votes.items() if (v[a:b] == S_DOWN).any())
            yield a, b, seen


def _silence(states: np.ndarray, failing: np.ndarray) -> np.ndarray:
    out = states.copy()
    out[failing & (out != S_MASKED)] = S_UNKNOWN
    return out


@dataclass
class LocationsMonth:
    """The month of a report over several locations: each location's MonthContext and the combined
    services. `ctx` is the first location's (the calendar, the contract, the tickets)."""

    months: dict[str, MonthContext]
    controls: tuple[str, ...]
    min_agree: int
    _services: dict[str, LocationsServiceMonth] = field(default_factory=dict)

    def __post_init__(self) -> None:
        first = next(iter(self.months.values()))
        for key in ("ctx", "year", "month", "start", "end", "now", "until"):
            setattr(self, key, getattr(first, key))

    @property
    def horizon(self) -> float:
        return next(iter(self.months.values())).horizon

    def service(self, name: str) -> LocationsServiceMonth:
        sm = self._services.get(name)
        if sm is None:
            months = {loc: mc.service(name) for loc, mc in self.months.items()}
            first = next(iter(months.values()))
            silenced = {loc: control_failing(mc.ctx, self.controls, first.m0, first.m1)
                        for loc, mc in self.months.items()}
            sm = self._services[name] = LocationsServiceMonth(months, silenced, self.min_agree)
        return sm

    def location_days(self, service: str) -> dict[str, list[tuple[dt.date, np.ndarray]]]:
        """Each location's own daily slice counts, for the per-location timelines."""
        return {loc: list(sm.days()) for loc, sm in self.service(service).locations.items()}
