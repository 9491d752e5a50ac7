"""A simulated web interface and API, for the demo and the tests (127.0.0.1 only).

Latency is lognormal with a slow tail; some requests fail; now and then a short outage answers 503.
Everything is tunable, and a seed makes a run repeatable.
"""
from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass

from aiohttp import web


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


class Simulator:
    def __init__(self, settings: SimSettings | None = None) -> None:
        self.s = settings or SimSettings()
        self.rng = random.Random(self.s.seed)  # nosec B311 - simulated latency, not security
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
        return failed or web.Response(
            text="<!doctype html><html><head><title>CRM360</title></head><body><h1>CRM360</h1>"
                 "<p>Sign in</p></body></html>", content_type="text/html")

    async def api_health(self, request: web.Request) -> web.Response:
        failed = await self._answer(self.s.api_median_ms)
        return failed or web.json_response({"status": "ok", "service": "crm360-api"})

    async def api_contacts(self, request: web.Request) -> web.Response:
        failed = await self._answer(self.s.api_median_ms * 1.5)
        return failed or web.json_response({"data": [{"id": i, "name": f"contact {i}"} for i in range(20)]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.web_page)
        app.router.add_get("/api/health", self.api_health)
        app.router.add_get("/api/v1/contacts", self.api_contacts)
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
