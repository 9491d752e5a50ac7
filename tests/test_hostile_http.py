"""Hostile clients of the agent's own HTTP endpoint: a scrape flood, slowloris sockets, idle and half-sent
requests, malformed requests. The probes must not notice them, /healthz must keep answering, and the
log must stay one readable, redacted line per event."""
from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from agent.app import Agent
from agent.config import parse_config
from agent.export import server as server_mod
from agent.export.collectors import SloCollector

from .servers import http_server


async def ok(request):
    return web.Response(text="ok")


@contextlib.asynccontextmanager
async def running_agent(tmp_path) -> AsyncIterator[Agent]:
    app = web.Application()
    app.router.add_get("/", ok)
    async with http_server(app) as base:
        cfg = parse_config(f"""
agent: {{listen: "127.0.0.1:0"}}
targets: [{{name: api, service: api, url: "{base}/", interval: 1s, timeout: 2s}}]
""")
        agent = Agent(cfg, state_dir=str(tmp_path / "state"))
        await agent.start()
        try:
            yield agent
        finally:
            await agent.stop()


async def wait_for(predicate, what: str, limit: float = 20.0) -> None:
    """Waits for an event produced by real I/O (not for time to pass), bounded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_concurrent_scrapes_share_one_render(tmp_path, monkeypatch):
    n = 100
    renders: list[int] = []
    gate = threading.Event()
    real = server_mod.generate

    def counted(registry):
        renders.append(1)
        gate.wait(20)  # holds the first render until every scrape has arrived: they all overlap it
        return real(registry)

    monkeypatch.setattr(server_mod, "generate", counted)
    async with running_agent(tmp_path) as agent:
        http = agent.server._runner.server
        seen = http.requests_count
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

            async def scrape() -> tuple[int, str]:
                async with s.get(agent.server.url + "/metrics") as resp:
                    return resp.status, await resp.text()

            tasks = [asyncio.create_task(scrape()) for _ in range(n)]
            try:
                await wait_for(lambda: http.requests_count - seen >= n, f"{n} scrapes at the server")
            finally:
                gate.set()
            answers = await asyncio.gather(*tasks)
    assert [status for status, _ in answers] == [200] * n
    bodies = {text for _, text in answers}
    assert len(renders) == 1, f"{n} concurrent scrapes took {len(renders)} renders"
    assert len(bodies) == 1
    names = {f.name for f in text_string_to_metric_families(bodies.pop())}
    assert {"sla_probes", "sla_agent_loop_lag_seconds", "sla_target_info"} <= names


async def test_a_render_in_a_worker_reads_the_maintenance_mask_on_the_loop_thread():
    """The pipeline's maintenance cache is the loop's alone: a torn update from a render thread could
    mask a probe result."""
    callers: list[int] = []
    registry = CollectorRegistry()
    registry.register(SloCollector(lambda: None, lambda: callers.append(threading.get_ident()) or True))
    text = await asyncio.to_thread(server_mod.generate, registry)
    assert callers == [threading.get_ident()]
    assert b"sla_maintenance_active 1.0" in text


