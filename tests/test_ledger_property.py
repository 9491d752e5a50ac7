"""Property tests: the ledger's counts, availability and fractions equal a brute-force computation over
the raw results; the digest's p98/p99 are within the rank bound docs/contract.md states for a period."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.calendar import Calendar
from agent.config.model import Contract
from agent.ledger import Ledger, merged_quantiles
from agent.probes import ProbeResult
from agent.slo import availability, latency

from .test_quantile_bound import PERIOD_RANK, rank_error

T0 = 1_795_000_000 - (1_795_000_000 % 3600)  # an hour boundary
SPAN = 3 * 86400

result = st.tuples(
    st.floats(min_value=0, max_value=SPAN - 1e-3, allow_nan=False),  # offset of started_at
    st.sampled_from(["up", "up", "up", "down", "inconclusive"]),
    st.floats(min_value=0.0, max_value=3.0, allow_nan=False),  # duration
    st.booleans(),  # latency_counted (for down: answered with a bad status, or a timeout)
    st.sampled_from(["a", "b"]),
)


def brute_force(results, c: Calendar, contract: Contract, start: float, end: float):
    per_minute = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    count = 0
    below = [0, 0]
    for t, outcome, d, counted, target in results:
        if not start <= t < end:
            continue
        minute = int(t // 60)
        if outcome == "up":
            per_minute[target][minute][0] += 1
        elif outcome == "down":
            per_minute[target][minute][1] += 1
        masked = c.active(t) is not None or bool(c.mask(minute, minute + 1)[0])
        if counted and outcome != "inconclusive" and not masked:
            count += 1
            below[0] += d < 0.5
            below[1] += d < 1.0
    up = down = 0
    for minute in range(int(start // 60), int(end // 60)):
        if c.mask(minute, minute + 1)[0]:
            continue
        states = []
        for target in ("a", "b"):
            u, dn = per_minute[target].get(minute, (0, 0))
            if u + dn:
                states.append(dn >= 0.5 * (u + dn))
        if states:
            if any(states):
                down += 1
            else:
                up += 1
    return up, down, count, below


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(result, min_size=1, max_size=400), st.sampled_from(["+01:00", "Europe/Paris"]))
def test_ledger_matches_brute_force(raw, tz):
    contract = Contract(timezone=tz)
    c = Calendar(contract)
    led = Ledger((0.5, 1.0), day_start=c.day_start)
    led.anchor(T0 + SPAN)
    results = []
    for off, outcome, d, counted, target in raw:
        t = T0 + off
        counted = counted or outcome == "up"
        led.add(ProbeResult(target, "api", t, 0.0, d, outcome, "" if outcome == "up" else "timeout",
                            latency_counted=counted and outcome != "inconclusive"), masked=c.active(t) is not None)
        results.append((t, outcome, d, counted, target))
    start, end = T0, T0 + SPAN
    up, down, count, below = brute_force(results, c, contract, start, end)
    a = availability(led, ["a", "b"], "any", c, contract, start, end, end)
    assert (a.up, a.down) == (up, down)
    assert a.ratio == (up / (up + down) if up + down else None)
    lat = latency(led, ["a", "b"], c, contract, start, end, end)
    assert lat.count == count
    assert list(lat.below) == below
    assert lat.fractions() == tuple(b / count if count else None for b in below)


def test_digest_p98_p99_within_the_period_bound():
    rng = np.random.default_rng(7)
    for n in (10_000, 100_000):
        values = np.concatenate([rng.lognormal(np.log(0.12), 0.45, int(n * 0.985)),
                                 rng.lognormal(np.log(0.65), 0.5, n - int(n * 0.985))])
        rng.shuffle(values)
        c = Calendar(Contract(weekly=()))
        led = Ledger((0.5, 1.0), day_start=c.day_start)
        led.anchor(T0 + n)
        for i, v in enumerate(values):
            led.add(ProbeResult("a", "api", T0 + i * (86400 * 3 / n), 0.0, float(v), "up", latency_counted=True))
        q = merged_quantiles(led.digests("a", T0, T0 + 86400 * 4))
        for p in (0.98, 0.99):
            assert rank_error(values, q[f"{p:g}"], p) <= PERIOD_RANK, (n, p, q[f"{p:g}"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(result, min_size=1, max_size=300), st.floats(min_value=0, max_value=SPAN + 86400),
       st.sampled_from(["+01:00", "Europe/Paris"]))
def test_day_cache_gives_the_same_figures(raw, now_offset, tz):
    """The live evaluation's cache of closed days changes nothing, also after a late sample."""
    from agent.config import parse_config
    from agent.slo import DayCache, evaluate

    cfg = parse_config(f'contract: {{timezone: "{tz}"}}\ntargets:\n'
                       '  - {name: a, service: api, url: "http://127.0.0.1:9/", interval: 2s, timeout: 2s}\n'
                       '  - {name: b, service: api, url: "http://127.0.0.1:9/", interval: 2s, timeout: 2s}\n')
    c = Calendar(cfg.contract)
    led = Ledger((0.5, 1.0), day_start=c.day_start)
    led.anchor(T0 + SPAN)
    for off, outcome, d, counted, target in sorted(raw):
        led.add(ProbeResult(target, "api", T0 + off, 0.0, d, outcome, "" if outcome == "up" else "timeout",
                            latency_counted=(counted or outcome == "up") and outcome != "inconclusive"))
    cache = DayCache(c, settle=0)
    now = T0 + now_offset
    for _ in range(2):  # the second evaluation reads the cache
        cached = evaluate(led, cfg, c, now, cache)
        plain = evaluate(led, cfg, c, now)
        assert cached == plain
    # a wall-clock jump back: a sample lands far behind the newest one, in a day already cached
    led.add(ProbeResult("a", "api", T0 + SPAN - 1, 0.0, 0.1, "up", latency_counted=True))
    evaluate(led, cfg, c, T0 + SPAN + 86400, cache)
    led.add(ProbeResult("a", "api", T0 + 10, 0.0, 0.1, "down", "timeout", latency_counted=True))
    assert evaluate(led, cfg, c, T0 + SPAN + 86400, cache) == evaluate(led, cfg, c, T0 + SPAN + 86400)


