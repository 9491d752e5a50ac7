"""The clients of the agent's HTTP endpoint cannot hold it: a connection cap, a reserve for health checks,
and a deadline for each request head.

aiohttp closes an idle keep-alive connection (keepalive_timeout) and stops draining an unread body
(lingering_time), but gives a client that sends its request head a byte at a time as long as it likes,
and keeps any number of them: 700 such sockets used up the agent's file descriptors, its probes could
no longer connect and /healthz went unanswered. Each connection here is a `Connection` wrapped around
aiohttp's own protocol; the middleware `track` tells it when a request runs.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import ssl
import time
from collections import OrderedDict
from typing import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("sla_agent.http")
# not looked at yet / waiting for a request head / running a request / idle keep-alive / refused
NEW, HEAD, BUSY, IDLE, SHUT = "new", "head", "busy", "idle", "shut"
ACCEPT_BATCH = 16  # connections accepted in one loop turn, at most
INTAKE = 4 * ACCEPT_BATCH  # connections without a place yet, at most
ACCEPT_RETRY = 1.0  # seconds without accepting after the process ran out of descriptors (as asyncio does)
REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
           b"Connection: close\r\n\r\n")


def connection_cap(wanted: int) -> int:
    """`wanted`, but at most a quarter of the descriptors the process may open: the probes need the rest."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft // 4))


def _whole_head(data: bytes) -> bool:
    return b"\r\n\r\n" in data


