"""The only place that reads the system clock.

Durations come from the monotonic clock; wall-clock time (UTC, seconds since the epoch) is only used
to place a sample in calendar buckets, so a wall-clock jump can never produce a negative latency.
"""
from __future__ import annotations

import asyncio
import time
from typing import Protocol


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
