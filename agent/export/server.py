"""The HTTP endpoints: /metrics, /healthz, /readyz, /api/v1/status, /api/v1/report, /report, /reports."""
from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import logging
import math
import re
import ssl
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from ..report.archive import Archive
from ..report.formats.common import FAVICON
from ..store.extract import JOURNAL_PARTS, Cancel
from ..timeutil import parse_month
from .basicauth import BasicAuth, TooManyAttempts
from .connections import Guard, GuardedSite, connection_cap, track
from .exposition import generate
from .extracts import Extracts
from .reports import add_routes

log = logging.getLogger("sla_agent.http")
MAX_REQUEST_BYTES = 16 * 1024
MAX_JOURNAL = 10_000
MAX_LEDGER_SPAN = 400 * 86400
ARTIFACT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "har": "application/json"}
# What a client of the endpoint may hold (connections.py; read when a Server is made, so a test can set
# them small): connections at once (at most a quarter of the process's descriptors), seconds to send a
# request head, to send a body nobody reads (every request here is bodiless), and to stay idle between
# requests. Prometheus sends its whole request at once and scrapes every 15-60 s: a closed idle
# connection costs it one reconnect.
MAX_CONNECTIONS = 256
SPARE_CONNECTIONS = 16  # beyond MAX_CONNECTIONS, for /healthz and /readyz alone
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0
BACKLOG = 512
ANSWERS_PER_TURN = 8
REUSE_FACTOR = 10.0
REUSE_MAX = 1.0
EXTRACTS = web.AppKey("extracts", Extracts)  # how the ledger's extracts fare (tests read it)


@dataclass
class Endpoints:
    registry: CollectorRegistry
    ready: Callable[[], tuple[bool, str]]
    status: Callable[[], dict]
    report_json: Callable[[str], Awaitable[dict]] | None = None
    report_html: Callable[[str], Awaitable[str]] | None = None
    journal: Callable[[str, str, float, float, int], Awaitable[list]] | None = None  # target, service, from, to, limit
    artifact: Callable[[str], Awaitable[tuple[str, bytes] | None]] | None = None  # sha256 -> (name, content)
    # from, to, journal, folder, cancel -> the gzip'd extract in folder, its headers; NoSpace, Cancelled
    ledger: Callable[[float, float, str, Path, Cancel], Awaitable[tuple[Path, dict[str, str]]]] | None = None
    auth: BasicAuth | None = None  # web.yml's basic_auth_users
    page: Callable[[], Awaitable[str]] | None = None  # the status page at /
    # ("month", "2026-11") or ("period", "2026-11-23") -> its bounds in the contract's calendar; ValueError
    span: Callable[[str, str], tuple[float, float]] | None = None
    checkpoint: Callable[[], Awaitable[tuple[str | None, str]]] | None = None  # the chain's, signed; or why not
    close: Callable[[], None] | None = None  # lets go of the threads the work above used
    reports: Archive | None = None  # the closed months, served at /reports