failure = st.tuples(st.integers(min_value=0, max_value=4),  # the minute
                    st.floats(min_value=0, max_value=59.999, allow_nan=False),  # second within it
                    st.floats(min_value=0, max_value=10, allow_nan=False))  # how long the probe ran


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(failure, max_size=120), st.integers(min_value=1, max_value=5))
def test_the_journal_keeps_the_first_failures_and_the_last_of_each_minute(raw, cap):
    """Failures reach the journal when their probe ends (out of start order), and flushes come every
    5 s: each minute keeps its first `cap` arrivals and, beyond them, its latest-started failure, handed
    over once the minute is settled (10 s, the longest probe, after it ends) and only once; every
    failure is either kept or counted as dropped."""
    from agent.ledger.journal import Journal
    journal = Journal(per_minute=cap, settle=10.0)
    arrivals = sorted((T0 + m * 60 + s + d, T0 + m * 60 + s) for m, s, d in raw)
    kept, i = [], 0
    for now in np.arange(T0, T0 + 6 * 60 + 15, 5.0).tolist():
        while i < len(arrivals) and arrivals[i][0] <= now:
            journal(ProbeResult("t", "web", arrivals[i][1], 0.0, 0.1, "down", "timeout"), False)
            i += 1
        kept += journal.take(now)
    assert i == len(arrivals) and len(kept) + journal.dropped == len(arrivals)
    for m in range(int(T0 // 60), int(T0 // 60) + 5):
        starts = [start for _, start in arrivals if int(start // 60) == m]  # in the order they arrived
        mine = sorted(r.at for r in kept if int(r.at // 60) == m)
        assert mine == sorted(starts[:cap] + ([max(starts[cap:])] if starts[cap:] else [])), (m, starts)
