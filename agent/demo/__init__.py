"""A simulated web interface and API, for the demo and the tests (127.0.0.1 only).

The web interface is a single-page app (spa.py); the API has a health endpoint, an OAuth2 token
endpoint (tokens.py) and a resource behind it (a list, then one item by id). Latency is lognormal with
a slow tail; some requests fail; now and then a short outage answers 503. Everything is tunable, a
seed makes a run repeatable, and every request is logged (method, path, status) for tests to count.
"""
from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from ..clock import Clock
from .spa import BUNDLE, PAGE
from .tokens import TokenIssuer

CONTACTS = 20


@dataclass
class SimSettings:
    web_median_ms: float = 60.0
    api_median_ms: float = 90.0
    sigma: float = 0.45  # lognormal shape
    slow_share: float = 0.015  # share of requests in the slow tail
    slow_ms: float = 650.0  # median of the slow tail
    error_rate: float = 0.002  # share answered 500
    outage_every: float = 240.0  # seconds between outages (0: never)
    outage_seconds: float = 20.0
    seed: int | None = None
    token_ttl: float = 300.0  # lifetime of the API's bearer tokens
    require_token: bool = True  # the contacts resource needs a bearer token
    bundle_fails: bool = False  # the web interface's script bundle answers 500


class Simulator:
    def __init__(self, settings: SimSettings | None = None, clock: Clock | None = None) -> None:
        self.s = settings or SimSettings()
        self.rng = random.Random(self.s.seed)  # nosec B311 - simulated latency, not security
        self.issuer = TokenIssuer(ttl=self.s.token_ttl, **({"clock": clock} if clock else {}))
        self.log: deque[tuple[str, str, int]] = deque(maxlen=100_000)  # (method, path, status)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._t0 = 0.0

    def latency(self, median_ms: float) -> float:
        if self.rng.random() < self.s.slow_share:
            median_ms = self.s.slow_ms
        return self.rng.lognormvariate(math.log(median_ms / 1000.0), self.s.sigma)

    def in_outage(self) -> bool:
        if self.s.outage_every <= 0:
            return False
        t = asyncio.get_running_loop().time() - self._t0
        return (t % self.s.outage_every) >= self.s.outage_every - self.s.outage_seconds

    async def _answer(self, median_ms: float) -> web.Response | None:
        await asyncio.sleep(self.latency(median_ms))
        if self.in_outage():
            return web.Response(status=503, text="service unavailable (simulated outage)\n")
        if self.rng.random() < self.s.error_rate:
            return web.Response(status=500, text="internal error (simulated)\n")
        return None

    async def web_page(self, request: web.Request) -> web.Response:
        failed = await self._answer(self.s.web_median_ms)
        return failed or web.Response(text=PAGE, content_type="text/html")

    async def bundle(self, request: web.Request) -> web.Response:
        failed = await self._answer(self.s.web_median_ms / 3)
        if failed is None and self.s.bundle_fails:
            failed = web.Response(status=500, text="bundle build failed (simulated)\n")
        return failed or web.Response(text=BUNDLE, content_type="application/javascript")

    async def api_health(self, request: web.Request) -> web.Response:
        failed = await self._answer(self.s.api_median_ms)
        return failed or web.json_response({"status": "ok", "service": "crm360-api"})

    async def token(self, request: web.Request) -> web.Response:
        failed = await self._answer(self.s.api_median_ms / 3)
        return failed or await self.issuer.handle(request)

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if not self.s.require_token or self.issuer.valid(request):
            return None
        return web.json_response({"error": "invalid_token"}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    async def api_contacts(self, request: web.Request) -> web.Response:
        failed = await self._answer(self.s.api_median_ms * 1.5)
        return failed or self._unauthorized(request) or web.json_response(
            {"data": [{"id": i, "name": f"contact {i}"} for i in range(1, CONTACTS + 1)]})

    async def api_contact(self, request: web.Request) -> web.Response:
        failed = await self._answer(self.s.api_median_ms)
        if failed or (failed := self._unauthorized(request)):
            return failed
        cid = request.match_info["id"]
        if not cid.isdigit() or not 1 <= int(cid) <= CONTACTS:
            return web.json_response({"error": "not_found"}, status=404)
        return web.json_response({"data": {"id": int(cid), "name": f"contact {cid}"}})

    @web.middleware
    async def _logged(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            self.log.append((request.method, request.path, exc.status))
            raise
        self.log.append((request.method, request.path, resp.status))
        return resp

    def count(self, method: str, path_prefix: str, status: int | None = None) -> int:
        """Requests in the log whose path starts with `path_prefix`."""
        return sum(1 for m, p, s in self.log if m == method and p.startswith(path_prefix)
                   and (status is None or s == status))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._logged])
        app.router.add_get("/", self.web_page)
        app.router.add_get("/static/app.js", self.bundle)
        app.router.add_get("/api/health", self.api_health)
        app.router.add_post("/oauth/token", self.token)
        app.router.add_get("/api/v1/contacts", self.api_contacts)
        app.router.add_get("/api/v1/contacts/{id}", self.api_contact)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._t0 = asyncio.get_running_loop().time()
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
