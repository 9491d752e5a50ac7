"""The clients of the agent's HTTP endpoint cannot hold it: a connection cap, and a deadline for each
request head.

aiohttp closes an idle keep-alive connection (keepalive_timeout) and stops draining an unread body
(lingering_time), but gives a client that sends its request head a byte at a time as long as it likes,
and keeps any number of them: 700 such sockets used up the agent's file descriptors, its probes could
no longer connect and /healthz went unanswered. Each connection here is a `Connection` wrapped around
aiohttp's own protocol; the middleware `track` tells it when a request runs.
"""
from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import OrderedDict
from typing import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("sla_agent.http")
HEAD, BUSY, IDLE = "head", "busy", "idle"  # waiting for a request head / running a request / idle keep-alive
REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
           b"Connection: close\r\n\r\n")


def connection_cap(wanted: int) -> int:
    """`wanted`, but at most a quarter of the descriptors the process may open: the probes need the rest."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft // 4))


class Guard:
    """The connections of one listening socket: at most `cap` of them, each with `header_timeout`
    seconds to send a whole request head (from its first byte, or from the connection's start).

    At the cap, a new connection closes the one that has waited longest for a request (a slow or idle
    client), so /healthz still gets in during a slowloris attack; only when every connection is running
    a request is the new one refused, with a 503."""

    def __init__(self, cap: int, header_timeout: float) -> None:
        self.cap = cap
        self.header_timeout = header_timeout
        self.factory: Callable[[], asyncio.Protocol] | None = None  # aiohttp's web.Server, once set up
        self.live: set[Connection] = set()
        self.waiting: OrderedDict[Connection, None] = OrderedDict()  # HEAD or IDLE, longest waiting first
        self.timed_out = self.evicted = self.refused = 0
        self._warned = 0.0

    def __call__(self) -> Connection:
        return Connection(self)

    def admit(self, conn: Connection) -> bool:
        if len(self.live) >= self.cap:
            if not self.waiting:
                self.refused += 1
                self._warn()
                return False
            victim, _ = self.waiting.popitem(last=False)
            self.evicted += 1
            self._warn()
            victim.abort()
        self.live.add(conn)
        return True

    def forget(self, conn: Connection) -> None:
        self.live.discard(conn)
        self.waiting.pop(conn, None)

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._warned >= 60:
            self._warned = now
            log.warning("%d HTTP connections at once, the cap: closing those that wait longest for a request, "
                        "refusing new ones when all are busy (%d closed, %d refused so far)",
                        self.cap, self.evicted, self.refused)


class Connection(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the guard's cap and header deadline."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.state = HEAD
        self.pending = False  # bytes of a next request came while one was running
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.guard.factory is None or not self.guard.admit(self):
            transport.write(REFUSED)  # type: ignore[attr-defined]
            transport.close()
            return
        self.inner = self.guard.factory()
        self._wait(HEAD)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if self.state == IDLE:  # the first byte of the next request: its head's deadline starts now
            self._wait(HEAD)
        elif self.state == BUSY:
            self.pending = True
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.forget(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # -- what the middleware and the guard tell it --------------------------------------------------------
    def busy(self) -> None:
        self._disarm()
        self.state = BUSY
        self.pending = False
        self.guard.waiting.pop(self, None)

    def done(self) -> None:
        if self in self.guard.live:  # not lost (or closed to make room) while the request ran
            self._wait(HEAD if self.pending else IDLE)

    def abort(self) -> None:
        self.guard.forget(self)  # at once: the transport only reports its loss on the next loop turn
        if self.transport is not None:
            self.transport.abort()

    def _wait(self, state: str) -> None:
        self._disarm()
        self.state = state
        self.guard.waiting[self] = None
        self.guard.waiting.move_to_end(self)
        if state == HEAD:  # an idle connection is aiohttp's to close (keepalive_timeout)
            self._deadline = asyncio.get_running_loop().call_later(self.guard.header_timeout, self._late)

    def _late(self) -> None:
        self._deadline = None
        if self.state == HEAD:
            self.guard.timed_out += 1
            self.abort()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


@web.middleware
async def track(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Marks the connection busy while its request runs: a running request has no head deadline and
    is never the one closed to make room."""
    transport = request.transport
    conn = transport.get_protocol() if transport is not None else None
    if not isinstance(conn, Connection):
        return await handler(request)
    conn.busy()
    try:
        return await handler(request)
    finally:
        conn.done()
