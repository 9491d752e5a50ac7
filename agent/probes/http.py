"""The HTTP probe: aiohttp with TraceConfig phase stamps on the monotonic clock.

By default every probe opens a new connection (a synthetic user arriving), so DNS, TCP connect and
the TLS handshake are measured each time; `keepalive: true` reuses connections instead.
Phases are consecutive intervals of one clock, so dns + connect + tls + ttfb + transfer == total.
"""
from __future__ import annotations

import asyncio
import contextvars
import errno
import json
import socket
import ssl
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohappyeyeballs
import aiohttp
from yarl import URL
from aiohttp.client_exceptions import cert_errors, ssl_errors
from aiohttp.helpers import is_ip_address

from ..clock import Clock
from ..config.model import Target
from ..redact import Redactor
from .base import DOWN, ERROR_KINDS, INCONCLUSIVE, UP, ProbeResult, register

_CURRENT: contextvars.ContextVar["_Recorder | None"] = contextvars.ContextVar("sla_probe_recorder", default=None)
_READ_CHUNK = 64 * 1024
_now = time.monotonic  # every stamp on one clock with sub-microsecond resolution (uvloop's loop.time() has 1 ms)


@dataclass
class _Recorder:
    """Phase stamps of one probe. `open_phase` is the phase under way (for a probe cut by its timeout)."""

    dns: float = 0.0
    connect: float = 0.0
    tls: float = 0.0
    open_phase: str | None = None
    open_start: float = 0.0
    connected: bool = False
    peer_cert: bytes | None = None
    headers_at: float | None = None

    def begin(self, phase: str) -> None:
        self.open_phase, self.open_start = phase, _now()

    def end(self) -> None:
        if self.open_phase is not None:
            setattr(self, self.open_phase, getattr(self, self.open_phase) + _now() - self.open_start)
            self.open_phase = None


