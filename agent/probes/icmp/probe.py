"""The ICMP probe: resolve the host, send `packets` echo requests `spacing` apart on one icmplib socket,
and gather the replies, and any destination unreachable or time exceeded answer, until each echo is
accounted for or the timeout ends the wait for the rest.

icmplib's async_ping waits for each reply before sending the next echo and drops every per-echo error
(an unreachable answer looks like a lost echo), so the probe drives icmplib's AsyncSocket itself."""
from __future__ import annotations

import asyncio
import errno
import socket
import time
from dataclasses import dataclass, field

from icmplib import (AsyncSocket, ICMPError, ICMPLibError, ICMPRequest, ICMPSocketError, ICMPv4Socket, ICMPv6Socket,
                     SocketBroadcastError, SocketPermissionError, TimeoutExceeded)
from icmplib.utils import unique_identifier

from ...clock import Clock
from ...redact import Redactor
from ..base import DOWN, ERROR_KINDS, SECRET_SLACK, UP, Capture, Detail, FirstUp, ProbeResult, Target
from . import access as access_
from .spec import IcmpOptions

PHASES = ("rtt",)
now = time.monotonic
_FAMILY = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
_ECHO_REPLY = {4: 0, 6: 129}
_ERRORS = {4: (3, 11), 6: (1, 3)}  # destination unreachable, time exceeded
# Linux's values (the socket module names neither): ICMP errors for a datagram socket's own echoes
_RECVERR = {4: (socket.IPPROTO_IP, 11), 6: (socket.IPPROTO_IPV6, 25)}


@dataclass
class _Echoes:
    """What one probe sent and got back. RTTs are in seconds."""

    packets: int
    address: str = ""
    requests: list[ICMPRequest] = field(default_factory=list)
    rtts: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    done: set[int] = field(default_factory=set)  # sequences answered by a reply or an error

    def line(self) -> str:
        """For the journal: what ping(8) says at its end."""
        got = len(self.rtts)
        loss = f"{(self.packets - got) / self.packets:.0%} loss"
        text = f"{len(self.requests)} sent, {got} received, {loss}"
        if self.errors:
            text += f", {len(self.errors)} errors"
        if got:
            ms = [x * 1000 for x in (min(self.rtts), sum(self.rtts) / got, max(self.rtts))]
            text += ", rtt min/avg/max " + "/".join(f"{x:.3f}" for x in ms) + " ms"
        return text


