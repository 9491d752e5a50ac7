"""Health checks of the agent's endpoint while hostile clients hold and flood it: a supervisor, Kubernetes
or a load balancer asks /healthz on a new connection of its own, and must always get its answer."""
from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import aiohttp

from agent.export import server as server_mod

from .test_daemon import wait_for
from .test_hostile_http import running_agent

SCRAPE = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
HOG = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # a whole health request, then kept open
SLOW = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # a head that never ends, though it begins like one
FLOOD_CLIENTS = 64  # connections the flood has open at once (so the kernel's accept queue never overflows)
MAX_FLOOD = 20_000  # connections the flood opens in all, at most
MAX_FLOOD_SECONDS = 120.0


async def flood(port: int) -> None:
    """FLOOD_CLIENTS clients, each opening a new connection as soon as the agent has closed its last one
    (answered 503, or closed it to make room): most send a whole scrape, some a whole health request
    they keep the connection of, some a head that never ends. Says "flooding" once under way; stops
    when its stdin closes, and says "stopped" then (or "ran out" as soon as its bounds are reached)."""
    loop = asyncio.get_running_loop()
    end, opened = loop.time() + MAX_FLOOD_SECONDS, [0]
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    stopped = asyncio.ensure_future(stdin.read())

    async def client(i: int) -> None:
        while not stopped.done() and opened[0] < MAX_FLOOD and loop.time() < end:
            opened[0] += 1
            if opened[0] == 200:
                print("flooding", flush=True)
            kind = HOG if opened[0] % 5 == 0 else SLOW if opened[0] % 7 == 0 else SCRAPE
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            try:
                writer.write(kind)
                await asyncio.wait_for(reader.read(), end - loop.time())  # until the agent closes it
            except (OSError, asyncio.TimeoutError):
                pass
            finally:
                writer.close()

    clients = [asyncio.ensure_future(client(i)) for i in range(FLOOD_CLIENTS)]
    ended = asyncio.ensure_future(asyncio.gather(*clients, return_exceptions=True))
    await asyncio.wait([stopped, ended], return_when=asyncio.FIRST_COMPLETED)
    print("ran out" if ended.done() else "stopped", flush=True)
    await stopped
    for c in clients:  # an idle connection the agent keeps open (IDLE_TIMEOUT) is not waited for
        c.cancel()
    await ended


async def test_every_health_check_is_answered_during_a_connection_flood(tmp_path, monkeypatch):
    """Scrapes hold every place (their render is held back) while new connections keep coming: a health
    check was closed to make room before its request had been read, or found the places kept for
    /healthz taken by scrapes, a 503."""
    gate = threading.Event()
    real = server_mod.generate

    def held(registry):
        gate.wait(60)  # the scrapes in places stay busy until every health check is done
        return real(registry)

    monkeypatch.setattr(server_mod, "generate", held)
    monkeypatch.setattr(server_mod, "MAX_CONNECTIONS", 10, raising=False)
    checks = 100
    answers: list[int | str] = []
    async with running_agent(tmp_path) as agent:
        http, guard = agent.server._runner.server, agent.server.guard
        seen = http.requests_count
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as scrapers:
            async def scrape() -> int:
                async with scrapers.get(agent.server.url + "/metrics") as resp:
                    await resp.read()
                    return resp.status

            busy = [asyncio.create_task(scrape()) for _ in range(10)]
            attacker = None
            try:
                await wait_for(lambda: http.requests_count - seen >= 10, "10 scrapes at the server")
                attacker = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", f"import asyncio, tests.{Path(__file__).stem} as t; "
                                          f"asyncio.run(t.flood({agent.server.port}))",
                    cwd=Path(__file__).parent.parent, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
                assert await asyncio.wait_for(attacker.stdout.readline(), 60) == b"flooding\n"
                # a new connection for each check, as a supervisor's or a load balancer's
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                                 timeout=aiohttp.ClientTimeout(total=30)) as checker:
                    for _ in range(checks):
                        try:
                            async with checker.get(agent.server.url + "/healthz") as resp:
                                text = await resp.text()
                                answers.append(resp.status if text == "ok\n" else f"{resp.status} {text!r}")
                        except (aiohttp.ClientError, OSError) as exc:
                            answers.append(type(exc).__name__)
            finally:
                gate.set()
                if attacker is not None:
                    attacker.stdin.close()
                    flood = await asyncio.wait_for(attacker.stdout.read(), 60)
                    await asyncio.wait_for(attacker.wait(), 60)
            scraped = await asyncio.gather(*busy)
    failed = [a for a in answers if a != 200]
    assert not failed, f"{len(failed)} of {checks} health checks failed during a connection flood: {failed}"
    assert flood == b"stopped\n", "the flood ran out before the last check"
    assert guard.evicted + guard.refused > 0, "the flood never reached the cap: the test tested nothing"
    assert scraped == [200] * 10
