"""The only place that reads the system clock.

Durations come from the monotonic clock; wall-clock time (UTC, seconds since the epoch) is only used
to place a sample in calendar buckets, so a wall-clock jump can never produce a negative latency.
The agent reads wall time through a SteadyClock: it never goes back, so a system clock stepped back
cannot file new results into minutes already counted and sealed.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from typing import Callable, Protocol

log = logging.getLogger("sla_agent.clock")
STEP = 0.1  # a reading this far behind the one before is a step back (NTP slews smaller errors away)
# After a step back the agent's clock runs at the monotonic pace for GRACE seconds (a clock set back by
# mistake is set right within it, and no minute is squeezed), then at SLEW of it until the system clock
# catches up: a system clock that ran ahead and was corrected is met after GRACE + step / (1 - SLEW).
GRACE, SLEW = 3600.0, 0.5


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (UTC)."""

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until monotonic() >= deadline."""


class SystemClock:
    """time.monotonic(), not loop.time(): uvloop's loop clock only has millisecond resolution."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)


class SteadyClock:
    """A wall clock that never goes below its high-water mark (the latest instant it handed out).

    It follows the system's wall clock, steps forward included (time passing, or a correction). When
    the system clock steps back, it goes on from its mark at the pace of the monotonic clock, after GRACE
    at SLEW of it, until the system clock catches up; the step is logged once, with its size, and
    `on_step` is told. Smaller jitter back is held at the mark. Safe to read from worker threads."""

    def __init__(self, base: Clock, on_step: Callable[[], None] | None = None) -> None:
        self.base = base
        self.on_step = on_step
        self.ahead = 0.0  # how far this clock runs ahead of the system clock (after a step back)
        self._lock = threading.Lock()
        self._mark = float("-inf")  # the latest instant handed out...
        self._at = 0.0  # ...and the monotonic instant it was handed out at
        self._wall = float("-inf")  # the system clock's last reading
        self._held = False  # running on the monotonic clock from the mark...
        self._since = 0.0  # ...since this monotonic instant

    def monotonic(self) -> float:
        return self.base.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        await self.base.sleep_until(deadline)

    def time(self) -> float:
        with self._lock:  # read inside: a thread held up between its reading and the lock is no step back
            wall, mono = self.base.time(), self.base.monotonic()
            back, self._wall = self._wall - wall, wall
            stepped = back >= STEP
            if stepped and not self._held:
                self._held, self._since = True, mono
            out, caught_up = max(wall, self._mark), False
            if self._held:
                out = self._mark + self._pace(mono)
                caught_up = wall >= out
                self._held = not caught_up
                out = wall if caught_up else out
            self.ahead = out - wall
            self._mark, self._at = out, mono
        if stepped:
            self._stepped(f"the system clock stepped back {_size(back)}", out)
        elif caught_up:
            log.info("the system clock caught up with the agent's: results follow it again")
        return out

    def _pace(self, mono: float) -> float:
        """How far the held clock moves from its mark to `mono`: at the monotonic pace during GRACE, at
        SLEW of it after."""
        fast_until = max(self._at, self._since + GRACE)
        fast = max(0.0, min(mono, fast_until) - self._at)
        return fast + SLEW * max(0.0, mono - max(self._at, fast_until))

    def hold_from(self, mark: float) -> None:
        """Never below `mark` from now on (at start: the latest instant the ledger already holds)."""
        with self._lock:
            wall, mono = self.base.time(), self.base.monotonic()
            if mark <= max(self._mark, wall):
                return
            behind = mark - wall
            self._mark, self._at, self._wall = mark, mono, wall
            self._held, self._since = behind >= STEP, mono
            self.ahead = behind
        if behind >= STEP:
            self._stepped(f"the system clock is {_size(behind)} behind the latest instant the ledger holds", mark)

    def _stepped(self, what: str, mark: float) -> None:
        log.warning("%s: results are filed from %s on, at the pace of the monotonic clock (after an hour, at "
                    "half of it), until the system clock catches up (sealed minutes are never reopened)", what,
                    _when(mark))
        if self.on_step is not None:
            self.on_step()


def _size(seconds: float) -> str:
    """86390.000 s (0 d 23:59:50)"""
    days, rest = divmod(int(seconds), 86400)
    return f"{seconds:.3f} s ({days} d {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d})"


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")
