"""Calendar logic: maintenance and exclusion windows, contract periods, business hours.

Everything here takes the time as an argument (cloudprober's Schedule.isIn(t) habit): no clock reads.
Instants are UTC epoch seconds; "minutes" are epoch minutes (floor(epoch / 60)).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from ..config.model import Contract, OnceWindow, WeeklyWindow
from ..timeutil import parse_timezone



@dataclass(frozen=True)
class Window:
    start: float  # epoch seconds
    end: float
    kind: str  # maintenance | exclusion
    reason: str
    source: str = "config"  # config | weekly | cli

    def to_dict(self, tz: dt.tzinfo) -> dict:
        return {"start": iso(self.start, tz), "end": iso(self.end, tz), "kind": self.kind, "reason": self.reason,
                "source": self.source, "duration_s": round(self.end - self.start, 3)}


def iso(epoch: float, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(epoch, tz).isoformat(timespec="seconds")


class Calendar:
    def __init__(self, contract: Contract, extra: Iterable[Window] = ()) -> None:
        self.contract = contract
        self.tz = parse_timezone(contract.timezone)
        self.weekly: tuple[WeeklyWindow, ...] = contract.weekly
        self.fixed: list[Window] = [_from_once(w) for w in contract.windows] + list(extra)

    def with_windows(self, extra: Iterable[Window]) -> "Calendar":
        """The same contract with another set of declared (CLI) windows."""
        return Calendar(self.contract, extra)

    # -- windows -----------------------------------------------------------------------------------
    def windows(self, start: float, end: float) -> list[Window]:
        """Every window (weekly occurrences and fixed ones) that overlaps [start, end), sorted."""
        out = [w for w in self.fixed if w.start < end and w.end > start]
        out.extend(self._weekly(start, end))
        out.sort(key=lambda w: (w.start, w.end))
        return out

    def _weekly(self, start: float, end: float) -> Iterator[Window]:
        if not self.weekly:
            return
        d0 = self.local_date(start) - dt.timedelta(days=1)
        d1 = self.local_date(end) + dt.timedelta(days=1)
        day = d0
        while day <= d1:
            for w in self.weekly:
                if day.weekday() == w.day:
                    s = self.local_epoch(day, w.start)
                    e_day = day + dt.timedelta(days=1) if w.end <= w.start else day
                    e = self.local_epoch(e_day, w.end)
                    if s < end and e > start:
                        yield Window(s, e, "maintenance", w.reason, "weekly")
            day += dt.timedelta(days=1)

    def active(self, t: float) -> Window | None:
        for w in self.windows(t - 1, t + 1):
            if w.start <= t < w.end:
                return w
        return None

    def mask(self, m0: int, m1: int, kinds: tuple[str, ...] = ("maintenance", "exclusion")) -> np.ndarray:
        """Boolean per epoch minute in [m0, m1): True when a window of those kinds touches the minute.

        A slice that straddles a window edge is masked (the window covers part of it)."""
        out = np.zeros(max(0, m1 - m0), dtype=bool)
        for w in self.windows(m0 * 60.0, m1 * 60.0):
            if w.kind not in kinds:
                continue
            a = int(w.start // 60) - m0
            b = int(-(-w.end // 60)) - m0  # ceil
            out[max(a, 0):max(min(b, m1 - m0), 0)] = True
        return out

    # -- local time ----------------------------------------------------------------------------------
    def local_date(self, epoch: float) -> dt.date:
        return dt.datetime.fromtimestamp(epoch, self.tz).date()

    def local_epoch(self, day: dt.date, t: dt.time) -> float:
        return dt.datetime.combine(day, t, tzinfo=self.tz).timestamp()

    def day_start(self, epoch: float) -> float:
        return self.local_epoch(self.local_date(epoch), dt.time(0))

    def month_bounds(self, year: int, month: int) -> tuple[float, float]:
        nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
        return self.local_epoch(dt.date(year, month, 1), dt.time(0)), self.local_epoch(nxt, dt.time(0))

    def month_of(self, epoch: float) -> tuple[int, int]:
        d = self.local_date(epoch)
        return d.year, d.month

    def period_bounds(self, epoch: float) -> tuple[float, float]:
        """The 7-day period (contract.period) holding the instant."""
        d = self.local_date(epoch)
        if self.contract.period == "iso_week":
            start = d - dt.timedelta(days=d.weekday())
            end = start + dt.timedelta(days=7)
        else:  # month_start: days 1-7, 8-14, 15-21, 22-28, 29-end
            idx = min((d.day - 1) // 7, 4)
            start = d.replace(day=1 + 7 * idx)
            if idx == 4:
                end = dt.date(d.year + (d.month == 12), d.month % 12 + 1, 1)
            else:
                end = start + dt.timedelta(days=7)
        return self.local_epoch(start, dt.time(0)), self.local_epoch(end, dt.time(0))

    def periods_of_month(self, year: int, month: int) -> list[tuple[float, float]]:
        """Every 7-day period that overlaps the month (ISO weeks may start in the month before)."""
        m0, m1 = self.month_bounds(year, month)
        out = []
        t = m0
        while t < m1:
            p = self.period_bounds(t)
            out.append(p)
            t = p[1]
        return out


def _from_once(w: OnceWindow) -> Window:
    return Window(w.start.timestamp(), w.end.timestamp(), w.kind, w.reason, "config")
