"""One-minute slices and exact counts over ranges of the ledger (docs/contract.md): pure functions of a
ledger view, the calendar and the contract's slice rules. No clock reads."""
from __future__ import annotations

import datetime as dt
import time
from typing import Protocol, Sequence

import numpy as np
from fastdigest import TDigest

from ..calendar import Calendar
from ..config.model import Contract
from ..ledger import BELOW0_I, DOWN_I, LAT_I, UP_I

S_UP, S_DOWN, S_UNKNOWN, S_MASKED = 0, 1, 2, 3
STATE_NAMES = {S_UP: "up", S_DOWN: "down", S_UNKNOWN: "unknown", S_MASKED: "masked"}


class LedgerView(Protocol):
    def matrix(self, target: str, m0: int, m1: int) -> np.ndarray: ...

    def digests(self, target: str, start: float, end: float) -> list[TDigest]: ...


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


KEEP_DAYS = 33  # the month to date reaches 31 days back, the rolling window 30: a spare day each way


class DayCache:
    """The counts of closed local days, so that a live evaluation recomputes only today's minutes (and
    the partial first day of a rolling window) instead of a month of minutes for every target.

    A day is closed `settle` seconds after it ends. The agent replaces the cache when the calendar or
    the targets change; a sample written far behind the newest one (a wall-clock jump back) clears it.
    Within one evaluation the parts of days are kept too: several windows end at the same minute (the
    month's budget and the projections' last day), and the evaluation reads them all at once."""

    def __init__(self, cal: Calendar, settle: float = 600.0) -> None:
        self.cal = cal
        self.settle = settle
        self._days: dict[tuple, np.ndarray] = {}
        self._parts: dict[tuple, np.ndarray] = {}
        self._old_writes = 0

    def new_evaluation(self, now: float) -> None:
        """Parts of days are only good for one evaluation: results keep landing in the open minutes. Days
        older than any live window reaches (a month, 30 days) are let go."""
        self._parts.clear()
        cut = int(now // 60) - KEEP_DAYS * 1440
        for key in [k for k in self._days if k[2] < cut]:
            del self._days[key]

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
                key = (key_targets, mode, t, seg_end)
                c = self._parts.get(key)
                if c is None:
                    if len(self._parts) > 10_000:  # a caller that never starts a new evaluation
                        self._parts.clear()
                    c = self._parts[key] = range_counts(view, targets, mode, self.cal, contract, t, seg_end)
            total += c
            t = seg_end
        if len(self._days) > 20_000:  # services x days x windows: bounded
            self._days.clear()
        return total


def counts(view: LedgerView, targets: Sequence[str], mode: str, cal: Calendar, contract: Contract, m0: int,
           m1: int, now: float, cache: DayCache | None) -> np.ndarray:
    if cache is not None:
        return cache.counts(view, targets, mode, contract, m0, m1, now)
    return range_counts(view, targets, mode, cal, contract, m0, m1)


def eligible_minutes(cal: Calendar, m0: int, m1: int) -> int:
    """Unmasked minutes of [m0, m1)."""
    return int((~cal.mask(m0, m1)).sum()) if m1 > m0 else 0
