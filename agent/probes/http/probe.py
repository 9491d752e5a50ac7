"""The HTTP probe: one request with aiohttp, phases stamped on the monotonic clock.

By default every probe opens a new connection (a synthetic user arriving), so DNS, TCP connect and
the TLS handshake are measured each time; `keepalive: true` reuses connections instead.
Phases are consecutive intervals of one clock, so dns + connect + tls + ttfb + transfer == total.
A target with OAuth2 gets its token before the clock starts: the token request is never measured.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from ...clock import Clock
from ...redact import MASK, Redactor
from ..base import (DOWN, ERROR_KINDS, INCONCLUSIVE, SECRET_SLACK, UP, Capture, Detail, FirstUp, ProbeResult,
                    Target, TokenRequest)
from ..offloop import OffLoop, inline
from ..tls import cert_not_after, client_context, fingerprint, probe_context
from .body import read_limited
from .checks import Answer, run_checks
from .connector import CURRENT, Recorder, TracedConnector, now, reuse_trace
from .errors import classify
from .oauth2 import OAuth2Options, TokenSource, TokenUnavailable
from .redirects import follow
from .spec import HttpOptions

@dataclass
class Attempt:
    """One request as it went: its phase stamps and what it gave, before it becomes a ProbeResult."""

    rec: Recorder
    wall: float  # wall-clock start
    t0: float  # monotonic start
    end: float = 0.0
    status: int | None = None
    kind: str = ""
    error: str = ""
    failed: tuple[str, ...] = ()
    detail: Detail | None = None
    body: bytes = b""
    headers: Any = None  # the response headers (a step's extraction reads them)


@dataclass
class Run:
    """What one probe spent on tokens, and the token it sent (to keep out of every text)."""

    tokens: list[TokenRequest] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)


class HttpProbe:
    def __init__(self, target: Target, *, clock: Clock, per_host_concurrency: int = 100,
                 redactor: Redactor | None = None, capture: Capture | None = None, **_: object) -> None:
        self.target = target
        self.o = target.options
        self.clock = clock
        self.redact = redactor or Redactor()
        self._ssl: ssl.SSLContext | bool = probe_context(self.o.tls) if self._uses_https() else False
        self._session: aiohttp.ClientSession | None = None
        self._per_host = per_host_concurrency
        self._tokens: dict[OAuth2Options, TokenSource] = {}
        self.capture = capture
        self.first_up = FirstUp(capture)
        self.off_loop = OffLoop()
        if isinstance(self.o, HttpOptions):
            self._body = self.o.body.encode() if self.o.body is not None else None
            self._url = URL(self.o.url)  # parsed once, not per probe

    def _uses_https(self) -> bool:
        return self.o.url.startswith("https:")

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
            cookie_jar=self._cookie_jar(), auto_decompress=True,  # headers: per request (see _request)
            skip_auto_headers=("User-Agent",) if any(k.lower() == "user-agent" for k, _ in o.headers) else (),
        )

    def _cookie_jar(self) -> aiohttp.abc.AbstractCookieJar:
        return aiohttp.DummyCookieJar()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        for source in self._tokens.values():
            await source.close()

    def _token_source(self, auth: OAuth2Options) -> TokenSource:
        source = self._tokens.get(auth)
        if source is None:
            tls = client_context(self.o.tls) if auth.token_url.startswith("https:") else False
            source = self._tokens[auth] = TokenSource(auth, self.clock, tls, self.target.timeout)
        return source

    async def run(self) -> ProbeResult:
        if self._session is None:
            self._session = self._make_session()
        run = Run()
        try:
            a = await self.authorized(self.o, self._url, self._body, None, run, sample=True)
        except TokenUnavailable as exc:
            return self.no_token(self.o.auth, exc, run)
        return self._result(a, run)

    async def authorized(self, o: HttpOptions, url: URL, body: bytes | None, headers: dict[str, str] | None,
                         run: Run, *, sample: bool) -> Attempt:
        """The request with its bearer token when it has OAuth2; once more with a new token after a 401."""
        if o.auth is None:
            return await self.attempt(o, url, body, headers, sample=sample)
        source = self._token_source(o.auth)
        token = await source.get(run.tokens)
        run.secrets.append(token)
        a = await self.attempt(o, url, body, {**(headers or {}), "Authorization": f"Bearer {token}"}, sample=sample)
        if a.status != 401:
            return a
        token = await source.rejected(token, run.tokens)
        run.secrets.append(token)
        return await self.attempt(o, url, body, {**(headers or {}), "Authorization": f"Bearer {token}"},
                                  sample=sample)

    async def attempt(self, o: HttpOptions, url: URL, body: bytes | None, headers: dict[str, str] | None, *,
                      sample: bool) -> Attempt:
        """One request under the target's timeout, every failure typed."""
        rec = Recorder(capture=self.capture is not None)
        token = CURRENT.set(rec)
        a = Attempt(rec, self.clock.time(), now())
        try:
            async with asyncio.timeout(self.target.timeout):
                await self._request(o, url, body, headers, a, sample)
        except TimeoutError:
            a.end = now()
            a.kind, a.error = _timeout_kind(rec, self.target.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed result
            a.end = now()
            a.kind, a.error = classify(exc)
        finally:
            CURRENT.reset(token)
            rec.end()  # a phase cut short by the timeout or an error
        if rec.capture and a.kind and a.detail is None:  # failed before any response
            a.detail = Detail(rec.address, cert_sha256=fingerprint(rec.peer_cert))
        return a

    async def _request(self, o: HttpOptions, url: URL, body: bytes | None, headers: dict[str, str] | None,
                       a: Attempt, sample: bool) -> None:
        sent = dict(self.o.headers)  # the target's, then the request's own: a step's header wins
        if headers:
            own = {k.lower() for k in headers}
            sent = {k: v for k, v in sent.items() if k.lower() not in own} | headers
        async with follow(self._session, o.method, url, data=body, headers=sent,  # type: ignore[arg-type]
                          private=self.private_headers(o), allow_redirects=o.redirects == "follow",
                          max_redirects=o.max_redirects, trace_request_ctx=a.rec,
                          server_hostname=self.o.tls.server_name) as resp:
            a.rec.headers_at = now()
            a.status = resp.status
            a.headers = resp.headers
            a.body, too_large = await read_limited(resp, o.max_body_bytes)
            a.end = now()
            if too_large:
                a.kind, a.error = "body_too_large", f"body larger than max_body_bytes={o.max_body_bytes}"
            else:
                answer, searches = Answer(resp.status, a.body), len(o.body_regex) + len(o.body_not_regex)
                a.kind, a.error, a.failed = await self.off_loop.run(inline(len(a.body), searches), run_checks,
                                                                    o.checks, answer)
            if a.rec.capture and (a.kind or (sample and self.first_up(a.wall))):
                a.detail = self.captured(a)

    def private_headers(self, o: HttpOptions) -> frozenset[str]:
        """The headers a redirect to another origin does not get (the bearer token is always kept home)."""
        return o.private_headers

    def captured(self, a: Attempt) -> Detail:
        """What the journal keeps of a response: the configured headers, the first bytes of the body."""
        c = self.capture
        return Detail(a.rec.address, tuple((h, v) for h in c.headers if (v := a.headers.get(h))),  # type: ignore
                      a.body[:c.body_bytes + SECRET_SLACK], fingerprint(a.rec.peer_cert), c.body_bytes)  # type: ignore

    def _result(self, a: Attempt, run: Run, *, fail: Attempt | None = None, label: str = "",
                counted: bool = True) -> ProbeResult:
        """The result with the timings of the measured request `a`. A transaction passes the step that
        failed (`fail`, named by `label`): its kind, status, error and captured response."""
        t = self.target
        f = fail or a
        total = max(0.0, a.end - a.t0)
        if a.kind == "timeout":
            total = max(total, t.timeout)
        outcome = UP if not f.kind else ERROR_KINDS.get(f.kind, DOWN)
        counted = counted and (a.status is not None or a.kind == "timeout") and \
            ERROR_KINDS.get(a.kind, DOWN) != INCONCLUSIVE and outcome != INCONCLUSIVE
        text = f"{label}: {f.error}" if label and f.error else f.error
        return ProbeResult(
            target=t.name, service=t.service, started_at=a.wall, mono_start=a.t0, duration_s=total,
            outcome=outcome, error_kind=f.kind, status=f.status, phases=_phases(a.rec, a.t0, a.end, total),
            failed_assertions=f.failed, latency_counted=counted,
            tls_not_after=cert_not_after(a.rec.peer_cert) if a.rec.peer_cert is not None else None,
            error=self.scrub(text, run) if text else "", detail=scrub_detail(f.detail, run.secrets),
            token_requests=tuple(run.tokens),
        )

    def no_token(self, auth: OAuth2Options, exc: TokenUnavailable, run: Run, prefix: str = "") -> ProbeResult:
        t = self.target
        return ProbeResult(
            target=t.name, service=t.service, started_at=self.clock.time(), mono_start=self.clock.monotonic(),
            duration_s=0.0, outcome=auth.failure_outcome, error_kind="auth",
            error=self.scrub(f"{prefix}no OAuth2 token: {exc}", run),
            detail=Detail() if self.capture is not None else None, token_requests=tuple(run.tokens))

    def scrub(self, text: str, run: Run) -> str:
        for secret in run.secrets:
            text = text.replace(secret, MASK)
        return self.redact(text)


def scrub_detail(d: Detail | None, secrets: list[str]) -> Detail | None:
    """A token the server echoes back (in a body, a header) is masked before the journal sees it."""
    if d is None or not secrets:
        return d
    body, headers = d.body, d.headers
    for secret in secrets:
        body = body.replace(secret.encode(), MASK.encode())
        headers = tuple((k, v.replace(secret, MASK)) for k, v in headers)
    return Detail(d.address, headers, body, d.cert_sha256, d.body_bytes)


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

