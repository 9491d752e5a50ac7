"""The shown quantiles against the exact ones (numpy), within the bound docs/contract.md states ("Exact counts,
strict 'less than'"): sketches filled the agent way (Ledger.add per result, finished days compacted every ten
minutes, the ledger's merges) for an hour, a day and a 7-day period, over populations a t-digest finds hard
(a slow tail, two modes), trivial (one value) or too small to summarise (a few requests)."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from fastdigest import TDigest, merge_all

from agent.calendar import Calendar
from agent.config.model import Contract
from agent.ledger import CENTROIDS, DAY, HOUR, QUANTILES, Ledger, cdf_points, merged_quantiles
from agent.probes import ProbeResult

HOUR_RANK = 0.01  # an hour's sketch
PERIOD_RANK = 0.001  # a day's, a 7-day period's
CAL = Calendar(Contract(weekly=()))
T0 = CAL.day_start(1_795_000_000.0)
DAYS = 8


def slow_tail(rng: np.random.Generator, n: int) -> np.ndarray:
    """Lognormal around 120 ms, and 1.2 % of the requests in a slow mode around 900 ms."""
    v = rng.lognormal(np.log(0.12), 0.45, n)
    slow = rng.random(n) < 0.012
    v[slow] = rng.lognormal(np.log(0.9), 0.5, int(slow.sum()))
    return v


def bimodal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A cache: 70 % hits around 50 ms, misses around 400 ms."""
    return np.abs(np.where(rng.random(n) < 0.7, rng.normal(0.05, 0.005, n), rng.normal(0.4, 0.05, n)))


def constant(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.full(n, 0.25)


def rank_error(values: np.ndarray, shown: float, q: float) -> float:
    """How far q lies from the ranks `shown` has among `values` (0 when it is an exact q-quantile)."""
    s = np.sort(values)
    lo, hi = np.searchsorted(s, shown, "left") / len(s), np.searchsorted(s, shown, "right") / len(s)
    return 0.0 if lo <= q <= hi else min(abs(q - lo), abs(q - hi))


def fill(times: np.ndarray, values: np.ndarray, led: Ledger | None = None) -> Ledger:
    led = led or Ledger((0.5, 1.0), day_start=CAL.day_start)
    led.anchor(T0 + DAYS * DAY - 1)
    next_compaction = T0
    for t, v in zip(times.tolist(), values.tolist()):
        if t >= next_compaction:
            led.compact(t)
            next_compaction = t + 600
        led.add(ProbeResult("a", "api", t, 0.0, v, "up", latency_counted=True))
    led.compact(float(times[-1]) + 1)
    return led


def windows() -> list[tuple[str, float, float, float]]:
    """(name, start, end, bound): an hour of the last day (not compacted yet), a compacted day, and a
    7-day period of six compacted days and the hours of the last one, its open hour included."""
    last = T0 + (DAYS - 1) * DAY
    return [("hour", last + 5 * HOUR, last + 6 * HOUR, HOUR_RANK), ("day", T0 + DAY, T0 + 2 * DAY, PERIOD_RANK),
            ("7 days", T0 + DAY, T0 + DAYS * DAY, PERIOD_RANK)]


def errors(led: Ledger, times: np.ndarray, values: np.ndarray, start: float, end: float) -> dict[float, float]:
    shown = merged_quantiles(led.digests("a", start, end))
    inside = values[(times >= start) & (times < end)]
    return {q: rank_error(inside, shown[f"{q:g}"], q) for q in QUANTILES}


@pytest.mark.parametrize("population", [slow_tail, bimodal, constant])
def test_shown_quantiles_within_the_bound(population):
    rng = np.random.default_rng(23)
    times = T0 + np.arange(0.0, DAYS * DAY, 3.0)  # 1,200 requests an hour: six times the centroids kept
    values = population(rng, len(times))
    led = fill(times, values)
    for name, start, end, bound in windows():
        errs = errors(led, times, values, start, end)
        assert max(errs.values()) <= bound, (population.__name__, name, errs)
    if population is constant:
        assert merged_quantiles(led.digests("a", T0, T0 + DAYS * DAY)) == {f"{q:g}": 0.25 for q in QUANTILES}


def test_few_requests_within_one_request_more():
    rng = np.random.default_rng(5)
    times = np.sort(T0 + rng.uniform(0, DAYS * DAY, 60))
    values = slow_tail(rng, len(times))
    led = fill(times, values)
    for name, start, end, bound in windows():
        n = int(((times >= start) & (times < end)).sum())
        if n:
            errs = errors(led, times, values, start, end)
            assert max(errs.values()) <= bound + 1 / n, (name, n, errs)


def test_a_sketch_from_an_older_store_merges_as_that_version_merged_it():
    """Days stored with fastdigest's default 1,000 centroids, loaded as the store hands them over (their
    zlib-compressed to_bytes()), keep their size: a 7-day period of them shows exactly the quantiles and
    CDF the earlier version showed (a report or bundle made then computes again to the same figures), and
    one merged with the days the ledger fills itself stays within the bound."""
    rng = np.random.default_rng(11)
    old_days = [slow_tail(rng, 86400) for _ in range(7)]
    old = [TDigest.from_values(v.tolist()) for v in old_days]
    assert all(d.max_centroids == 1000 and d.n_centroids > CENTROIDS for d in old)
    led = Ledger((0.5, 1.0), day_start=CAL.day_start)
    for i, d in enumerate(old):
        led.load_digest("a", "api", int(T0 + i * DAY), DAY, zlib.compress(d.to_bytes(), 1))
    then = merge_all(old)  # what the earlier version merged: fastdigest's default size
    week = led.digests("a", T0, T0 + 7 * DAY)
    assert merged_quantiles(week) == {f"{q:g}": float(then.quantile(q)) for q in QUANTILES}
    assert cdf_points(week, (0.1, 0.5, 1.0)) == [[x, round(float(then.cdf(x)), 6)] for x in (0.1, 0.5, 1.0)]

    times = T0 + 7 * DAY + np.arange(0.0, DAY, 3.0)  # a day of the ledger's own, after them
    values = slow_tail(rng, len(times))
    fill(times, values, led)
    everything = np.concatenate([*old_days[1:], values])
    when = np.concatenate([T0 + i * DAY + np.arange(86400.0) for i in range(1, 7)] + [times])
    errs = errors(led, when, everything, T0 + DAY, T0 + 8 * DAY)
    assert max(errs.values()) <= PERIOD_RANK, errs
