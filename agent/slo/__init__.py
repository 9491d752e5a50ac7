"""The SLO engine: pure functions of (ledger view, calendar, now) -> typed results. No clock reads.

CONTRACT §4 (availability) and §5 (latency). Verdicts come from exact counts only.
"""
from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
from fastdigest import TDigest

from ..calendar import Calendar
from ..config.model import Config, Contract
from ..ledger import BELOW0_I, DOWN_I, LAT_I, UP_I, merged_summary

S_UP, S_DOWN, S_UNKNOWN, S_MASKED = 0, 1, 2, 3
MET, MISSED, INSUFFICIENT, NO_DATA = "met", "missed", "insufficient_data", "no_data"


class LedgerView(Protocol):
    def matrix(self, target: str, m0: int, m1: int) -> np.ndarray: ...

    def digests(self, target: str, start: float, end: float) -> list[TDigest]: ...


def threshold_label(seconds: float) -> str:
    return f"{seconds:g}"


def objective_name(seconds: float) -> str:
    return f"latency_{int(round(seconds * 1000))}ms" if seconds < 1 else f"latency_{seconds:g}s"


# -- slices ----------------------------------------------------------------------------------------
def slice_states(m: np.ndarray, mask: np.ndarray, down_ratio: float) -> np.ndarray:
    """One state per minute slice of one target: masked, unknown (no up/down probe), down (share of
    down among up/down >= down_ratio) or up."""
    up = m[:, UP_I].astype(np.int32)
    down = m[:, DOWN_I].astype(np.int32)
    n = up + down
    states = np.full(len(m), S_UP, dtype=np.int8)
    states[(n > 0) & (down >= down_ratio * n)] = S_DOWN
    states[n == 0] = S_UNKNOWN
    states[mask] = S_MASKED
    return states


def combine(per_target: Sequence[np.ndarray], mode: str) -> np.ndarray:
    """Service slices from target slices. Unknown targets are left out while one target is known:
    any = down when one known target is down; all = down when every known target is down;
    majority = down when more than half of the known targets are down."""
    if len(per_target) == 1:
        return per_target[0]
    st = np.stack(per_target)
    known = ((st == S_UP) | (st == S_DOWN)).sum(axis=0)
    downs = (st == S_DOWN).sum(axis=0)
    if mode == "any":
        is_down = downs >= 1
    elif mode == "all":
        is_down = (downs == known) & (known > 0)
    else:
        is_down = downs * 2 > known
    out = np.where(known == 0, S_UNKNOWN, np.where(is_down, S_DOWN, S_UP)).astype(np.int8)
    out[(st == S_MASKED).any(axis=0)] = S_MASKED
    return out


# -- availability ------------------------------------------------------------------------------------
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
    budget_s: float  # allowed down time for the whole window
    down_s: float
    verdict: str

    @property
    def budget_remaining_ratio(self) -> float | None:
        return None if self.budget_s <= 0 else 1.0 - self.down_s / self.budget_s

    @property
    def budget_remaining_s(self) -> float:
        return self.budget_s - self.down_s

    def burn_rate(self) -> float | None:
        if self.ratio is None:
            return None
        return (1.0 - self.ratio) / (1.0 - self.objective)

    def to_dict(self) -> dict:
        return {"ratio": _r(self.ratio), "coverage": _r(self.coverage), "objective": self.objective,
                "slices": {"up": self.up, "down": self.down, "unknown": self.unknown, "masked": self.masked},
                "down_s": self.down_s, "budget_s": round(self.budget_s, 1),
                "budget_remaining_ratio": _r(self.budget_remaining_ratio), "burn_rate": _r(self.burn_rate()),
                "verdict": self.verdict}


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else round(float(x), nd)


def service_states(view: LedgerView, targets: Sequence[str], combine_mode: str, cal: Calendar,
                   m0: int, m1: int, down_ratio: float) -> np.ndarray:
    mask = cal.mask(m0, m1)
    per = [slice_states(view.matrix(t, m0, m1), mask, down_ratio) for t in targets]
    if not per:
        st = np.full(max(0, m1 - m0), S_UNKNOWN, dtype=np.int8)
        st[mask] = S_MASKED
        return st
    return combine(per, combine_mode)


