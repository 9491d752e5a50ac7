"""The HTTP endpoints: /metrics, /healthz, /readyz, /api/v1/status, /api/v1/report, /report."""
from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from ..timeutil import parse_month
from .exposition import generate

log = logging.getLogger("sla_agent.http")
MAX_REQUEST_BYTES = 16 * 1024


@dataclass
class Endpoints:
    registry: CollectorRegistry
    ready: Callable[[], tuple[bool, str]]
    status: Callable[[], dict]
    report_json: Callable[[str], Awaitable[dict]] | None = None
    report_html: Callable[[str], Awaitable[str]] | None = None
    auth: Callable[[web.Request], bool] | None = None  # basic auth check (web.yml)


def build_app(ep: Endpoints) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if request.method not in ("GET", "HEAD"):
            return web.json_response({"error": "only GET is served"}, status=405, headers={"Allow": "GET, HEAD"})
        if request.content_length and request.content_length > 0:
            return web.json_response({"error": "requests carry no body"}, status=413)
        if ep.auth is not None and not ep.auth(request):
            return web.json_response({"error": "authentication required"}, status=401,
                                     headers={"WWW-Authenticate": 'Basic realm="sla-agent"'})
        return await handler(request)

    async def metrics(request: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(None, generate, ep.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        ok, why = ep.ready()
        return web.Response(text=("ready" if ok else f"not ready: {why}") + "\n", status=200 if ok else 503)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(ep.status(), dumps=_dumps)

    def month_of(request: web.Request) -> str:
        month = request.query.get("month", "")
        try:
            parse_month(month)
        except ValueError:
            raise web.HTTPBadRequest(text=json.dumps({"error": "month must be YYYY-MM, e.g. ?month=2026-11"}),
                                     content_type="application/json") from None
        return month

    async def report_json(request: web.Request) -> web.Response:
        if ep.report_json is None:
            raise web.HTTPNotFound()
        return web.json_response(await ep.report_json(month_of(request)), dumps=_dumps)

    async def report_html(request: web.Request) -> web.Response:
        if ep.report_html is None:
            raise web.HTTPNotFound()
        return web.Response(text=await ep.report_html(month_of(request)), content_type="text/html")

    async def index(request: web.Request) -> web.Response:
        return web.Response(text="sla-agent: /metrics /healthz /readyz /api/v1/status /api/v1/report?month=YYYY-MM "
                                 "/report?month=YYYY-MM\n")

    app = web.Application(middlewares=[guard], client_max_size=MAX_REQUEST_BYTES,
                          handler_args={"max_line_size": 8190, "max_field_size": 8190})
    app.router.add_get("/", index)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/report", report_json)
    app.router.add_get("/report", report_html)
    return app


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False)


class Server:
    def __init__(self, app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host or None, self.port, ssl_context=self.ssl_context,
                           reuse_address=True)
        await site.start()
        sock = site._server.sockets[0] if site._server and site._server.sockets else None  # type: ignore[union-attr]
        if sock is not None:
            self.port = sock.getsockname()[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