class Guard:
    """The connections of one listening socket, each with `header_timeout` seconds to send a whole
    request head (from its first byte, or from the connection's start).

    A connection gets its place once the loop has read what it sent first: none is closed before its
    request could be read. Until then it waits in the intake (INTAKE at most); one the loop has looked
    at and found silent is the first closed when the intake is full. `cap` connections hold ordinary
    places; at the cap, a newcomer closes the one that has waited longest for a request (a slow or
    idle client), or is answered 503 when every one is running a request. A connection whose first bytes are a whole
    request head for one of `spare_paths` (/healthz: a supervisor restarts an agent that does not
    answer it) takes one of `spare` places beyond the cap when the cap is reached: nothing else can
    hold those, nor close their connections, and each serves its one request and closes."""

    def __init__(self, cap: int, header_timeout: float, spare: int = 0, spare_paths: tuple[str, ...] = ()) -> None:
        self.cap = cap
        self.header_timeout = header_timeout
        self.spare = spare
        self.spare_paths = spare_paths
        self._spare_heads = frozenset(p.encode() for p in spare_paths)
        self.factory: Callable[[], asyncio.Protocol] | None = None  # aiohttp's web.Server, once set up
        self.live: set[Connection] = set()
        self.fresh: OrderedDict[Connection, None] = OrderedDict()  # without a place yet, oldest first
        self.silent: OrderedDict[Connection, None] = OrderedDict()  # of those, looked at and found silent
        self.ordinary = self.reserved = 0  # connections in ordinary places, in spare places
        self.waiting: OrderedDict[Connection, None] = OrderedDict()  # ordinary, HEAD or IDLE, longest waiting first
        self.timed_out = self.evicted = self.refused = 0
        self._warned = self._fd_warned = 0.0

    def __call__(self) -> Connection:
        return Connection(self)

    def admit(self, conn: Connection) -> bool:
        """A connection just set up: in the intake until it has sent something (the accept loop keeps
        within room(); TLS handshakes ending together may go beyond it, and get a 503)."""
        if len(self.fresh) >= INTAKE:
            if not self.silent:
                self.refused += 1
                return False
            self.evicted += 1
            self.silent.popitem(last=False)[0].abort()
        self.live.add(conn)
        self.fresh[conn] = None
        return True

    def room(self) -> int:
        """How many connections the accept loop may take now: as many as can wait in the intake or close
        silent ones there."""
        return max(0, min(ACCEPT_BATCH, INTAKE - len(self.fresh) + len(self.silent)))

    def looked(self, conn: Connection) -> None:
        """The loop has looked at a connection and found it silent (not sent anything yet)."""
        if conn in self.fresh:
            self.silent[conn] = None

    def place(self, conn: Connection, first: bytes) -> bool:
        """Gives a connection its place after the loop's first look (`first`: what it had sent by
        then); False: there is none, the connection is to be refused."""
        self.fresh.pop(conn, None)
        self.silent.pop(conn, None)
        if self.ordinary >= self.cap:
            self._warn()
            if self.reserved < self.spare and self._asks_spare(first):
                conn.spare = True
                self.reserved += 1
                return True
            if not self.waiting:
                self.refused += 1
                self.live.discard(conn)
                return False
            victim, _ = self.waiting.popitem(last=False)
            self.evicted += 1
            victim.abort()
        self.ordinary += 1
        return True

    def _asks_spare(self, first: bytes) -> bool:
        """Are these first bytes a whole GET or HEAD request head for one of spare_paths? (A health checker
        sends its head in one piece; a slowloris that begins like one never gets a spare place.)"""
        method, _, rest = first.partition(b" ")
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        return method in (b"GET", b"HEAD") and path in self._spare_heads and _whole_head(first)

    def forget(self, conn: Connection) -> None:
        if conn not in self.live:
            return
        self.live.discard(conn)
        self.fresh.pop(conn, None)
        self.silent.pop(conn, None)
        self.waiting.pop(conn, None)
        if conn.state not in (NEW, SHUT):
            if conn.spare:
                self.reserved -= 1
            else:
                self.ordinary -= 1

    def cannot_accept(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._fd_warned >= 60:
            self._fd_warned = now
            log.warning("cannot accept HTTP connections (%s): trying again in %gs, %d held now",
                        errno.errorcode.get(exc.errno or 0, exc), ACCEPT_RETRY, len(self.live))

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._warned >= 60:
            self._warned = now
            log.warning("%d HTTP connections at once, the cap: closing those that wait longest for a request, "
                        "503 when all are busy; %d more for %s alone (%d closed, %d refused so far)",
                        self.cap, self.spare, " ".join(self.spare_paths) or "nothing",
                        self.evicted, self.refused)


class Connection(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the guard's cap and header deadline."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.inner: asyncio.Protocol | None = None  # made once the connection has its place
        self.transport: asyncio.Transport | None = None
        self.state = NEW
        self.pending = False  # bytes of a next request came while one was running
        self.spare = False  # in a spare place: for the guard's spare_paths alone, one request
        self._deadline: asyncio.TimerHandle | None = None
        self._gone: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.guard.factory is None or not self.guard.admit(self):
            self._refuse()
            return
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.guard.header_timeout, self._late)
        # two turns on: the loop has polled the socket since it began reading it, whatever the loop
        loop.call_soon(loop.call_soon, self._looked)

    def data_received(self, data: bytes) -> None:
        if self.state == NEW:
            if not self._place(data):
                return
        elif self.inner is None:
            return
        if self.state == IDLE:  # the first byte of the next request: its head's deadline starts now
            self._wait(HEAD, evictable=not _whole_head(data))
        elif self.state == HEAD and _whole_head(data):
            self.guard.waiting.pop(self, None)  # its request runs at once: not one to close to make room
        elif self.state == BUSY:
            self.pending = True
        self.inner.data_received(data)

    def _looked(self) -> None:
        if self.state == NEW:
            self.guard.looked(self)

    def _place(self, first: bytes) -> bool:
        if not self.guard.place(self, first):
            self._refuse()
            return False
        assert self.guard.factory is not None and self.transport is not None
        self.inner = self.guard.factory()
        self._wait(HEAD, evictable=not _whole_head(first))
        self.inner.connection_made(self.transport)
        return True

    def _refuse(self) -> None:
        self._disarm()
        self.state = SHUT
        if self.transport is not None:
            self.transport.write(REFUSED)
            self.transport.close()

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)
        self.guard.forget(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def gone(self) -> asyncio.Future[None]:
        """Done when the client has hung up."""
        if self._gone is None:
            self._gone = asyncio.get_running_loop().create_future()
            if self not in self.guard.live:
                self._gone.set_result(None)
        return self._gone

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

    def _wait(self, state: str, evictable: bool = True) -> None:
        """Waits for a request head (HEAD) or a next request (IDLE); `evictable`: may be closed to make
        room for a newcomer, longest waiting first (a connection in a spare place never is)."""
        self._disarm()
        self.state = state
        self.guard.waiting.pop(self, None)
        if evictable and not self.spare:
            self.guard.waiting[self] = None
        if state == HEAD:  # an idle connection is aiohttp's to close (keepalive_timeout)
            self._deadline = asyncio.get_running_loop().call_later(self.guard.header_timeout, self._late)

    def _late(self) -> None:
        self._deadline = None
        if self.state in (NEW, HEAD):
            self.guard.timed_out += 1
            self.abort()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


@web.middleware
async def track(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Marks the connection busy while its request runs: a running request has no head deadline and
    is never the one closed to make room. A connection in a spare place closes after its answer."""
    transport = request.transport
    conn = transport.get_protocol() if transport is not None else None
    if not isinstance(conn, Connection):
        return await handler(request)
    if conn.spare and request.path not in conn.guard.spare_paths:
        conn.guard.refused += 1
        return web.Response(status=503, text="too many connections: try again\n",
                            headers={"Retry-After": "1", "Connection": "close"})
    conn.busy()
    try:
        response = await handler(request)
    finally:
        conn.done()
    if conn.spare:  # the place is free again as soon as the answer is out
        response.force_close()
    return response


def client_gone(request: web.Request) -> asyncio.Future[None]:
    """Done when the client of `request` hangs up: aiohttp does not cancel a handler then, and work
    nobody waits for any more would run to its end."""
    transport = request.transport
    conn = transport.get_protocol() if transport is not None else None
    if isinstance(conn, Connection):
        return conn.gone()
    gone = asyncio.get_running_loop().create_future()  # not behind a guard (a test's server): never, or now
    if transport is None or transport.is_closing():
        gone.set_result(None)
    return gone


class GuardedSite(web.BaseSite):
    """aiohttp's TCPSite with each connection behind the guard, accepted ACCEPT_BATCH a loop turn, and the
    TLS handshake under the head's deadline (asyncio's default gives it 60 s).

    asyncio's own server accepts everything the kernel has queued in one turn and sets all of it up in
    the next: a thousand connections at once held the loop for over 100 ms, and the probes in flight
    measured that. The rest wait in the kernel's queue (`backlog`) meanwhile."""

    def __init__(self, runner: web.AppRunner, host: str | None, port: int, guard: Guard,
                 ssl_context: ssl.SSLContext | None, backlog: int) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self.host, self.port, self.guard = host, port, guard
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task] = set()

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self.host or '0.0.0.0'}:{self.port}"  # nosec B104

    async def start(self) -> None:
        await super().start()
        addresses = await asyncio.get_running_loop().getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)
        try:
            for family, kind, proto, _, address in dict.fromkeys(addresses):
                sock = socket.socket(family, kind, proto)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(self._backlog)
                sock.setblocking(False)
        except OSError:
            for sock in self._sockets:
                sock.close()
            raise
        self.port = self._sockets[0].getsockname()[1]
        for sock in self._sockets:
            self._spawn(self._accept(sock))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in self._sockets:
            sock.close()
        await super().stop()

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            room = self.guard.room()  # none while INTAKE connections wait for their first look
            try:
                if room:
                    self._connect((await loop.sock_accept(sock))[0])
                for _ in range(room - 1):
                    self._connect(sock.accept()[0])
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                pass
            except OSError as exc:  # out of descriptors or memory: they come back as connections close
                self.guard.cannot_accept(exc)
                await asyncio.sleep(ACCEPT_RETRY)
            await asyncio.sleep(0)

    def _connect(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        tls = {"ssl": self._ssl_context, "ssl_handshake_timeout": self.guard.header_timeout} if self._ssl_context else {}
        self._spawn(asyncio.get_running_loop().connect_accepted_socket(self.guard, conn, **tls))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a failed TLS handshake, a client gone before it was set up: nothing to tell
