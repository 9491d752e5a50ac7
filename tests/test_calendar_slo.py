"""Calendar and SLO engine with fixed datetimes: DST edges, ISO weeks, slices, combine, budgets."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from agent.calendar import Calendar, Window
from agent.config import parse_config
from agent.config.model import Contract
from agent.ledger import Ledger
from agent.probes import ProbeResult
from agent.slo import (INSUFFICIENT, MET, MISSED, NO_DATA, S_DOWN, S_MASKED, S_UNKNOWN, S_UP, availability, combine,
                       combine_verdicts, latency, slice_states)

UTC = dt.timezone.utc


def ts(s: str) -> float:
    return dt.datetime.fromisoformat(s).timestamp()


def cal(tz="+01:00", period="iso_week", extra=()) -> Calendar:
    return Calendar(Contract(timezone=tz, period=period), extra)


def windows_utc(c: Calendar, day: str) -> list[tuple[str, str]]:
    start = ts(day + "T00:00:00+00:00")
    return [(dt.datetime.fromtimestamp(w.start, UTC).strftime("%H:%M"),
             dt.datetime.fromtimestamp(w.end, UTC).strftime("%H:%M"))
            for w in c.windows(start, start + 86400) if w.start >= start]


@pytest.mark.parametrize("day, fixed, paris", [
    ("2026-01-08", ("05:00", "07:00"), ("05:00", "07:00")),  # winter
    ("2026-03-26", ("05:00", "07:00"), ("05:00", "07:00")),  # Thursday before the spring change (29 March)
    ("2026-04-02", ("05:00", "07:00"), ("04:00", "06:00")),  # Thursday after it
    ("2026-07-02", ("05:00", "07:00"), ("04:00", "06:00")),  # summer
    ("2026-10-22", ("05:00", "07:00"), ("04:00", "06:00")),  # Thursday before the autumn change (25 October)
    ("2026-10-29", ("05:00", "07:00"), ("05:00", "07:00")),  # Thursday after it
])
def test_thursday_window_in_utc_at_both_dst_edges(day, fixed, paris):
    assert windows_utc(cal("+01:00"), day) == [fixed]
    assert windows_utc(cal("Europe/Paris"), day) == [paris]


def test_window_only_on_thursdays_and_active():
    c = cal()
    assert windows_utc(c, "2026-11-25") == []  # Wednesday
    assert c.active(ts("2026-11-26T06:30:00+01:00")) is not None
    assert c.active(ts("2026-11-26T08:00:00+01:00")) is None  # end is exclusive
    assert c.active(ts("2026-11-26T05:59:59+01:00")) is None


def test_window_past_midnight():
    contract = parse_config('contract: {maintenance: [{weekly: {day: sunday, start: "23:00", end: "01:00"}}]}\n'
                            'targets: [{name: a, service: web, url: "http://127.0.0.1:9/"}]').contract
    c = Calendar(contract)
    assert c.active(ts("2026-11-29T23:30:00+01:00")) is not None
    assert c.active(ts("2026-11-30T00:30:00+01:00")) is not None
    assert c.active(ts("2026-11-30T01:00:00+01:00")) is None


def test_slice_straddling_a_window_edge_is_masked():
    w = Window(ts("2026-11-24T10:00:30+00:00"), ts("2026-11-24T10:05:30+00:00"), "exclusion", "ISP outage")
    c = Calendar(Contract(weekly=()), [w])
    m0 = int(ts("2026-11-24T09:58:00+00:00") // 60)
    mask = c.mask(m0, m0 + 10)
    # 09:58 09:59 | 10:00 (half) 10:01 .. 10:04 10:05 (half) | 10:06 10:07
    assert mask.tolist() == [False, False, True, True, True, True, True, True, False, False]


def test_iso_weeks_cross_months_and_years():
    c = cal()
    s, e = c.period_bounds(ts("2027-01-02T12:00:00+01:00"))
    assert (dt.datetime.fromtimestamp(s, c.tz).isoformat(), dt.datetime.fromtimestamp(e, c.tz).isoformat()) == (
        "2026-12-28T00:00:00+01:00", "2027-01-04T00:00:00+01:00")
    periods = c.periods_of_month(2027, 1)
    starts = [dt.datetime.fromtimestamp(p[0], c.tz).date().isoformat() for p in periods]
    assert starts == ["2026-12-28", "2027-01-04", "2027-01-11", "2027-01-18", "2027-01-25"]
    nov = [dt.datetime.fromtimestamp(p[0], c.tz).date().isoformat() for p in c.periods_of_month(2026, 11)]
    assert nov == ["2026-10-26", "2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23", "2026-11-30"]


def test_month_start_periods():
    c = cal(period="month_start")
    periods = c.periods_of_month(2026, 2)
    days = [(dt.datetime.fromtimestamp(a, c.tz).day, (dt.datetime.fromtimestamp(b, c.tz) - dt.timedelta(days=1)).day)
            for a, b in periods]
    assert days == [(1, 7), (8, 14), (15, 21), (22, 28)]
    days = [dt.datetime.fromtimestamp(a, c.tz).day for a, _ in cal(period="month_start").periods_of_month(2026, 12)]
    assert days == [1, 8, 15, 22, 29]


# -- slices and combine -------------------------------------------------------------------------------
def counts(rows):
    m = np.zeros((len(rows), 6), dtype=np.uint16)
    for i, (up, down) in enumerate(rows):
        m[i, 0], m[i, 1] = up, down
    return m


def test_slice_states_half_down_is_down():
    m = counts([(60, 0), (30, 30), (31, 29), (0, 0), (0, 60), (60, 0)])
    mask = np.array([False, False, False, False, False, True])
    assert slice_states(m, mask, 0.5).tolist() == [S_UP, S_DOWN, S_UP, S_UNKNOWN, S_DOWN, S_MASKED]


def test_combine_modes():
    a = np.array([S_UP, S_DOWN, S_DOWN, S_UNKNOWN, S_UNKNOWN], dtype=np.int8)
    b = np.array([S_UP, S_UP, S_DOWN, S_DOWN, S_UNKNOWN], dtype=np.int8)
    c = np.array([S_UP, S_UP, S_UP, S_UNKNOWN, S_UNKNOWN], dtype=np.int8)
    assert combine([a, b, c], "any").tolist() == [S_UP, S_DOWN, S_DOWN, S_DOWN, S_UNKNOWN]
    assert combine([a, b, c], "all").tolist() == [S_UP, S_UP, S_UP, S_DOWN, S_UNKNOWN]
    assert combine([a, b, c], "majority").tolist() == [S_UP, S_UP, S_DOWN, S_DOWN, S_UNKNOWN]


# -- availability and budgets ------------------------------------------------------------------------------
class ArrayView:
    """A ledger view over explicit per-minute arrays (for fixed-datetime tests)."""

    def __init__(self, m0: int, arrays: dict[str, np.ndarray]) -> None:
        self.m0, self.arrays = m0, arrays

    def matrix(self, target, a, b):
        arr = self.arrays[target]
        out = np.zeros((b - a, arr.shape[1]), dtype=np.uint16)
        lo, hi = max(a, self.m0), min(b, self.m0 + len(arr))
        if lo < hi:
            out[lo - a:hi - a] = arr[lo - self.m0:hi - self.m0]
        return out

    def digests(self, target, start, end):
        return []


def test_budget_of_a_30_day_month_matches_the_contract():
    c = cal()
    start, end = c.month_bounds(2026, 11)  # 30 days, 4 Thursdays (5, 12, 19, 26)
    m0 = int(start // 60)
    arr = np.zeros((int((end - start) // 60), 6), dtype=np.uint16)
    arr[:, 0] = 60
    mask = c.mask(m0, m0 + len(arr))
    assert mask.sum() == 4 * 120
    down_minutes = 300
    arr[1000:1000 + down_minutes, 0] = 0
    arr[1000:1000 + down_minutes, 1] = 60
    a = availability(ArrayView(m0, {"api": arr}), ["api"], "any", c, Contract(), start, end, end)
    assert a.budget_s == pytest.approx(0.01 * (30 * 86400 - 4 * 7200))  # 25,632 s = 7.12 h
    assert (a.up, a.down, a.masked, a.unknown) == (len(arr) - 480 - 300, 300, 480, 0)
    assert a.ratio == pytest.approx((len(arr) - 780) / (len(arr) - 480))
    assert a.down_s == 300 * 60
    assert a.budget_remaining_ratio == pytest.approx(1 - 18000 / 25632)
    assert a.verdict == MET
    # the same outage for 8 hours misses the objective
    arr[1000:1000 + 480, 0] = 0
    arr[1000:1000 + 480, 1] = 60
    assert availability(ArrayView(m0, {"api": arr}), ["api"], "any", c, Contract(), start, end, end).verdict == MISSED


def test_coverage_floor_gives_insufficient_data():
    c = cal()
    start, end = c.month_bounds(2026, 11)
    m0 = int(start // 60)
    arr = np.zeros((int((end - start) // 60), 6), dtype=np.uint16)
    arr[: len(arr) // 2, 0] = 60  # agent stopped half the month
    a = availability(ArrayView(m0, {"w": arr}), ["w"], "any", c, Contract(), start, end, end)
    assert a.ratio == 1.0 and a.coverage == pytest.approx(0.5, abs=0.01)
    assert a.verdict == INSUFFICIENT
    empty = np.zeros_like(arr)
    assert availability(ArrayView(m0, {"w": empty}), ["w"], "any", c, Contract(), start, end, end).verdict == NO_DATA


# -- latency -----------------------------------------------------------------------------------------------
def ledger_with(durations, start: float, c: Calendar) -> Ledger:
    led = Ledger((0.5, 1.0), day_start=c.day_start)
    led.anchor(start)
    for i, d in enumerate(durations):
        led.add(ProbeResult("api", "api", start + i, 0.0, d, "up", latency_counted=True))
    return led


def test_exactly_half_a_second_is_not_below():
    c = cal()
    start = ts("2026-11-24T10:00:00+01:00")
    led = ledger_with([0.1, 0.4999999, 0.5, 0.7, 0.9999, 1.0, 2.0], start, c)
    lat = latency(led, ["api"], c, Contract(coverage_floor=0.0), start, start + 3600, start + 3600)
    assert lat.count == 7
    assert lat.below == (2, 5)


def test_worked_figures_604800_samples_thresholds():
    # docs/contract.md, worked figures: 1 probe/s for a week; at most 12,096 may be >= 500 ms and 6,048 >= 1 s
    n = 604_800
    c = Calendar(Contract(weekly=()))
    start = c.period_bounds(ts("2026-11-24T12:00:00+01:00"))[0]
    led = Ledger((0.5, 1.0), day_start=c.day_start, hot_days=9)
    led.anchor(start + n)
    slow1 = 6_048
    slow05 = 12_096
    for i in range(n):
        d = 1.5 if i < slow1 else (0.7 if i < slow05 else 0.1)
        led.add(ProbeResult("api", "api", start + i, 0.0, d, "up", latency_counted=True))
    lat = latency(led, ["api"], c, Contract(weekly=()), start, start + n, start + n)
    assert lat.count == n and lat.fractions() == (0.98, 0.99)
    assert lat.verdict == MET
    led.add(ProbeResult("api", "api", start + 5, 0.0, 1.2, "up", latency_counted=True))  # one more slow one
    lat = latency(led, ["api"], c, Contract(weekly=()), start, start + n, start + n)
    assert lat.verdict == MISSED


def test_the_rolling_window_and_the_period_count_the_open_minute_alike():
    """At one evaluation, mid-minute: the `7d` window (ending now) and the period (ending later) both
    count the requests of the open minute, as Prometheus' increase() over the same span does."""
    c = cal()
    ps, pe = c.period_bounds(ts("2026-11-26T12:00:00+01:00"))
    start = ps + 3 * 86400
    led = ledger_with([0.1] * 90, start, c)  # 1 probe/s: one closed minute and 30 s of the open one
    now = start + 90
    rolling = latency(led, ["api"], c, Contract(coverage_floor=0.0), now - 7 * 86400, now, now)
    period = latency(led, ["api"], c, Contract(coverage_floor=0.0), ps, pe, now)
    assert rolling.count == period.count == 90


def test_month_row_combines_periods():
    assert combine_verdicts([MET, MET]) == MET
    assert combine_verdicts([MET, MISSED, INSUFFICIENT]) == MISSED
    assert combine_verdicts([MET, NO_DATA]) == INSUFFICIENT
    assert combine_verdicts([NO_DATA, NO_DATA]) == NO_DATA
