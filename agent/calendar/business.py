"""Business time for ticket response (docs/contract.md, "Tickets"): 09:00-18:30 on working days in the contract time
zone, public holidays (the `holidays` package, France by default) and configured closed days excluded."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays as holidays_lib

from ..config.model import Contract
from ..timeutil import parse_timezone


class BusinessHours:
    def __init__(self, contract: Contract) -> None:
        self.tz = parse_timezone(contract.business_timezone or contract.timezone)
        self.start = contract.business_start
        self.end = contract.business_end
        self.country = contract.holidays_country
        self.subdivision = contract.holidays_subdivision
        self.closed = frozenset(contract.closed_days)

    def _holidays(self, year: int) -> dict:
        return _country_holidays(self.country, self.subdivision, year)

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in self.closed and day not in self._holidays(day.year)

    def _span(self, day: dt.date) -> tuple[float, float]:
        a = dt.datetime.combine(day, self.start, tzinfo=self.tz).timestamp()
        b = dt.datetime.combine(day, self.end, tzinfo=self.tz).timestamp()
        return a, b

    def seconds_between(self, start: float, end: float) -> float:
        """Business seconds in [start, end) (0 when end <= start)."""
        if end <= start:
            return 0.0
        day = dt.datetime.fromtimestamp(start, self.tz).date()
        last = dt.datetime.fromtimestamp(end, self.tz).date()
        total = 0.0
        while day <= last:
            if self.is_working_day(day):
                a, b = self._span(day)
                lo, hi = max(a, start), min(b, end)
                if hi > lo:
                    total += hi - lo
            day += dt.timedelta(days=1)
        return total

    def deadline(self, start: float, business_seconds: float) -> float:
        """The instant at which `business_seconds` of business time have passed since `start`."""
        remaining = business_seconds
        day = dt.datetime.fromtimestamp(start, self.tz).date()
        for _ in range(3660):  # ten years of days at most
            if self.is_working_day(day):
                a, b = self._span(day)
                lo = max(a, start)
                if b > lo:
                    if b - lo >= remaining:
                        return lo + remaining
                    remaining -= b - lo
            day += dt.timedelta(days=1)
        raise ValueError("deadline more than ten years away")


@lru_cache(maxsize=64)
def _country_holidays(country: str, subdivision: str | None, year: int) -> dict:
    return dict(holidays_lib.country_holidays(country, subdiv=subdivision, years=year))