class IcmpProbe:
    def __init__(self, target: Target, *, clock: Clock, redactor: Redactor | None = None,
                 capture: Capture | None = None, access: str | None = "", **_: object) -> None:
        self.target = target
        self.o: IcmpOptions = target.options
        self.clock = clock
        self.redact = redactor or Redactor()
        self.capture = capture
        self.first_up = FirstUp(capture)
        # "" (the default): chosen here, once; tests name DATAGRAM, RAW, or None for no access
        self.access = access_.choose() if access == "" else access

    async def close(self) -> None:
        pass

    async def run(self) -> ProbeResult:
        t = self.target
        e = _Echoes(self.o.packets)
        wall, t0 = self.clock.time(), now()
        kind = error = ""
        if self.access is None:
            kind, error = "agent_error", access_.NO_ACCESS
        else:
            try:
                async with asyncio.timeout(t.timeout):
                    await self._exchange(e, t0)
            except TimeoutError:
                pass  # the echoes not back by now are lost
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure becomes a typed result
                kind, error = classify(exc)
            if not kind:
                kind, error = self._judge(e)
        total = max(0.0, now() - t0)
        outcome = UP if not kind else ERROR_KINDS.get(kind, DOWN)
        rtt = sum(e.rtts) / len(e.rtts) if e.rtts else 0.0
        # Never in the latency population: the probe's time is mostly spacing, and one lost echo holds it
        # to the timeout; the echoes' round trip is the rtt phase and the journal's line.
        return ProbeResult(
            target=t.name, service=t.service, started_at=wall, mono_start=t0, duration_s=total, outcome=outcome,
            error_kind=kind, phases=(rtt,), latency_counted=False,
            error=self.redact(error) if error else "", detail=self._detail(e, kind, wall))

    def _judge(self, e: _Echoes) -> tuple[str, str]:
        n, got = self.o.packets, len(e.rtts)
        if not got and e.errors:
            return "connect_error", f"{e.errors[0]} ({len(e.errors)} of {n} echoes answered so, from {e.address})"
        if not got:
            return "connect_timeout", f"no echo reply from {e.address} to {n} requests within {self.target.timeout:g}s"
        lost = (n - got) / n
        if self.o.max_loss is not None and lost > self.o.max_loss:
            return "assertion", f"{n - got} of {n} echoes lost ({lost:.0%}), above max_loss {self.o.max_loss:.0%}"
        return "", ""

    def _detail(self, e: _Echoes, kind: str, wall: float) -> Detail | None:
        """For the journal: every failure, and the first up result of each up_every."""
        if self.capture is None or (not kind and not self.first_up(wall)):
            return None
        body = e.line().encode() if e.address else b""
        return Detail(e.address, body=body[:self.capture.body_bytes + SECRET_SLACK], body_bytes=self.capture.body_bytes)

    async def _exchange(self, e: _Echoes, t0: float) -> None:
        o = self.o
        if o.literal:
            e.address = o.host
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(o.host, None, family=_FAMILY[o.ip_family],
                                                                 type=socket.SOCK_DGRAM)
            e.address = infos[0][4][0]
        family = 6 if ":" in e.address else 4
        raw = self.access == access_.RAW
        with AsyncSocket((ICMPv6Socket if family == 6 else ICMPv4Socket)(privileged=raw)) as sock:
            if not raw:
                sock.sock.setsockopt(*_RECVERR[family], 1)
            ident = unique_identifier()
            while len(e.requests) < o.packets or len(e.done) < len(e.requests):
                due = t0 + len(e.requests) * o.spacing
                if len(e.requests) < o.packets and now() >= due:
                    e.requests.append(ICMPRequest(e.address, ident, len(e.requests)))
                    sock.send(e.requests[-1])
                    continue
                wait = due - now() if len(e.requests) < o.packets else self.target.timeout
                await self._receive(sock, e, family, raw, wait)

    async def _receive(self, sock: AsyncSocket, e: _Echoes, family: int, raw: bool, wait: float) -> None:
        try:
            reply = await sock.receive(None, wait)
        except TimeoutExceeded:  # the next echo is due
            return
        except ICMPSocketError as exc:
            if raw:
                raise
            # a datagram socket's ICMP error (IP_RECVERR) names no echo: it answers the oldest one waiting
            e.errors.append(f"destination unreachable: {exc}")
            e.done.add(min(set(range(len(e.requests))) - e.done, default=0))
            return
        seq = reply.sequence
        if seq >= len(e.requests) or seq in e.done or reply.id != e.requests[seq].id:
            return  # another probe's, a duplicate, or our own request seen by a raw socket
        if reply.type == _ECHO_REPLY[family]:
            e.rtts.append(max(0.0, reply.time - e.requests[seq].time))
        elif reply.type in _ERRORS[family]:
            try:
                reply.raise_for_status()
            except ICMPError as exc:
                what = "time exceeded" if reply.type == _ERRORS[family][1] else "destination unreachable"
                e.errors.append(f"{what} (code {reply.code}): {exc}")
        else:
            return
        e.done.add(seq)


def classify(exc: BaseException) -> tuple[str, str]:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, socket.gaierror):
        return "dns", text
    if isinstance(exc, SocketPermissionError):
        return "agent_error", f"{text} ({access_.NO_ACCESS})"
    if isinstance(exc, SocketBroadcastError):  # icmplib's reading of EACCES from sendto
        return "connect_error", "the kernel refused to send an echo request (EACCES: a prohibit route or a firewall)"
    cause = exc.__context__ if isinstance(exc, ICMPLibError) else exc  # icmplib keeps only the OSError's text
    if getattr(cause, "errno", None) in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS):
        return "agent_error", text  # the agent's own host is short of files or buffers
    if isinstance(exc, ICMPLibError):  # the kernel refused to send (a route to nowhere, a firewall)
        return "connect_error", f"sending an echo request failed: {text}"
    if isinstance(exc, OSError):
        return "connect_error", text
    return "agent_error", text
