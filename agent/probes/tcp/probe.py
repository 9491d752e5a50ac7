"""The TCP probe: resolve, connect, optionally a TLS handshake, optionally send a line and read the first
line back. Phases dns, connect, tls, response are consecutive intervals of one monotonic clock."""
from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from dataclasses import dataclass, field

import aiohappyeyeballs

from ...clock import Clock
from ...redact import Redactor
from ..base import (DOWN, ERROR_KINDS, INCONCLUSIVE, SECRET_SLACK, UP, Capture, Detail, Failed, FirstUp, ProbeResult,
                    Target, address_text)
from ..offloop import OffLoop, inline
from ..tls import cert_not_after, fingerprint, probe_context
from .spec import TcpOptions

PHASES = ("dns", "connect", "tls", "response")
MAX_LINE = 4096  # the first line is read up to this many bytes
now = time.monotonic
_FAMILY = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}


@dataclass
class _Run:
    """Where one probe is: the phase under way and how long each one took."""

    spent: dict[str, float] = field(default_factory=dict)
    phase: str = ""
    since: float = 0.0
    connected: bool = False
    cert: bytes | None = None
    address: str = ""
    line: bytes = b""

    def begin(self, phase: str) -> None:
        self.end()
        self.phase, self.since = phase, now()

    def end(self) -> None:
        if self.phase:
            self.spent[self.phase] = self.spent.get(self.phase, 0.0) + now() - self.since
            self.phase = ""


class TcpProbe:
    def __init__(self, target: Target, *, clock: Clock, redactor: Redactor | None = None,
                 capture: Capture | None = None, **_: object) -> None:
        self.target = target
        self.o: TcpOptions = target.options
        self.clock = clock
        self.redact = redactor or Redactor()
        self._ssl = probe_context(self.o.tls) if self.o.tls else None
        self._send = self.o.send.encode() if self.o.send is not None else None
        self.capture = capture
        self.first_up = FirstUp(capture)
        self.off_loop = OffLoop()

    async def close(self) -> None:
        pass

    async def run(self) -> ProbeResult:
        t = self.target
        run = _Run()
        wall, t0 = self.clock.time(), now()
        kind = error = ""
        try:
            async with asyncio.timeout(t.timeout):
                await self._exchange(run)
        except TimeoutError:
            kind, error = _timeout_kind(run.phase, t.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed result
            kind, error = classify(exc)
            if run.phase == "tls" and kind in ("reset", "connect_error"):
                kind = "tls"  # the peer broke off the handshake
        end = now()
        run.end()
        total = max(0.0, end - t0)
        if kind == "timeout":
            total = max(total, t.timeout)
        outcome = UP if not kind else ERROR_KINDS.get(kind, DOWN)
        counted = run.connected and kind in ("", "timeout", "assertion")  # answered, or timed out
        detail = self._detail(run, kind, wall)
        return ProbeResult(
            target=t.name, service=t.service, started_at=wall, mono_start=t0, duration_s=total, outcome=outcome,
            error_kind=kind, phases=tuple(run.spent.get(p, 0.0) for p in PHASES),
            latency_counted=counted and outcome != INCONCLUSIVE, tls_not_after=cert_not_after(run.cert),
            error=self.redact(error) if error else "", detail=detail)

    def _detail(self, run: _Run, kind: str, wall: float) -> Detail | None:
        """For the journal: every failure, and the first up result of each minute."""
        if self.capture is None or (not kind and not self.first_up(wall)):
            return None
        return Detail(run.address, body=run.line[:self.capture.body_bytes + SECRET_SLACK],
                      cert_sha256=fingerprint(run.cert), body_bytes=self.capture.body_bytes)

    async def _exchange(self, run: _Run) -> None:
        o = self.o
        loop = asyncio.get_running_loop()
        if not o.literal:
            run.begin("dns")
        infos = await loop.getaddrinfo(o.host, o.port, family=_FAMILY[o.ip_family], type=socket.SOCK_STREAM)
        run.begin("connect")
        run.address = address_text(infos[0][4])
        sock = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=0.25, loop=loop)
        run.address = address_text(sock.getpeername())
        if self._ssl is not None:
            run.begin("tls")
        try:
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=self._ssl, server_hostname=(o.tls.server_name or o.host) if o.tls else None,
                ssl_handshake_timeout=None, limit=MAX_LINE)
        except BaseException:
            sock.close()
            raise
        run.connected = True
        try:
            sslobj = writer.get_extra_info("ssl_object")
            run.cert = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
            if self._send is not None or o.expect is not None:
                run.begin("response")
                await self._talk(reader, writer, run)
            run.end()
        finally:
            writer.transport.abort()

    async def _talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, run: _Run) -> None:
        if self._send is not None:
            writer.write(self._send)
            await writer.drain()
        if self.o.expect is None:
            return
        run.line = await _first_line(reader)
        line = run.line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not await self.off_loop.run(inline(len(line), 1), self.o.expect.search, line):
            shown = line if len(line) <= 200 else line[:200] + "..."
            raise Failed("assertion", f"first line {shown!r} does not match /{self.o.expect.pattern}/")


async def _first_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise Failed("reset", "the peer closed the connection before sending a line") from None
        return exc.partial
    except asyncio.LimitOverrunError:
        return await reader.read(MAX_LINE)


def _timeout_kind(phase: str, timeout: float) -> tuple[str, str]:
    if phase == "tls":
        return "tls", f"TLS handshake not finished within {timeout:g}s"
    if phase in ("dns", "connect", ""):
        return "connect_timeout", f"no connection within {timeout:g}s"
    return "timeout", f"no expected line within {timeout:g}s"


def classify(exc: BaseException) -> tuple[str, str]:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, Failed):
        return exc.kind, str(exc)
    if isinstance(exc, socket.gaierror):
        return "dns", text
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return "tls", text
    if isinstance(exc, ConnectionRefusedError):
        return "connect_refused", text
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError)):
        return "reset", text
    if isinstance(exc, OSError):
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.EADDRNOTAVAIL):
            return "agent_error", text
        if exc.errno == errno.ECONNREFUSED:
            return "connect_refused", text
        return "connect_error", text
    return "agent_error", text