class Renderer:
    """The /metrics text, one rendering at a time, shared by every scrape that arrives while it runs or
    shortly after, plain and gzip'd.

    A render is mostly a join of the text kept prebuilt (exposition.py) and a gzip; a thousand scrapes at
    once each rendering on their own still kept the worker threads busy and the event loop waiting for
    the GIL long enough to make half the probes of that moment inconclusive. A scrape that joins a render in flight, or takes one finished
    less than REUSE_FACTOR render times ago (REUSE_MAX at most), reads values that old: Prometheus stamps
    samples with its own scrape time and cannot tell that from network delay. Renders thus take a tenth
    of one worker thread at most, whatever the scrape rate."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.renders = 0
        self._flight: asyncio.Future[tuple[bytes, bytes]] | None = None
        self._last: tuple[bytes, bytes] | None = None
        self._fresh_until = 0.0
        # the scrapes waiting for their answer's turn, first come first: each with the render it waits for
        self._turns: deque[tuple[asyncio.Future[None], asyncio.Future[tuple[bytes, bytes]] | None]] = deque()
        self._releasing = False

    async def __call__(self) -> tuple[bytes, bytes]:
        """(text, gzip'd text)."""
        loop = asyncio.get_running_loop()
        if self._flight is None and (self._last is None or loop.time() >= self._fresh_until):
            self._flight = asyncio.ensure_future(self._render())
            self._flight.add_done_callback(self._rendered)
        flight = self._flight
        # not awaiting the render itself: a scraper that hangs up cancels its turn, never the render the
        # others wait for, and the render's end wakes its scrapes a few a turn, not hundreds in one
        turn = loop.create_future()
        self._turns.append((turn, flight))
        self._release()
        await turn
        return flight.result() if flight is not None else self._last  # type: ignore[return-value]

    async def _render(self) -> tuple[bytes, bytes]:
        self.renders += 1
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            # in a worker thread: the loop keeps running probes meanwhile (the collectors read values
            # under their locks or hand work back to the loop, see collectors.py)
            self._last = await asyncio.to_thread(_render, self.registry)
        finally:
            self._flight = None
        self._fresh_until = loop.time() + min(REUSE_MAX, REUSE_FACTOR * (loop.time() - start))
        return self._last

    def _rendered(self, flight: asyncio.Future) -> None:
        if not flight.cancelled():
            flight.exception()  # its scrapes get it; seen, whether any is left to
        self._release()

    def _release(self) -> None:
        if not self._releasing and self._turns:
            self._releasing = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        """The answers go out ANSWERS_PER_TURN a loop turn, in order, each once its render is done.
        Hundreds of scrapes woken by the same render, each writing half a megabyte in the same turn,
        held the loop for tens of milliseconds."""
        self._releasing = False
        released = 0
        while self._turns and released < ANSWERS_PER_TURN:
            turn, flight = self._turns[0]
            if flight is not None and not flight.done():
                return  # its render's end releases it (_rendered)
            self._turns.popleft()
            if not turn.done():  # a scrape whose client left is passed over
                turn.set_result(None)
                released += 1
        self._release()


def _render(registry: CollectorRegistry) -> tuple[bytes, bytes]:
    # gzip'd once here rather than per scrape by aiohttp; zlib lets go of the GIL while it compresses
    text = generate(registry)
    return text, gzip.compress(text, compresslevel=1, mtime=0)


def _accepts_gzip(header: str) -> bool:
    for coding in header.lower().split(","):
        name, _, params = coding.partition(";")
        if name.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class _Handlers:
    """The endpoints' handlers over what the daemon hands over (Endpoints)."""

    def __init__(self, ep: Endpoints) -> None:
        self.ep = ep
        self.render = Renderer(ep.registry)
        self.extracts = Extracts()

    @web.middleware
    async def guard(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if request.method not in ("GET", "HEAD"):
            return web.json_response({"error": "only GET is served"}, status=405, headers={"Allow": "GET, HEAD"})
        if request.content_length and request.content_length > 0:
            return web.json_response({"error": "requests carry no body"}, status=413)
        if self.ep.auth is not None:
            try:
                passed = await self.ep.auth.check(request.headers.get("Authorization", ""))
            except TooManyAttempts:
                return web.json_response({"error": "too many authentication attempts at once: try again"},
                                         status=429, headers={"Retry-After": "1"})
            if not passed:
                return web.json_response({"error": "authentication required"}, status=401,
                                         headers={"WWW-Authenticate": 'Basic realm="sla-agent"'})
        return await handler(request)

    async def cleanup(self, app: web.Application) -> None:
        if self.ep.auth is not None:
            self.ep.auth.close()
        if self.ep.close is not None:
            self.ep.close()

    async def metrics(self, request: web.Request) -> web.Response:
        text, gzipped = await self.render()
        headers = {"Content-Type": CONTENT_TYPE_LATEST, "Vary": "Accept-Encoding"}
        if _accepts_gzip(request.headers.get("Accept-Encoding", "")):  # Prometheus asks; a tenth of the bytes
            return web.Response(body=gzipped, headers={**headers, "Content-Encoding": "gzip"})
        return web.Response(body=text, headers=headers)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def favicon(self, request: web.Request) -> web.Response:
        """For a client that asks for it whatever the page says (the pages carry the icon inline)."""
        return web.Response(body=FAVICON.encode(), content_type="image/svg+xml",
                            headers={"Cache-Control": "max-age=86400"})

    async def readyz(self, request: web.Request) -> web.Response:
        ok, why = self.ep.ready()
        return web.Response(text=("ready" if ok else f"not ready: {why}") + "\n", status=200 if ok else 503)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.ep.status(), dumps=_dumps)

    async def report_json(self, request: web.Request) -> web.Response:
        if self.ep.report_json is None:
            raise web.HTTPNotFound()
        return web.json_response(await self.ep.report_json(_month_of(request)), dumps=_dumps)

    async def report_html(self, request: web.Request) -> web.Response:
        if self.ep.report_html is None:
            raise web.HTTPNotFound()
        return web.Response(text=await self.ep.report_html(_month_of(request)), content_type="text/html")

    async def journal(self, request: web.Request) -> web.Response:
        if self.ep.journal is None:
            raise web.HTTPNotFound()
        q = request.query
        kind = next((k for k in ("month", "period") if k in q), None)
        if kind is not None and self.ep.span is not None:
            try:
                start, end = self.ep.span(kind, q[kind])
            except ValueError as exc:
                raise _bad(f"{kind}: {exc} (e.g. ?month=2026-11, or ?period=2026-11-23 for the 7-day period "
                           f"that day begins)") from None
            q = q.copy()
            q.update({"from": str(start), "to": str(end)})
        try:
            start, end = instant(q.get("from", "0")), instant(q.get("to", "9999999999"))
            limit = int(q.get("limit", "1000"))
        except ValueError as exc:
            raise _bad(f"from and to must be ISO 8601 date-times or epoch seconds; limit a number ({exc})") from None
        if end <= start or not 1 <= limit <= MAX_JOURNAL:
            raise _bad(f"from must be before to, and limit between 1 and {MAX_JOURNAL}")
        records = await self.ep.journal(q.get("target", ""), q.get("service", ""), start, end, limit)
        return web.json_response({"from": start, "to": end, "records": records}, dumps=_dumps)

    async def artifact(self, request: web.Request) -> web.Response:
        """A screenshot or HAR of a failed browser check, by the sha256 its journal record names."""
        sha = request.query.get("sha256", "")
        if self.ep.artifact is None:
            raise web.HTTPNotFound()
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise _bad("sha256 must be the 64 hex digits a journal record's artifacts list")
        found = await self.ep.artifact(sha)
        if found is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "no journal record keeps this file"}),
                                   content_type="application/json")
        name, data = found
        kind = ARTIFACT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
        return web.Response(body=data, content_type=kind,
                            headers={"Content-Disposition": f'inline; filename="{sha[:12]}-{name}"'})

    async def ledger(self, request: web.Request) -> web.Response:
        """The ledger of [from, to) as a gzip'd SQLite extract (docs/locations.md), for a report over
        several locations; streamed from a temporary file, a few at a time (extracts.py)."""
        if self.ep.ledger is None:
            raise web.HTTPNotFound()
        q = request.query
        if "from" not in q or "to" not in q:
            raise _bad("from and to are required: ISO 8601 date-times (2026-11-01T00:00:00+01:00) or epoch seconds")
        try:
            start, end = instant(q["from"]), instant(q["to"])
        except ValueError as exc:
            raise _bad(f"from and to must be ISO 8601 date-times with their offset, or epoch seconds ({exc})") from None
        if end <= start:
            raise _bad("from must be before to")
        if end - start > MAX_LEDGER_SPAN:
            raise _bad(f"a span of at most {MAX_LEDGER_SPAN // 86400} days is served at once")
        journal = q.get("journal", "all")
        if journal not in JOURNAL_PARTS:
            raise _bad(f"journal must be one of {', '.join(JOURNAL_PARTS)}, got {journal!r}")
        ledger = self.ep.ledger
        return await self.extracts.serve(request, lambda folder, cancel: ledger(start, end, journal, folder, cancel))

    async def checkpoint(self, request: web.Request) -> web.Response:
        """The hash chain's signed checkpoint (report/checkpoint.py), as witnesses get it."""
        if self.ep.checkpoint is None:
            raise web.HTTPNotFound()
        text, why = await self.ep.checkpoint()
        if text is None:
            return web.json_response({"error": f"no checkpoint: {why}"}, status=503)
        return web.Response(text=text, content_type="text/plain")

    async def index(self, request: web.Request) -> web.Response:
        if self.ep.page is not None and "text/plain" not in request.headers.get("Accept", ""):
            text = (await self.ep.page()).encode()
            if not _accepts_gzip(request.headers.get("Accept-Encoding", "")):
                return web.Response(body=text, content_type="text/html", charset="utf-8")
            # its strips and charts repeat their markup: a tenth of the bytes to a phone, compressed off the loop
            body = await asyncio.to_thread(gzip.compress, text, compresslevel=6, mtime=0)
            return web.Response(body=body, content_type="text/html", charset="utf-8",
                                headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return web.Response(text="sla-agent: /metrics /healthz /readyz /api/v1/status /api/v1/report?month=YYYY-MM "
                                 "/report?month=YYYY-MM /api/v1/journal?from=&to= /api/v1/ledger?from=&to= "
                                 "/api/v1/checkpoint /reports\n")


def build_app(ep: Endpoints) -> web.Application:
    h = _Handlers(ep)
    app = web.Application(middlewares=[track, h.guard], client_max_size=MAX_REQUEST_BYTES,
                          handler_args={"max_line_size": 8190, "max_field_size": 8190})
    app.on_cleanup.append(h.cleanup)
    app[EXTRACTS] = h.extracts
    for path, handler in (("/", h.index), ("/metrics", h.metrics), ("/healthz", h.healthz), ("/readyz", h.readyz),
                          ("/favicon.ico", h.favicon),
                          ("/api/v1/status", h.status), ("/api/v1/report", h.report_json), ("/report", h.report_html),
                          ("/api/v1/journal", h.journal), ("/api/v1/journal/artifact", h.artifact),
                          ("/api/v1/ledger", h.ledger), ("/api/v1/checkpoint", h.checkpoint)):
        app.router.add_get(path, handler)
    if ep.reports is not None:
        add_routes(app, ep.reports)
    return app


def _month_of(request: web.Request) -> str:
    """The month asked for; "" (the current month) when none is."""
    month = request.query.get("month", "")
    if not month:
        return ""
    try:
        parse_month(month)
    except ValueError as exc:
        raise _bad(f"month: {exc} (e.g. ?month=2026-11)") from None
    return month


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def instant(text: str) -> float:
    """Epoch seconds, or an ISO 8601 date-time with its offset. Raises ValueError."""
    try:
        epoch = float(text)
    except ValueError:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if value.tzinfo is None:
            raise ValueError("a date-time needs its offset") from None
        epoch = value.timestamp()
    if not math.isfinite(epoch) or not 0 <= epoch < 1e11:
        raise ValueError(f"{text!r} is before 1970 or after the year 5137")
    return epoch


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False)


class Server:
    def __init__(self, app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.guard = Guard(connection_cap(MAX_CONNECTIONS), HEADER_TIMEOUT, SPARE_CONNECTIONS, ("/healthz", "/readyz"))
        self.body_timeout = BODY_TIMEOUT
        self.idle_timeout = IDLE_TIMEOUT
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     keepalive_timeout=self.idle_timeout, lingering_time=self.body_timeout)
        await self._runner.setup()
        self.guard.factory = self._runner.server
        site = GuardedSite(self._runner, self.host or None, self.port, self.guard, self.ssl_context, BACKLOG)
        await site.start()
        self.port = site.port

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
