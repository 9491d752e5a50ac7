"""The fixed-rate scheduler under a FakeClock: exact due times, skipped and late ticks counted."""
from __future__ import annotations

import itertools

import pytest

from agent.probes import ProbeResult, Target
from agent.probes.http import HttpOptions
from agent.scheduler import LagWatch, Scheduler, _offsets

from .conftest import FakeClock


class FakeProbe:
    """Takes the given (fake) durations in turn; records when each run started."""

    def __init__(self, clock: FakeClock, durations) -> None:
        self.clock = clock
        self.durations = iter(durations)
        self.starts: list[float] = []

    async def run(self) -> ProbeResult:
        start = self.clock.monotonic()
        self.starts.append(start)
        d = next(self.durations)
        await self.clock.sleep_until(start + d)
        return ProbeResult("a", "api", self.clock.time(), start, d, "up", latency_counted=True)

    async def close(self) -> None:
        pass


def tgt(name="a", interval=1.0, timeout=2.0, max_in_flight=1) -> Target:
    return Target(name=name, service="api", options=HttpOptions("http://127.0.0.1:9/"), interval=interval,
                  timeout=timeout, max_in_flight=max_in_flight)


async def test_10000_ticks_zero_drift_and_skips_counted(fake_clock: FakeClock):
    n = 10_000
    # every 100th probe takes 2.5 s: with one in flight at most, the next two ticks are skipped
    durations = (2.5 if k % 100 == 0 else 0.1 + (k % 7) / 10 for k in itertools.count())
    results: list[ProbeResult] = []
    sched = Scheduler(fake_clock, results.append, rate_limit=1_000_000)
    probe = FakeProbe(fake_clock, durations)
    sched.set_targets([(tgt(), probe)])
    epoch = fake_clock.monotonic()
    sched.start()
    await fake_clock.advance_to(epoch + (n - 1) + 0.5)
    await sched.stop(grace=0)
    tl = sched.timelines["a"]
    assert tl.ticks == n
    # every tick, probed or skipped, happened exactly when due: no drift over 10,000 ticks, no
    # sleep-after-response, no accumulated delay
    skipped_at = [r.mono_start for r in results if r.error_kind == "skipped"]
    assert sorted(probe.starts + skipped_at) == [epoch + k * 1.0 for k in range(n)]
    # an independent model of the same rule: a tick finding the probe still running is skipped
    model = (2.5 if k % 100 == 0 else 0.1 + (k % 7) / 10 for k in itertools.count())
    busy_until, expected_skips = -1.0, 0
    for k in range(n):
        if busy_until > k:
            expected_skips += 1
        else:
            busy_until = k + next(model)
    assert tl.skipped == expected_skips > 0
    skipped = [r for r in results if r.error_kind == "skipped"]
    assert len(skipped) == tl.skipped
    assert all(r.outcome == "inconclusive" for r in skipped)
    assert len(probe.starts) + tl.skipped == n  # every tick is a probe or a counted skip
    assert tl.late == 0


async def test_skip_count_is_exact(fake_clock: FakeClock):
    durations = itertools.cycle([2.5, 0.1, 0.1, 0.1])  # 2.5 s, then the tick at +3 is free again
    results: list[ProbeResult] = []
    sched = Scheduler(fake_clock, results.append, rate_limit=1_000_000)
    probe = FakeProbe(fake_clock, durations)
    sched.set_targets([(tgt(), probe)])
    epoch = fake_clock.monotonic()
    sched.start()
    await fake_clock.advance_to(epoch + 11.5)  # ticks 0..11
    await sched.stop(grace=0)
    # probe at 0 (2.5 s) -> skips at 1, 2; probe at 3, 4, 5 (0.1 s); probe at 6 (2.5 s) -> skips 7, 8; 9, 10, 11
    assert probe.starts == [epoch + k for k in (0, 3, 4, 5, 6, 9, 10, 11)]
    assert sched.timelines["a"].skipped == 4


async def test_max_in_flight_allows_overlap(fake_clock: FakeClock):
    results: list[ProbeResult] = []
    sched = Scheduler(fake_clock, results.append, rate_limit=1_000_000)
    probe = FakeProbe(fake_clock, itertools.repeat(2.5))
    sched.set_targets([(tgt(max_in_flight=3, timeout=3.0), probe)])
    epoch = fake_clock.monotonic()
    sched.start()
    await fake_clock.advance_to(epoch + 9.5)
    await sched.stop(grace=0)
    assert sched.timelines["a"].skipped == 0
    assert len(probe.starts) == 10


async def test_late_loop_counts_missed_ticks_not_replayed(fake_clock: FakeClock):
    results: list[ProbeResult] = []
    sched = Scheduler(fake_clock, results.append, rate_limit=1_000_000)
    probe = FakeProbe(fake_clock, itertools.repeat(0.1))
    sched.set_targets([(tgt(), probe)])
    epoch = fake_clock.monotonic()
    sched.start()
    await fake_clock.advance_to(epoch + 2.5)
    fake_clock.mono += 3.2  # the loop was blocked: ticks at 3, 4, 5 come due while nobody runs
    await fake_clock.advance_to(fake_clock.mono + 0.01)
    await fake_clock.advance_to(epoch + 8.5)
    await sched.stop(grace=0)
    tl = sched.timelines["a"]
    late = [r for r in results if r.error_kind == "agent_overload"]
    assert tl.late == len(late) == 2  # ticks at 3 and 4 are missed; 5 fires (late) as the current tick
    assert all(r.outcome == "inconclusive" for r in late)
    assert [r.mono_start for r in late] == [epoch + 3, epoch + 4]
    # tick 5 fires late, when the loop runs again; the timeline then goes on at its due times
    assert probe.starts == [epoch + k for k in (0, 1, 2)] + [epoch + 2.5 + 3.2] + [epoch + k for k in (6, 7, 8)]