def range_counts(view: LedgerView, targets: Sequence[str], combine_mode: str, cal: Calendar, contract: Contract,
                 m0: int, m1: int) -> np.ndarray:
    """Over epoch minutes [m0, m1): service slices [up, down, unknown, masked], then the unmasked latency
    population and the requests below each threshold."""
    mask = cal.mask(m0, m1)
    keep = ~mask
    k = len(contract.thresholds)
    lat = np.zeros(1 + k, dtype=np.int64)
    per = []
    for t in targets:
        m = view.matrix(t, m0, m1)
        kept = m[keep]
        lat[0] += int(kept[:, LAT_I].sum(dtype=np.int64))
        lat[1:] += kept[:, BELOW0_I:BELOW0_I + k].sum(axis=0, dtype=np.int64)
        per.append(slice_states(m, mask, contract.slice_down_ratio))
        time.sleep(0)  # let the probe loop's thread take the GIL between targets (evaluation runs in a worker)
    if per:
        st = combine(per, combine_mode)
    else:
        st = np.full(max(0, m1 - m0), S_UNKNOWN, dtype=np.int8)
        st[mask] = S_MASKED
    slices = np.bincount(st, minlength=4)[:4].astype(np.int64)
    return np.concatenate([slices, lat])


class DayCache:
    """The counts of closed local days, so that a live evaluation recomputes only today's minutes (and
    the partial first day of a rolling window) instead of a month of minutes for every target.

    A day is closed `settle` seconds after it ends. The agent replaces the cache when the calendar or
    the targets change; a sample written far behind the newest one (a wall-clock jump back) clears it."""

    def __init__(self, cal: Calendar, settle: float = 600.0) -> None:
        self.cal = cal
        self.settle = settle
        self._days: dict[tuple, np.ndarray] = {}
        self._old_writes = 0

    def counts(self, view: LedgerView, targets: Sequence[str], mode: str, contract: Contract, m0: int, m1: int,
               now: float) -> np.ndarray:
        old = getattr(view, "old_writes", 0)
        if old != self._old_writes:
            self._days.clear()
            self._old_writes = old
        total = np.zeros(4 + 1 + len(contract.thresholds), dtype=np.int64)
        key_targets = tuple(targets)
        t = m0
        while t < m1:
            day = self.cal.local_date(t * 60.0)
            day_start = int(self.cal.local_epoch(day, dt.time(0)) // 60)
            day_end = int(self.cal.local_epoch(day + dt.timedelta(days=1), dt.time(0)) // 60)
            seg_end = min(m1, day_end)
            if t == day_start and seg_end == day_end and day_end * 60 <= now - self.settle:
                key = (key_targets, mode, day_start)
                c = self._days.get(key)
                if c is None:
                    c = self._days[key] = range_counts(view, targets, mode, self.cal, contract, t, seg_end)
            else:
                c = range_counts(view, targets, mode, self.cal, contract, t, seg_end)
            total += c
            t = seg_end
        if len(self._days) > 20_000:  # services x days x windows: bounded
            self._days.clear()
        return total


def _counts(view: LedgerView, targets: Sequence[str], mode: str, cal: Calendar, contract: Contract, m0: int,
            m1: int, now: float, cache: DayCache | None) -> np.ndarray:
    if cache is not None:
        return cache.counts(view, targets, mode, contract, m0, m1, now)
    return range_counts(view, targets, mode, cal, contract, m0, m1)


def availability(view: LedgerView, targets: Sequence[str], combine_mode: str, cal: Calendar, contract: Contract,
                 start: float, end: float, now: float, cache: DayCache | None = None) -> Availability:
    """Availability over [start, end) as observed up to `now` (slices after the last closed minute are
    not counted). The budget is for the whole window: (1 - objective) x its unmasked time."""
    m0, m_end = int(start // 60), int(end // 60)
    m1 = max(m0, min(m_end, int(now // 60)))
    up, down, unknown, masked = (int(x) for x in _counts(view, targets, combine_mode, cal, contract, m0, m1, now,
                                                          cache)[:4])
    eligible_window = int((~cal.mask(m0, m_end)).sum())
    ratio = up / (up + down) if up + down else None
    eligible = up + down + unknown
    coverage = (up + down) / eligible if eligible else None
    obj = contract.availability_objective
    if up + down == 0:
        verdict = NO_DATA
    elif coverage is not None and coverage < contract.coverage_floor:
        verdict = INSUFFICIENT
    else:
        verdict = MET if ratio is not None and ratio >= obj else MISSED
    return Availability(start, m1 * 60.0, up, down, unknown, masked, ratio, coverage, obj,
                        (1 - obj) * eligible_window * 60.0, down * 60.0, verdict)


# -- latency ----------------------------------------------------------------------------------------
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
        """Per objective: 1 untouched, 0 spent, < 0 overspent. Slow requests allowed for the period are
        projected from the current rate: (1 - ratio) x count / elapsed share."""
        out: list[float | None] = []
        for b, ratio in zip(self.below, self.objectives):
            if not self.count:
                out.append(None)
                continue
            projected = self.count / max(self.elapsed_ratio, 1e-9)
            allowed = (1 - ratio) * projected
            slow = self.count - b
            out.append(1.0 - slow / allowed if allowed > 0 else (1.0 if slow == 0 else -1.0))
        return tuple(out)

    def to_dict(self) -> dict:
        fr = self.fractions()
        return {
            "count": self.count,
            "below": {threshold_label(t): {"count": b, "fraction": _r(f), "objective": o,
                                           "met": (None if f is None else f >= o)}
                      for t, b, f, o in zip(self.thresholds, self.below, fr, self.objectives)},
            "quantiles_s": {q: _r(v) for q, v in self.quantiles.items()},
            "coverage": _r(self.coverage),
            "verdict": self.verdict,
        }


def latency(view: LedgerView, targets: Sequence[str], cal: Calendar, contract: Contract, start: float, end: float,
            now: float, *, digest_view: LedgerView | None = None, coverage_targets_combine: str = "any",
            cache: DayCache | None = None) -> Latency:
    """Exact fractions over [start, end) up to `now`; the open minute counts too (requests are requests,
    unlike slices), so a live window agrees with Prometheus' rate() over the same span."""
    m0, m_end = int(start // 60), int(end // 60)
    m1 = max(m0, min(m_end, math.ceil(now / 60)))
    c = _counts(view, targets, coverage_targets_combine, cal, contract, m0, m1, now, cache)
    up, down, unknown = int(c[0]), int(c[1]), int(c[2])
    count = int(c[4])
    below = c[5:]
    eligible = up + down + unknown
    observed = up + down
    coverage = observed / eligible if eligible else None
    dv = digest_view or view
    digests: list[TDigest] = []
    for t in targets:
        digests.extend(dv.digests(t, start, min(end, now)))
    quantiles, sketch_count, sketch_sum = merged_summary(digests)
    below_t = tuple(int(b) for b in below)
    fr = [b / count if count else None for b in below_t]
    ratios = tuple(o.ratio for o in contract.latency_objectives)
    met = tuple(None if f is None else f >= r for f, r in zip(fr, ratios))
    if count == 0:
        verdict = NO_DATA
    elif coverage is not None and coverage < contract.coverage_floor:
        verdict = INSUFFICIENT
    else:
        verdict = MET if all(met) else MISSED
    elapsed = (min(end, now) - start) / (end - start) if end > start else 1.0
    return Latency(start, m1 * 60.0, count, below_t, contract.thresholds, ratios, quantiles, coverage, verdict,
                   max(0.0, min(1.0, elapsed)), met, sketch_count, sketch_sum)


def combine_verdicts(verdicts: Sequence[str]) -> str:
    """A month's latency row: met when every period is met; missed when one is missed."""
    if not verdicts:
        return NO_DATA
    if MISSED in verdicts:
        return MISSED
    if INSUFFICIENT in verdicts:
        return INSUFFICIENT
    if all(v == NO_DATA for v in verdicts):
        return NO_DATA
    if NO_DATA in verdicts:
        return INSUFFICIENT
    return MET


# -- a full live snapshot ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceSnapshot:
    service: str
    availability: dict[str, Availability]  # window -> figures ("month", "30d")
    latency: dict[str, Latency]  # ("period", "7d"), only for latency services


@dataclass(frozen=True)
class Snapshot:
    now: float
    services: dict[str, ServiceSnapshot]
    maintenance_active: bool


def evaluate(view: LedgerView, cfg: Config, cal: Calendar, now: float, cache: DayCache | None = None) -> Snapshot:
    """Everything the exporter and /api/v1/status show, for `now`."""
    c = cfg.contract
    ms, me = cal.month_bounds(*cal.month_of(now))
    ps, pe = cal.period_bounds(now)
    out: dict[str, ServiceSnapshot] = {}
    for service in cfg.services:
        names = [t.name for t in cfg.targets_of(service)]
        mode = c.policy(service).combine
        av = {
            "month": availability(view, names, mode, cal, c, ms, me, now, cache),
            "30d": availability(view, names, mode, cal, c, now - 30 * 86400, now, now, cache),
        }
        lat: dict[str, Latency] = {}
        if service in c.latency_services:
            lat["period"] = latency(view, names, cal, c, ps, pe, now, coverage_targets_combine=mode, cache=cache)
            lat["7d"] = latency(view, names, cal, c, now - 7 * 86400, now, now, coverage_targets_combine=mode,
                                cache=cache)
        out[service] = ServiceSnapshot(service, av, lat)
    return Snapshot(now, out, cal.active(now) is not None)
