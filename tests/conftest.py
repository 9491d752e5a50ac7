"""Shared test helpers: a FakeClock that drives timelines without sleeping, real local servers."""
from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import socket
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    """Monotonic and wall time that only move when the test says so.

    sleep_until() parks the caller until advance() passes its deadline; sleepers wake in deadline order
    and the loop runs until quiet before the clock moves on, so every tick sees the exact due time."""

    def __init__(self, wall: float = 1_795_000_000.0, mono: float = 1000.0) -> None:
        self.mono = mono
        self.wall0 = wall
        self.mono0 = mono
        self.wall_offset = 0.0  # wall-clock jumps (NTP step, manual change)
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall0 + (self.mono - self.mono0) + self.wall_offset

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self.mono:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        await fut

    async def _settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    async def advance_to(self, t: float) -> None:
        await self._settle()
        while self._sleepers and self._sleepers[0][0] <= t:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self.mono = max(self.mono, deadline)
            if not fut.done():
                fut.set_result(None)
            await self._settle()
        self.mono = max(self.mono, t)
        await self._settle()

    async def advance(self, dt: float) -> None:
        await self.advance_to(self.mono + dt)


@pytest.fixture(autouse=True)
def _agent_logging_restored():
    """`main()` run in-process sets up the sla_agent logger (its own handler on the stderr of that test, no
    propagation). Put it back after each test: a later test's caplog would otherwise see none of the
    agent's records, and its handler would write to a stream pytest has closed."""
    logger = logging.getLogger("sla_agent")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


def free_port(host: str = "127.0.0.1") -> int:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def thread_server(status: int = 200, body: bytes = b"ok") -> Iterator[int]:
    """A plain HTTP server in a thread answering every GET with `status` and `body` (for a daemon under test,
    which is another process); yields its port."""
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def target_server():
    with thread_server() as port:
        yield port
