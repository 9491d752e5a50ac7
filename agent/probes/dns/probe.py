"""The DNS probe: one question to a named server (udp, a truncated answer asked again over tcp; or tcp), or
to the system's resolver, then the answer's rcode and records checked. One phase, query: from the
question sent to the answer checked, on the monotonic clock."""
from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from dataclasses import dataclass

import dns.asyncbackend
import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.inet
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver

from ...clock import Clock
from ...redact import Redactor
from ..base import (DOWN, ERROR_KINDS, INCONCLUSIVE, SECRET_SLACK, UP, Capture, Detail, Failed, FirstUp, ProbeResult,
                    Target, address_text)
from ..offloop import OffLoop, inline
from .spec import DnsOptions

PHASES = ("query",)
RESOLV_CONF = "/etc/resolv.conf"
EDNS_PAYLOAD = 1232  # what stub resolvers offer since DNS Flag Day 2020: larger answers come over tcp
now = time.monotonic


@dataclass
class _Run:
    address: str = ""  # the server that answered, or the one asked
    response: dns.message.Message | None = None


class DnsProbe:
    def __init__(self, target: Target, *, clock: Clock, redactor: Redactor | None = None,
                 capture: Capture | None = None, resolver: dns.asyncresolver.Resolver | None = None,
                 **_: object) -> None:
        self.target = target
        self.o: DnsOptions = target.options
        self.clock = clock
        self.redact = redactor or Redactor()
        self.capture = capture
        self.first_up = FirstUp(capture)
        self.off_loop = OffLoop()
        self._qname = dns.name.from_text(self.o.query)
        self._rdtype = dns.rdatatype.from_text(self.o.record)
        self._given = resolver  # a resolver of the caller's; else the system's, read again when it changes
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._conf_stamp: tuple[int, int] | None = None

    async def close(self) -> None:
        pass

    async def run(self) -> ProbeResult:
        t = self.target
        run = _Run()
        wall, t0 = self.clock.time(), now()
        kind = error = ""
        timed_out = False
        try:
            async with asyncio.timeout(t.timeout):
                await self._ask(run)
                await self._check(run)
        except (TimeoutError, dns.exception.Timeout):
            timed_out = True
            kind, error = (("dns", f"no answer from {run.address or 'the resolver'} within {t.timeout:g}s")
                           if run.response is None else
                           ("timeout", f"the answer's records not checked within {t.timeout:g}s"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed result
            kind, error = classify(exc)
        total = max(0.0, now() - t0)
        if timed_out:
            total = max(total, t.timeout)
        outcome = UP if not kind else ERROR_KINDS.get(kind, DOWN)
        counted = run.response is not None or timed_out  # answered (any rcode), or timed out
        return ProbeResult(
            target=t.name, service=t.service, started_at=wall, mono_start=t0, duration_s=total, outcome=outcome,
            error_kind=kind, phases=(total,), latency_counted=counted and outcome != INCONCLUSIVE,
            error=self.redact(error) if error else "", detail=self._detail(run, kind, wall))

    def _detail(self, run: _Run, kind: str, wall: float) -> Detail | None:
        """For the journal: every failure, and the first up result of each `capture.up_every`."""
        if self.capture is None or (not kind and not self.first_up(wall)):
            return None
        body = answer_text(run.response).encode() if run.response is not None else b""
        return Detail(run.address, body=body[:self.capture.body_bytes + SECRET_SLACK],
                      body_bytes=self.capture.body_bytes)

    async def _ask(self, run: _Run) -> None:
        if self.o.server is None:
            await self._resolve(run)
            return
        host, port = self.o.server
        run.address = address_text((host, port))
        q = dns.message.make_query(self._qname, self._rdtype, use_edns=0, payload=EDNS_PAYLOAD)
        if self.o.transport == "tcp":
            run.response = await dns.asyncquery.tcp(q, host, port=port)
            return
        # A socket connected to the server: a closed port's ICMP answer reaches it (refused, not a timeout).
        backend = dns.asyncbackend.get_default_backend()
        sock = await backend.make_socket(dns.inet.af_for_address(host), socket.SOCK_DGRAM, 0, None, (host, port))
        try:
            run.response, _ = await dns.asyncquery.udp_with_fallback(q, host, port=port, udp_sock=sock)
        finally:
            await sock.close()

    async def _resolve(self, run: _Run) -> None:
        resolver = self._system()
        if resolver.nameservers:
            run.address = _server_text(resolver.nameservers[0], resolver.port)
        try:
            answer = await resolver.resolve(self._qname, self._rdtype, tcp=self.o.transport == "tcp",
                                            raise_on_no_answer=False, lifetime=self.target.timeout, search=False)
        except dns.resolver.NXDOMAIN as exc:
            run.response = next(iter(exc.responses().values()), None)
            if run.response is None:
                raise
            return
        except dns.resolver.NoNameservers as exc:
            # Every server answered with an error (SERVFAIL, REFUSED): the last answer is judged by its rcode.
            answered = [e for e in exc.kwargs.get("errors", ()) if isinstance(e[4], dns.message.Message)]
            if not answered:
                raise
            server, _, port, _, run.response = answered[-1]
            run.address = address_text((server, port)) if server else run.address
            return
        run.address = address_text((answer.nameserver, answer.port)) if answer.nameserver else run.address
        run.response = answer.response

    def _system(self) -> dns.asyncresolver.Resolver:
        if self._given is not None:
            return self._given
        try:
            st = os.stat(RESOLV_CONF)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_ino)
        except OSError:
            stamp = None
        if self._resolver is None or stamp != self._conf_stamp:
            self._resolver = dns.asyncresolver.Resolver(filename=RESOLV_CONF)
            self._resolver.cache = None  # every probe asks: an answer from a cache of ours measures nothing
            self._conf_stamp = stamp
        return self._resolver

    async def _check(self, run: _Run) -> None:
        o, resp = self.o, run.response
        if resp is None:
            raise Failed("dns", f"no answer for {o.query} {o.record} from {run.address}")
        rcode = dns.rcode.to_text(resp.rcode())
        if rcode not in o.expect_rcode:
            raise Failed("dns", f"{rcode} from {run.address} for {o.query} {o.record}, "
                                 f"expected {' or '.join(o.expect_rcode)}")
        records = [rd.to_text() for rrset in resp.answer if rrset.rdtype == self._rdtype for rd in rrset]
        if len(records) < o.min_answers:
            raise Failed("assertion", f"{len(records)} {o.record} record(s) for {o.query}, "
                                       f"at least {o.min_answers} expected")
        if o.expect_answers:
            size = sum(len(r) for r in records)
            unmatched = await self.off_loop.run(inline(size, len(o.expect_answers)), _unmatched,
                                                o.expect_answers, records)
            if unmatched:
                shown = ", ".join(records) if size <= 200 else ", ".join(records)[:200] + "..."
                raise Failed("assertion", f"no {o.record} record of {o.query} matches /{unmatched[0].pattern}/ "
                                           f"(got: {shown or 'none'})")


def _unmatched(patterns, records: list[str]) -> list:
    return [p for p in patterns if not any(p.search(r) for r in records)]


def _server_text(server: object, port: int) -> str:
    """A resolver's first server as ip:port (resolv.conf names an address, on the resolver's port)."""
    if isinstance(server, str):
        return address_text((server, port))
    address, port = getattr(server, "address", None), getattr(server, "port", port)
    return address_text((address, port)) if address else str(server)


def answer_text(resp: dns.message.Message) -> str:
    """The answer's records as a zone file writes them, TTL included; the authority's when the answer has none
    (an absent name's SOA says how long the absence is cached)."""
    section = resp.answer or resp.authority
    return "".join(rrset.to_text() + "\n" for rrset in section)


def classify(exc: BaseException) -> tuple[str, str]:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, Failed):
        return exc.kind, str(exc)
    if isinstance(exc, dns.resolver.NoResolverConfiguration):
        return "agent_error", text
    if isinstance(exc, ConnectionRefusedError):
        return "connect_refused", text
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, EOFError)):
        return "reset", text  # the tcp connection ended before a whole answer
    if isinstance(exc, dns.exception.DNSException):
        return "dns", text  # an answer that cannot be read or is not the question's, a name too long...
    if isinstance(exc, OSError):
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.EADDRNOTAVAIL):
            return "agent_error", text
        if exc.errno == errno.ECONNREFUSED:
            return "connect_refused", text
        return "connect_error", text
    return "agent_error", text
