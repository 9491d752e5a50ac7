"""Phase stamps for the HTTP probe: DNS, TCP connect and the TLS handshake, on the monotonic clock.

aiohttp's TraceConfig reports connection creation as one step (DNS + TCP + TLS) and costs ~0.06 ms of CPU
per probe even with empty hooks, so the stamps are taken in a TCPConnector subclass instead. It leans on
aiohttp's private connection methods: aiohttp is pinned (~=3.14) and tests cover every phase.
"""
from __future__ import annotations

import asyncio
import contextvars
import socket
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohappyeyeballs
import aiohttp
from aiohttp.client_exceptions import cert_errors, ssl_errors
from aiohttp.helpers import is_ip_address

from ..base import address_text

CURRENT: contextvars.ContextVar["Recorder | None"] = contextvars.ContextVar("sla_probe_recorder", default=None)
now = time.monotonic  # every stamp on one clock with sub-microsecond resolution (uvloop's loop.time() has 1 ms)


@dataclass
class Recorder:
    """Phase stamps of one probe. `open_phase` is the phase under way (for a probe cut by its timeout)."""

    dns: float = 0.0
    connect: float = 0.0
    tls: float = 0.0
    open_phase: str | None = None
    open_start: float = 0.0
    connected: bool = False
    peer_cert: bytes | None = None
    capture: bool = False  # the journal may want this probe: note the address reached
    address: str = ""
    headers_at: float | None = None

    def begin(self, phase: str) -> None:
        self.open_phase, self.open_start = phase, now()

    def end(self) -> None:
        if self.open_phase is not None:
            setattr(self, self.open_phase, getattr(self, self.open_phase) + now() - self.open_start)
            self.open_phase = None


async def _on_conn_reuse(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    rec = ctx.trace_request_ctx
    if rec is not None:
        rec.connected = True


def reuse_trace() -> aiohttp.TraceConfig:
    tc = aiohttp.TraceConfig()
    tc.on_connection_reuseconn.append(_on_conn_reuse)
    return tc


async def _connect_one(loop: asyncio.AbstractEventLoop, addr_info: Any) -> socket.socket:
    family, type_, proto, _, address = addr_info
    sock = socket.socket(family, type_, proto)
    try:
        sock.setblocking(False)
        await _connect(loop, sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, address: Any) -> None:
    """loop.sock_connect to an address already resolved. uvloop's resolves it again, in its thread pool
    (its fast path for an IP literal is skipped for a call with no socket type): a round trip through a
    worker thread and a wake-up of the loop for every probe, timed inside the connect phase."""
    try:
        sock.connect(address)
        return
    except (BlockingIOError, InterruptedError):
        pass
    writable = loop.create_future()
    loop.add_writer(sock, _set_done, writable)
    try:
        await writable
    finally:
        loop.remove_writer(sock)
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, f"Connect call failed {address}")


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class TracedConnector(aiohttp.TCPConnector):
    """Stamps DNS, TCP connect and the TLS handshake as three phases: the socket is connected as aiohttp
    does it (aiohappyeyeballs), then the loop runs the TLS handshake on it."""

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> Any:
        rec = CURRENT.get()
        if rec is None or is_ip_address(host):
            return await super()._resolve_host(host, port, traces=traces)
        rec.begin("dns")
        try:
            return await super()._resolve_host(host, port, traces=traces)
        finally:
            if rec.open_phase == "dns":
                rec.end()

    async def _wrap_create_connection(self, *args: Any, addr_infos: Any, req: Any, timeout: Any,
                                      client_error: type[Exception] = aiohttp.ClientConnectorError,
                                      **kwargs: Any) -> Any:
        rec = CURRENT.get()
        if rec is None:
            return await super()._wrap_create_connection(*args, addr_infos=addr_infos, req=req, timeout=timeout,
                                                         client_error=client_error, **kwargs)
        loop = self._loop
        rec.begin("connect")
        if rec.capture:
            rec.address = address_text(addr_infos[0][4])
        raced = not (len(addr_infos) == 1 and not self._local_addr_infos)
        try:
            if not raced:
                sock = await _connect_one(loop, addr_infos[0])  # nothing to race: skip happy eyeballs
            else:
                sock = await aiohappyeyeballs.start_connection(
                    addr_infos=addr_infos, local_addr_infos=self._local_addr_infos,
                    happy_eyeballs_delay=self._happy_eyeballs_delay, interleave=self._interleave, loop=loop,
                    socket_factory=getattr(self, "_socket_factory", None))
        except OSError as exc:
            rec.end()
            raise client_error(req.connection_key, exc) from exc
        rec.end()
        if rec.capture and raced:  # the address that won (unraced, the one tried is the one reached)
            rec.address = address_text(sock.getpeername())
        if kwargs.get("ssl"):
            rec.begin("tls")
        try:
            transport, proto = await loop.create_connection(*args, **kwargs, sock=sock)
        except cert_errors as exc:
            sock.close()
            rec.end()
            raise aiohttp.ClientConnectorCertificateError(req.connection_key, exc) from exc
        except ssl_errors as exc:
            sock.close()
            rec.end()
            raise aiohttp.ClientConnectorSSLError(req.connection_key, exc) from exc
        except OSError as exc:
            sock.close()
            rec.end()
            raise client_error(req.connection_key, exc) from exc
        except BaseException:  # cancelled by the probe's timeout: the phase stays open, run() closes it
            sock.close()
            raise
        rec.end()
        rec.connected = True
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            rec.peer_cert = sslobj.getpeercert(binary_form=True)
        return transport, proto