async def _on_conn_reuse(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    rec = ctx.trace_request_ctx
    if rec is not None:
        rec.connected = True


def _reuse_trace() -> aiohttp.TraceConfig:
    tc = aiohttp.TraceConfig()
    tc.on_connection_reuseconn.append(_on_conn_reuse)
    return tc


async def _connect_one(loop: asyncio.AbstractEventLoop, addr_info: Any) -> socket.socket:
    family, type_, proto, _, address = addr_info
    sock = socket.socket(family, type_, proto)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


class _TracedConnector(aiohttp.TCPConnector):
    """Stamps DNS, TCP connect and the TLS handshake as three phases.

    aiohttp's TraceConfig reports connection creation as one step (DNS + TCP + TLS) and costs ~0.06 ms
    of CPU per probe (8 % of a probe, bench/probe_rate.py) even with empty hooks, so the stamps are taken
    here instead: the socket is connected as aiohttp does it (aiohappyeyeballs), then the loop runs the
    TLS handshake on it. aiohttp is pinned (~=3.14) and tests cover every phase."""

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> Any:
        rec = _CURRENT.get()
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
        rec = _CURRENT.get()
        if rec is None:
            return await super()._wrap_create_connection(*args, addr_infos=addr_infos, req=req, timeout=timeout,
                                                         client_error=client_error, **kwargs)
        loop = self._loop
        rec.begin("connect")
        try:
            if len(addr_infos) == 1 and not self._local_addr_infos:
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


def _ssl_context(target: Target) -> ssl.SSLContext | bool:
    if not target.url.startswith("https:"):
        return False
    ctx = ssl.create_default_context(cafile=target.tls.ca_file)
    if not target.tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if target.tls.cert_file:
        ctx.load_cert_chain(target.tls.cert_file, target.tls.key_file)
    return ctx


_EXPIRY_CACHE: dict[bytes, float | None] = {}


def _cert_not_after(der: bytes | None) -> float | None:
    if not der:
        return None
    if der in _EXPIRY_CACHE:
        return _EXPIRY_CACHE[der]
    try:
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        value: float | None = cert.not_valid_after_utc.timestamp()
    except Exception:  # noqa: BLE001 - an unparsable certificate just has no expiry figure
        value = None
    if len(_EXPIRY_CACHE) > 1024:
        _EXPIRY_CACHE.clear()
    _EXPIRY_CACHE[der] = value
    return value


def json_lookup(doc: Any, path: str) -> Any:
    """'data.items[0].status' -> value; raises LookupError when absent."""
    cur = doc
    for part in path.split("."):
        name, _, rest = part.partition("[")
        if name:
            if not isinstance(cur, dict) or name not in cur:
                raise LookupError(part)
            cur = cur[name]
        if rest:
            for idx in ("[" + rest).strip("[]").split("]["):
                i = int(idx)
                if not isinstance(cur, list) or not -len(cur) <= i < len(cur):
                    raise LookupError(part)
                cur = cur[i]
    return cur


def _classify(exc: BaseException) -> tuple[str, str]:
    """Maps the aiohttp/OS error tree to one error_kind."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns", text
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError)):
        return "tls", text
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too_many_redirects", text
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, aiohttp.RedirectClientError)):
        return "protocol", text
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_err = exc.os_error
        code = getattr(os_err, "errno", None)
        if code == errno.ECONNREFUSED:
            return "connect_refused", text
        if code in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.EADDRNOTAVAIL):
            return "agent_error", text
        if isinstance(os_err, (ssl.SSLError, ssl.CertificateError)):
            return "tls", text
        if isinstance(os_err, ConnectionResetError) or code == errno.ECONNRESET:
            return ("tls" if "ssl" in text.lower() else "reset"), text
        return "connect_error", text
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "reset", text
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "reset", text
    if isinstance(exc, aiohttp.ClientResponseError):
        return "protocol", text
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "reset", text
    if isinstance(exc, aiohttp.ClientOSError):
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            return "reset", text
        return "connect_error", text
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "reset", text
    return "agent_error", text


@register("http")
class HttpProbe:
    def __init__(self, target: Target, *, clock: Clock, per_host_concurrency: int = 100,
                 redactor: Redactor | None = None) -> None:
        self.target = target
        self.clock = clock
        self.redact = redactor or Redactor()
        self._ssl = _ssl_context(target)
        self._session: aiohttp.ClientSession | None = None
        self._per_host = per_host_concurrency
        self._body = target.body.encode() if target.body is not None else None
        self._url = URL(target.url)  # parsed once, not per probe

    def _make_session(self) -> aiohttp.ClientSession:
        t = self.target
        family = {"any": 0, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}[t.ip_family]
        connector = _TracedConnector(
            force_close=not t.keepalive, use_dns_cache=t.keepalive, limit=0, limit_per_host=self._per_host,
            family=family, ssl=self._ssl, enable_cleanup_closed=False,
        )
        return aiohttp.ClientSession(
            connector=connector, trace_configs=[_reuse_trace()] if t.keepalive else None,
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None, sock_read=None),
            headers=dict(t.headers), cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True,
            skip_auto_headers=("User-Agent",) if any(k.lower() == "user-agent" for k, _ in t.headers) else (),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self) -> ProbeResult:
        t = self.target
        if self._session is None:
            self._session = self._make_session()
        rec = _Recorder()
        token = _CURRENT.set(rec)
        wall = self.clock.time()
        t0 = _now()
        status: int | None = None
        kind = ""
        error = ""
        failed: list[str] = []
        not_after: float | None = None
        end: float | None = None
        try:
            async with asyncio.timeout(t.timeout):
                async with self._session.request(
                    t.method, self._url, data=self._body, allow_redirects=t.redirects == "follow",
                    max_redirects=t.max_redirects, trace_request_ctx=rec, server_hostname=t.tls.server_name,
                ) as resp:
                    rec.headers_at = _now()
                    status = resp.status
                    body, too_large = await _read_limited(resp, t.max_body_bytes)
                    end = _now()
                    if too_large:
                        kind, error = "body_too_large", f"body larger than max_body_bytes={t.max_body_bytes}"
                    elif not t.status_ok(status):
                        kind, error = "http_status", f"HTTP {status} not in {list(t.expect_status) or '2xx'}"
                    else:
                        failed = _assertions(t, body)
                        if failed:
                            kind, error = "assertion", "; ".join(failed)
        except TimeoutError:
            end = _now()
            if rec.open_phase == "tls":
                kind, error = "tls", f"TLS handshake not finished within {t.timeout:g}s"
            elif rec.open_phase == "dns":
                kind, error = "connect_timeout", f"DNS lookup not answered within {t.timeout:g}s"
            elif not rec.connected:
                kind, error = "connect_timeout", f"no connection within {t.timeout:g}s"
            else:
                kind, error = "timeout", f"no complete response within {t.timeout:g}s"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed result
            end = _now()
            kind, error = _classify(exc)
        finally:
            _CURRENT.reset(token)
            rec.end()  # a phase cut short by the timeout or an error
        if rec.peer_cert is not None:
            not_after = _cert_not_after(rec.peer_cert)
        total = max(0.0, end - t0)
        if kind == "timeout":
            total = max(total, t.timeout)
        phases = _phases(rec, t0, end, total)
        outcome = UP if not kind else ERROR_KINDS.get(kind, DOWN)
        counted = status is not None or kind == "timeout"
        return ProbeResult(
            target=t.name, service=t.service, started_at=wall, mono_start=t0, duration_s=total,
            outcome=outcome, error_kind=kind, status=status, phases=phases, failed_assertions=tuple(failed),
            latency_counted=counted and outcome != INCONCLUSIVE, tls_not_after=not_after,
            error=self.redact(error) if error else "",
        )


def _phases(rec: _Recorder, t0: float, end: float, total: float) -> tuple[float, float, float, float, float]:
    """Consecutive intervals of one clock: dns + connect + tls + ttfb + transfer == total."""
    transfer = max(0.0, end - rec.headers_at) if rec.headers_at is not None else 0.0
    ttfb = max(0.0, total - rec.dns - rec.connect - rec.tls - transfer)
    return (rec.dns, rec.connect, rec.tls, ttfb, transfer)


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await resp.content.read(min(_READ_CHUNK, limit + 1 - size) if limit + 1 - size > 0 else 1)
        if not chunk:
            return b"".join(chunks), False
        size += len(chunk)
        if size > limit:
            resp.close()  # stop the transfer: the rest of the body is never read
            return b"".join(chunks), True
        chunks.append(chunk)


def _assertions(t: Target, body: bytes) -> list[str]:
    if not (t.body_regex or t.body_not_regex or t.json):
        return []
    failed = []
    text = body.decode("utf-8", errors="replace")
    for pat in t.body_regex:
        if not pat.search(text):
            failed.append(f"body does not match /{pat.pattern}/")
    for pat in t.body_not_regex:
        if pat.search(text):
            failed.append(f"body matches /{pat.pattern}/")
    if t.json:
        try:
            doc = json.loads(text)
        except ValueError:
            return failed + ["body is not JSON"]
        for a in t.json:
            try:
                value = json_lookup(doc, a.path)
            except (LookupError, ValueError):
                failed.append(f"json {a.path} is absent")
                continue
            if value != a.equals:
                failed.append(f"json {a.path} is {value!r}, expected {a.equals!r}")
    return failed
