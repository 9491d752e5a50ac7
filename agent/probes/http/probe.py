"""The HTTP probe: one request with aiohttp, phases stamped on the monotonic clock.

By default every probe opens a new connection (a synthetic user arriving), so DNS, TCP connect and
the TLS handshake are measured each time; `keepalive: true` reuses connections instead.
Phases are consecutive intervals of one clock, so dns + connect + tls + ttfb + transfer == total.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass

import aiohttp
from yarl import URL

from ...clock import Clock
from ...redact import Redactor
from ..base import DOWN, ERROR_KINDS, INCONCLUSIVE, SECRET_SLACK, UP, Capture, Detail, ProbeResult, Target
from ..tls import cert_not_after, client_context, fingerprint
from .checks import Answer, run_checks
from .connector import CURRENT, Recorder, TracedConnector, now, reuse_trace
from .errors import classify
from .spec import HttpOptions

READ_CHUNK = 64 * 1024


@dataclass
class _Outcome:
    """What one request gave, before it becomes a ProbeResult."""

    end: float = 0.0
    status: int | None = None
    kind: str = ""
    error: str = ""
    failed: tuple[str, ...] = ()
    detail: Detail | None = None


class HttpProbe:
    def __init__(self, target: Target, *, clock: Clock, per_host_concurrency: int = 100,
                 redactor: Redactor | None = None, capture: Capture | None = None) -> None:
        self.target = target
        self.o: HttpOptions = target.options
        self.clock = clock
        self.redact = redactor or Redactor()
        self._ssl: ssl.SSLContext | bool = client_context(self.o.tls) if self.o.url.startswith("https:") else False
        self._session: aiohttp.ClientSession | None = None
        self._per_host = per_host_concurrency
        self._body = self.o.body.encode() if self.o.body is not None else None
        self._url = URL(self.o.url)  # parsed once, not per probe
        self.capture = capture
        self._sampled = -1  # the span whose first up result was captured

    def _make_session(self) -> aiohttp.ClientSession:
        o = self.o
        family = {"any": 0, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}[o.ip_family]
        connector = TracedConnector(
            force_close=not o.keepalive, use_dns_cache=o.keepalive, limit=0, limit_per_host=self._per_host,
            family=family, ssl=self._ssl, enable_cleanup_closed=False,
        )
        return aiohttp.ClientSession(
            connector=connector, trace_configs=[reuse_trace()] if o.keepalive else None,
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None, sock_read=None),
            headers=dict(o.headers), cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True,
            skip_auto_headers=("User-Agent",) if any(k.lower() == "user-agent" for k, _ in o.headers) else (),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self) -> ProbeResult:
        t = self.target
        if self._session is None:
            self._session = self._make_session()
        rec = Recorder(capture=self.capture is not None)
        token = CURRENT.set(rec)
        wall = self.clock.time()
        t0 = now()
        out = _Outcome()
        try:
            async with asyncio.timeout(t.timeout):
                await self._request(rec, out, wall)
        except TimeoutError:
            out.end = now()
            out.kind, out.error = _timeout_kind(rec, t.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed result
            out.end = now()
            out.kind, out.error = classify(exc)
        finally:
            CURRENT.reset(token)
            rec.end()  # a phase cut short by the timeout or an error
        return self._result(rec, out, wall, t0)

    async def _request(self, rec: Recorder, out: _Outcome, wall: float) -> None:
        o = self.o
        async with self._session.request(  # type: ignore[union-attr]
                o.method, self._url, data=self._body, allow_redirects=o.redirects == "follow",
                max_redirects=o.max_redirects, trace_request_ctx=rec, server_hostname=o.tls.server_name) as resp:
            rec.headers_at = now()
            out.status = resp.status
            body, too_large = await read_limited(resp, o.max_body_bytes)
            out.end = now()
            if too_large:
                out.kind, out.error = "body_too_large", f"body larger than max_body_bytes={o.max_body_bytes}"
            else:
                out.kind, out.error, out.failed = run_checks(o.checks, Answer(resp.status, body))
            if rec.capture and (out.kind or self._first_up(wall)):
                c = self.capture
                out.detail = Detail(rec.address, tuple((h, v) for h in c.headers if (v := resp.headers.get(h))),
                                    body[:c.body_bytes + SECRET_SLACK], fingerprint(rec.peer_cert), c.body_bytes)

    def _first_up(self, wall: float) -> bool:
        """The first up result of each span is captured too: the journal's proof of health."""
        bucket = self.capture.up_bucket(wall)  # type: ignore[union-attr]
        if bucket < 0 or bucket == self._sampled:
            return False
        self._sampled = bucket
        return True

    def _result(self, rec: Recorder, out: _Outcome, wall: float, t0: float) -> ProbeResult:
        t = self.target
        total = max(0.0, out.end - t0)
        if out.kind == "timeout":
            total = max(total, t.timeout)
        outcome = UP if not out.kind else ERROR_KINDS.get(out.kind, DOWN)
        counted = out.status is not None or out.kind == "timeout"
        if rec.capture and out.kind and out.detail is None:  # failed before any response
            out.detail = Detail(rec.address, cert_sha256=fingerprint(rec.peer_cert))
        return ProbeResult(
            target=t.name, service=t.service, started_at=wall, mono_start=t0, duration_s=total,
            outcome=outcome, error_kind=out.kind, status=out.status, phases=_phases(rec, t0, out.end, total),
            failed_assertions=out.failed, latency_counted=counted and outcome != INCONCLUSIVE,
            tls_not_after=cert_not_after(rec.peer_cert) if rec.peer_cert is not None else None,
            error=self.redact(out.error) if out.error else "", detail=out.detail,
        )


def _timeout_kind(rec: Recorder, timeout: float) -> tuple[str, str]:
    """Which phase the timeout cut: the kind of failure it is."""
    if rec.open_phase == "tls":
        return "tls", f"TLS handshake not finished within {timeout:g}s"
    if rec.open_phase == "dns":
        return "connect_timeout", f"DNS lookup not answered within {timeout:g}s"
    if not rec.connected:
        return "connect_timeout", f"no connection within {timeout:g}s"
    return "timeout", f"no complete response within {timeout:g}s"


def _phases(rec: Recorder, t0: float, end: float, total: float) -> tuple[float, float, float, float, float]:
    """Consecutive intervals of one clock: dns + connect + tls + ttfb + transfer == total."""
    transfer = max(0.0, end - rec.headers_at) if rec.headers_at is not None else 0.0
    ttfb = max(0.0, total - rec.dns - rec.connect - rec.tls - transfer)
    return (rec.dns, rec.connect, rec.tls, ttfb, transfer)


async def read_limited(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await resp.content.read(min(READ_CHUNK, limit + 1 - size) if limit + 1 - size > 0 else 1)
        if not chunk:
            return b"".join(chunks), False
        size += len(chunk)
        if size > limit:
            resp.close()  # stop the transfer: the rest of the body is never read
            return b"".join(chunks), True
        chunks.append(chunk)
