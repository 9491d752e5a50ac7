"""The result pipeline: every probe result passes here once, on the event loop, on its way to the sinks.

A provider failure seen while every control check fails becomes `inconclusive` (the agent's own network,
docs/contract.md); the maintenance mask is looked up once; then each sink gets (result, masked): the ledger,
the live metrics, the per-target state (with its log lines), and any listener (the demo's summary).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

from .calendar import Calendar
from .probes import CONTROL_SERVICE, DOWN, INCONCLUSIVE, UP, ProbeResult, Target

log = logging.getLogger("sla_agent.agent")
CONTROL_FRESH = 3.0  # a control result counts for this many of its intervals
Sink = Callable[[ProbeResult, bool], None]


class MaskCache:
    """Answers "is this instant masked?" without recomputing the calendar for every result."""

    def __init__(self, cal: Calendar) -> None:
        self.cal = cal
        self.lo = self.hi = 0.0
        self.masked = False

    def __call__(self, t: float) -> bool:
        if not self.lo <= t < self.hi:
            ws = self.cal.windows(t - 3600, t + 3600)
            inside = [w for w in ws if w.start <= t < w.end]
            if inside:
                self.masked, self.lo, self.hi = True, max(w.start for w in inside), min(w.end for w in inside)
            else:
                self.masked = False
                self.lo = max((w.end for w in ws if w.end <= t), default=t - 3600)
                self.hi = min((w.start for w in ws if w.start > t), default=t + 3600)
        return self.masked


class ControlWatch:
    """The latest decided result of each control check: are they all failing around an instant?"""

    def __init__(self, controls: Iterable[Target] = ()) -> None:
        self.controls = {c.name: c for c in controls}
        self.latest: dict[str, tuple[float, bool]] = {}  # control -> (started_at, up)

    def note(self, r: ProbeResult) -> None:
        if r.outcome != INCONCLUSIVE:
            self.latest[r.target] = (r.started_at, r.outcome == UP)

    def failing(self, t: float) -> bool:
        fresh = []
        for name, (at, up) in self.latest.items():
            c = self.controls.get(name)
            if c is not None and abs(t - at) <= max(CONTROL_FRESH * c.interval, c.timeout + c.interval):
                fresh.append(up)
        return bool(fresh) and not any(fresh)


@dataclass
class TargetState:
    outcome: str | None = None
    since: float = 0.0
    last: ProbeResult | None = None


class TargetStates:
    """Each target's last result and current up/down state; a change of state is logged."""

    def __init__(self) -> None:
        self.states: dict[str, TargetState] = {}
        self.decided: set[str] = set()  # targets with at least one up or down result

    def get(self, target: str) -> TargetState | None:
        return self.states.get(target)

    def __call__(self, r: ProbeResult, masked: bool) -> None:
        st = self.states.get(r.target)
        if st is None:
            st = self.states[r.target] = TargetState()
        st.last = r
        if r.outcome == INCONCLUSIVE:
            return
        self.decided.add(r.target)
        if r.outcome != st.outcome:
            if r.outcome == DOWN:
                log.warning("%s/%s is DOWN: %s: %s%s", r.service, r.target, r.error_kind, r.error,
                            " (inside a maintenance window)" if masked else "")
            elif st.outcome is not None:
                log.info("%s/%s is UP again after %.0fs down", r.service, r.target, r.started_at - st.since)
            st.outcome, st.since = r.outcome, r.started_at


class Pipeline:
    def __init__(self, cal: Calendar, controls: Iterable[Target], sinks: list[Sink]) -> None:
        self.mask = MaskCache(cal)
        self.controls = ControlWatch(controls)
        self.sinks = sinks
        self.listeners: list[Callable[[ProbeResult], None]] = []
        self.seen = 0

    def set_calendar(self, cal: Calendar) -> None:
        self.mask = MaskCache(cal)

    def set_controls(self, controls: Iterable[Target]) -> None:
        self.controls.controls = {c.name: c for c in controls}

    def __call__(self, r: ProbeResult) -> None:
        self.seen += 1
        if r.service == CONTROL_SERVICE:
            self.controls.note(r)
        elif r.outcome == DOWN and self.controls.latest and self.controls.failing(r.started_at):
            r = r.replace_outcome(INCONCLUSIVE, "agent_network",
                                  f"control checks failing at the same time ({r.error_kind}: {r.error})")
        masked = self.mask(r.started_at)
        for sink in self.sinks:
            sink(r, masked)
        for listener in self.listeners:
            listener(r)
