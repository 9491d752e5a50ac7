"""Fixed-rate timelines, one per target, on the monotonic clock.

Tick k of a target is due at `epoch + offset + k * interval`: no drift, no sleep-after-response.
A tick that finds `max_in_flight` probes of its target still running yields an `inconclusive/skipped`
result; ticks missed because the loop was late yield `inconclusive/agent_overload` results. Nothing
is queued up and nothing is dropped silently.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable

from asyncio_throttle import Throttler

from .clock import Clock
from .probes import INCONCLUSIVE, Probe, ProbeResult, Target, inconclusive

log = logging.getLogger("sla_agent.scheduler")


class LagWatch:
    """Measures event-loop lag (and GC pauses); tells whether a probe's timing overlapped a stall.

    Its own timer runs at 40 Hz (at 100 Hz it cost 3 % of a core on an idle agent); every scheduler tick
    also reports how late it woke (note()), so at high probe rates stalls are seen far more often."""

    def __init__(self, clock: Clock, bound: float, interval: float = 0.025,
                 observe: Callable[[float], None] | None = None) -> None:
        self.clock = clock
        self.bound = bound
        self.interval = interval
        self.observe = observe
        self.events: deque[tuple[float, float]] = deque(maxlen=4096)  # (start, end) of stalls > bound
        self.max_lag = 0.0
        self.gc_pauses = 0
        self._expected: float | None = None
        self._gc_start = 0.0

    async def run(self) -> None:
        gc.callbacks.append(self._gc_callback)
        try:
            while True:
                expected = self.clock.monotonic() + self.interval
                self._expected = expected
                await self.clock.sleep_until(expected)
                now = self.clock.monotonic()
                lag = max(0.0, now - expected)
                self.max_lag = max(self.max_lag, lag)
                if self.observe is not None:
                    self.observe(lag)
                if lag > self.bound:
                    self.events.append((expected, now))
        finally:
            gc.callbacks.remove(self._gc_callback)

    def note(self, due: float, now: float) -> None:
        if now - due > self.bound:
            self.events.append((due, now))

    def _gc_callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = self.clock.monotonic()
        else:
            end = self.clock.monotonic()
            if end - self._gc_start > self.bound:
                self.gc_pauses += 1
                self.events.append((self._gc_start, end))

    def stalled(self, start: float, end: float) -> bool:
        """Did a stall longer than the bound overlap [start, end]?"""
        return self.overlap(start, end) > 0.0

    def overlap(self, start: float, end: float) -> float:
        """How long stalls longer than the bound overlapped [start, end], in seconds (the timer and the
        ticks may both record one stall: their union is counted)."""
        spans = []
        if self._expected is not None:
            now = self.clock.monotonic()
            if now - self._expected > self.bound and self._expected < end:
                spans.append((self._expected, now))  # a stall still under way
        events = self.events
        if not spans and (not events or events[-1][1] < start):
            return 0.0  # asked of every result: mostly no stall at all since its start
        for s, e in reversed(events):
            if e < start:
                break
            spans.append((s, e))
        total, reach = 0.0, start
        for s, e in sorted(spans):
            s, e = max(s, reach), min(e, end)
            if e > s:
                total += e - s
                reach = e
        return total


@dataclass
class Timeline:
    target: Target
    probe: Probe
    offset: float
    in_flight: int = 0
    ticks: int = 0
    skipped: int = 0
    late: int = 0


class Scheduler:
    def __init__(self, clock: Clock, sink: Callable[[ProbeResult], None], *, rate_limit: int = 2000,
                 lag_watch: LagWatch | None = None, thresholds: tuple[float, ...] = ()) -> None:
        self.clock = clock
        self.sink = sink
        self.lag_watch = lag_watch
        self.thresholds = thresholds  # the latency classes a stall must not blur (the contract's bounds)
        self.throttle = Throttler(rate_limit=rate_limit, period=1.0, retry_interval=0.002)
        self.throttle_waits = 0
        self.timelines: dict[str, Timeline] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._probes: set[asyncio.Task[None]] = set()
        self._epoch = 0.0

    def set_targets(self, pairs: list[tuple[Target, Probe]]) -> list[Probe]:
        """Installs the targets; returns probes no longer used (to close). Unchanged targets keep
        their timeline, so a reload does not shift or reset their schedule."""
        old = self.timelines
        new: dict[str, Timeline] = {}
        spread = _offsets([t for t, _ in pairs])
        retired: list[Probe] = []
        for target, probe in pairs:
            prev = old.get(target.name)
            if prev is not None and prev.target == target:
                new[target.name] = prev
                retired.append(probe)
            else:
                new[target.name] = Timeline(target, probe, spread[target.name])
                if prev is not None:
                    retired.append(prev.probe)
        for name, tl in old.items():
            if name not in new:
                retired.append(tl.probe)
        self.timelines = new
        if self._loops:  # running: start and stop loops to match
            for name in list(self._loops):
                if name not in new or new[name] is not old.get(name):
                    self._loops.pop(name).cancel()
            for name, tl in new.items():
                if name not in self._loops:
                    self._start_loop(tl, self.clock.monotonic())
        return retired

    def _start_loop(self, tl: Timeline, epoch: float) -> None:
        self._loops[tl.target.name] = asyncio.create_task(self._timeline(tl, epoch),
                                                          name=f"timeline:{tl.target.name}")

    def start(self) -> None:
        self._epoch = self.clock.monotonic()
        for tl in self.timelines.values():
            self._start_loop(tl, self._epoch)

    async def stop(self, grace: float) -> int:
        """Stops ticking, lets in-flight probes finish within `grace` seconds, cancels the rest.
        Returns how many were cancelled."""
        for task in self._loops.values():
            task.cancel()
        await asyncio.gather(*self._loops.values(), return_exceptions=True)
        self._loops.clear()
        pending = set(self._probes)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)

    # -- the loop ---------------------------------------------------------------------------------
    async def _timeline(self, tl: Timeline, epoch: float) -> None:
        interval = tl.target.interval
        start = epoch + tl.offset
        k = 0
        while True:
            due = start + k * interval
            await self.clock.sleep_until(due)
            now = self.clock.monotonic()
            if self.lag_watch is not None:
                self.lag_watch.note(due, now)
            missed = int((now - due) / interval) if now - due >= interval else 0
            if missed:
                # the loop woke us more than a whole interval late: those ticks are counted, not replayed
                tl.late += missed
                for j in range(missed):
                    self._emit_missed(tl, due + j * interval)
                k += missed
                due = start + k * interval
            tl.ticks += 1
            if tl.in_flight >= tl.target.max_in_flight:
                tl.skipped += 1
                self.sink(inconclusive(tl.target.name, tl.target.service, self._wall(due), due, "skipped",
                                       f"previous probe still running after {interval:g}s"))
            else:
                tl.in_flight += 1
                task = asyncio.create_task(self._probe(tl))
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)
            k += 1

    def _wall(self, mono: float) -> float:
        return self.clock.time() - (self.clock.monotonic() - mono)

    def _emit_missed(self, tl: Timeline, due: float) -> None:
        self.sink(inconclusive(tl.target.name, tl.target.service, self._wall(due), due, "agent_overload",
                               "tick missed: the event loop was late"))

    async def _probe(self, tl: Timeline) -> None:
        try:
            before = self.clock.monotonic()
            await self.throttle.acquire()
            if self.clock.monotonic() - before >= self.throttle.retry_interval:  # it slept: a real wait
                self.throttle_waits += 1
            try:
                result = await tl.probe.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug in a probe must not stop the timeline
                log.exception("probe of %s failed inside the agent", tl.target.name)
                now = self.clock.monotonic()
                result = inconclusive(tl.target.name, tl.target.service, self.clock.time(), now, "agent_error",
                                      f"{type(exc).__name__}")
        finally:
            tl.in_flight -= 1
        self.sink(self._after_stall(result, tl.target.timeout))

    def _after_stall(self, result: ProbeResult, timeout: float) -> ProbeResult:
        """A probe that overlapped a stall keeps its outcome when the stall cannot have changed its class:
        no latency threshold and no timeout lies between its time minus the stall and its time. Making
        every overlapping probe inconclusive would drop slow ones more often than fast ones (a slow
        probe overlaps more stalls), in the vendor's favour."""
        if self.lag_watch is None or result.outcome == INCONCLUSIVE:
            return result
        stall = self.lag_watch.overlap(result.mono_start, result.mono_start + result.duration_s)
        d = result.duration_s
        if stall <= 0.0 or not any(d - stall < p <= d for p in (*self.thresholds, timeout)):
            return result
        return result.replace_outcome(INCONCLUSIVE, "agent_overload",
                                      f"event loop stalled {stall * 1000:.0f}ms during the probe, across a "
                                      f"latency threshold or the timeout")

    @property
    def in_flight(self) -> int:
        return sum(tl.in_flight for tl in self.timelines.values())


def _offsets(targets: list[Target]) -> dict[str, float]:
    """Spreads start offsets over each interval so that targets sharing an interval do not fire together."""
    by_interval: dict[float, list[Target]] = {}
    for t in targets:
        by_interval.setdefault(t.interval, []).append(t)
    out: dict[str, float] = {}
    for interval, group in by_interval.items():
        n = len(group)
        for i, t in enumerate(sorted(group, key=lambda t: t.name)):
            out[t.name] = math.fmod(interval * i / n, interval)
    return out