async def test_stop_lets_in_flight_finish_within_grace(fake_clock: FakeClock):
    results: list[ProbeResult] = []
    sched = Scheduler(fake_clock, results.append, rate_limit=1_000_000)
    sched.set_targets([(tgt(), FakeProbe(fake_clock, itertools.repeat(0.5)))])
    epoch = fake_clock.monotonic()
    sched.start()
    await fake_clock.advance_to(epoch + 0.1)  # first probe in flight
    import asyncio
    stopping = asyncio.create_task(sched.stop(grace=5.0))
    await fake_clock.advance_to(epoch + 0.6)
    cancelled = await stopping
    assert cancelled == 0
    assert [r.outcome for r in results] == ["up"]


def test_offsets_spread_targets_over_the_interval():
    ts = [tgt(name=f"t{i}") for i in range(4)] + [tgt(name="slow", interval=10.0, timeout=2.0)]
    off = _offsets(ts)
    assert sorted(off[f"t{i}"] for i in range(4)) == [0.0, 0.25, 0.5, 0.75]
    assert off["slow"] == 0.0


async def test_lag_watch_marks_overlapping_probes(fake_clock: FakeClock):
    lags: list[float] = []
    watch = LagWatch(fake_clock, bound=0.05, interval=0.01, observe=lags.append)
    import asyncio
    task = asyncio.create_task(watch.run())
    await fake_clock.advance(0.05)
    fake_clock.mono += 0.2  # a 200 ms stall
    await fake_clock.advance(0.001)
    await fake_clock.advance(0.05)
    task.cancel()
    assert max(lags) >= 0.19
    stall_end = fake_clock.mono - 0.05
    assert watch.stalled(stall_end - 0.1, stall_end)  # a probe running during the stall
    assert not watch.stalled(fake_clock.mono - 0.02, fake_clock.mono)  # one after it
    assert not watch.stalled(900.0, 990.0)  # one long before it


class BrokenProbe:
    async def run(self) -> ProbeResult:
        raise RuntimeError("a bug inside the probe")

    async def close(self) -> None:
        pass


async def test_a_probe_that_raises_is_inconclusive_and_the_timeline_goes_on(fake_clock: FakeClock):
    results: list[ProbeResult] = []
    sched = Scheduler(fake_clock, results.append, rate_limit=1_000_000)
    sched.set_targets([(tgt(), BrokenProbe())])
    epoch = fake_clock.monotonic()
    sched.start()
    await fake_clock.advance_to(epoch + 4.5)
    await sched.stop(grace=0)
    assert [(r.outcome, r.error_kind) for r in results] == [("inconclusive", "agent_error")] * 5
    assert results[0].error == "RuntimeError"


def test_a_stall_makes_a_probe_inconclusive_only_when_it_may_have_changed_its_class(fake_clock: FakeClock):
    """A 139 ms stall at 10.000-10.139 s overlapping every probe below; thresholds 0.5 s and 1 s, timeout 2 s.
    Fast and clearly slow probes keep their outcome; those within the stall of a threshold or of the
    timeout become inconclusive. Before, all of them did: slow probes overlap more stalls, so the latency
    population lost slow requests more often than fast ones."""
    watch = LagWatch(fake_clock, bound=0.05)
    watch.events.append((10.0, 10.139))
    sched = Scheduler(fake_clock, lambda r: None, lag_watch=watch, thresholds=(0.5, 1.0))

    def probe(start: float, d: float, outcome: str = "up", kind: str = "") -> str:
        r = ProbeResult("a", "api", 0.0, start, d, outcome, kind, latency_counted=True)
        return sched._after_stall(r, timeout=2.0).outcome

    assert probe(9.95, 0.2) == "up"  # fast: 0.061-0.2 s, below 0.5 s either way
    assert probe(9.9, 0.7) == "up"  # slow: 0.561-0.7 s, between the thresholds either way
    assert probe(9.9, 1.3) == "up"  # slower than both either way
    assert probe(9.9, 0.55) == "inconclusive"  # 0.411-0.55 s: maybe below 0.5 s
    assert probe(9.9, 1.05) == "inconclusive"  # maybe below 1 s
    assert probe(8.5, 2.0, "down", "timeout") == "inconclusive"  # the stall may have caused the timeout
    assert probe(9.99, 0.1, "down", "http_status") == "down"  # an answer's status is not a matter of time
    assert probe(11.0, 0.6) == "up"  # after the stall
    assert watch.overlap(9.9, 10.6) == pytest.approx(0.139)


async def test_throttle_waits_count_only_probes_the_rate_limit_delayed():
    """Under the limit no probe waits; at 5 probes/s with 12 due at once, the 7 beyond the limit do."""
    import asyncio

    from agent.clock import SystemClock

    async def run(rate: int, n: int) -> int:
        sched = Scheduler(SystemClock(), lambda r: None, rate_limit=rate)
        clock = SystemClock()
        tl_probe = FastProbe(clock)
        from agent.scheduler import Timeline
        tl = Timeline(tgt(max_in_flight=n), tl_probe, 0.0)
        await asyncio.wait_for(asyncio.gather(*(sched._probe(tl) for _ in range(n))), timeout=10)
        return sched.throttle_waits

    assert await run(2000, 40) == 0
    assert await run(5, 12) == 7


class FastProbe:
    def __init__(self, clock) -> None:
        self.clock = clock

    async def run(self) -> ProbeResult:
        now = self.clock.monotonic()
        return ProbeResult("a", "api", self.clock.time(), now, 0.001, "up", latency_counted=True)
