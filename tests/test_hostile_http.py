"""Hostile clients of the agent's own HTTP endpoint: a scrape flood, slowloris sockets, idle and half-sent
requests, malformed requests. The probes must not notice them, /healthz must keep answering, and the
log must stay one readable, redacted line per event."""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import logging
import socket
import threading
import time
from types import SimpleNamespace
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent import logs
from agent.app import Agent
from agent.config import parse_config
from agent.export import connections, exposition
from agent.export import server as server_mod
from agent.export.collectors import SloCollector
from agent.redact import Redactor

from .servers import http_server
from .test_daemon import wait_for

SECRET = "hunter2-s3cr3t-token"


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




async def closed_by_server(reader: asyncio.StreamReader, limit: float) -> bool:
    """Reads until the server closes the connection; False if it is still open after `limit` seconds."""
    try:
        await asyncio.wait_for(reader.read(), limit)
    except asyncio.TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


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


async def test_scrapes_shortly_after_a_render_reuse_it_and_gzip_is_served(tmp_path, monkeypatch):
    renders: list[int] = []
    real = server_mod.generate

    def counted(registry):
        renders.append(1)
        return real(registry)

    monkeypatch.setattr(server_mod, "generate", counted)
    monkeypatch.setattr(server_mod, "REUSE_FACTOR", 1e6, raising=False)  # "shortly" is then a whole minute
    monkeypatch.setattr(server_mod, "REUSE_MAX", 60.0, raising=False)
    async with running_agent(tmp_path) as agent:
        async with aiohttp.ClientSession(auto_decompress=False) as s:
            async with s.get(agent.server.url + "/metrics", headers={"Accept-Encoding": "gzip"}) as resp:
                zipped, encoding = await resp.read(), resp.headers.get("Content-Encoding")
            async with s.get(agent.server.url + "/metrics", headers={"Accept-Encoding": "identity"}) as resp:
                plain, plain_encoding = await resp.read(), resp.headers.get("Content-Encoding")
    assert len(renders) == 1, "a scrape right after another rendered again"
    assert (encoding, plain_encoding) == ("gzip", None)
    assert gzip.decompress(zipped) == plain and len(zipped) * 4 < len(plain)


async def test_the_answers_of_one_render_go_out_a_few_per_loop_turn():
    """Hundreds of scrapes woken by one render, each writing its answer in the same loop turn, held the
    loop for tens of milliseconds."""
    registry = CollectorRegistry()
    registry.register(SloCollector(lambda: None, lambda: False))
    render = server_mod.Renderer(registry)
    turn, done_at = [0], []

    def tick() -> None:
        turn[0] += 1
        if len(done_at) < 100:
            asyncio.get_running_loop().call_soon(tick)

    async def scrape() -> None:
        await render()
        done_at.append(turn[0])

    asyncio.get_running_loop().call_soon(tick)
    await asyncio.gather(*(scrape() for _ in range(100)))
    per_turn = max(done_at.count(t) for t in set(done_at))
    assert per_turn <= getattr(server_mod, "ANSWERS_PER_TURN", 8), f"{per_turn} answers in one loop turn"


async def test_a_render_in_a_worker_lets_go_of_the_gil_every_millisecond(monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(exposition, "time", SimpleNamespace(perf_counter=time.perf_counter, sleep=pauses.append),
                        raising=False)
    monkeypatch.setattr(exposition, "PAUSE_EVERY", 0.0, raising=False)  # at every chance
    registry = CollectorRegistry()
    counter = Counter("c", "many series", ["n"], registry=registry)
    for i in range(500):
        counter.labels(str(i)).inc()
    in_worker = await asyncio.to_thread(server_mod.generate, registry)
    assert len(pauses) >= 500 // 64
    pauses.clear()
    assert server_mod.generate(registry) == in_worker and not pauses  # on the loop's thread: nobody to let in
    assert in_worker == generate_latest(registry)


async def test_a_render_in_a_worker_reads_the_maintenance_mask_on_the_loop_thread():
    """The pipeline's maintenance cache is the loop's alone: a torn update from a render thread could
    mask a probe result."""
    callers: list[int] = []
    registry = CollectorRegistry()
    registry.register(SloCollector(lambda: None, lambda: callers.append(threading.get_ident()) or True))
    text = await asyncio.to_thread(server_mod.generate, registry)
    assert callers == [threading.get_ident()]
    assert b"sla_maintenance_active 1.0" in text


async def slowloris(port: int, closed: list[int], limit: float) -> None:
    """Sends a request head a byte at a time and never finishes it; notes when the server hangs up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Padding: " + b"a" * 400
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    try:
        for i in range(len(head)):
            writer.write(head[i:i + 1])
            # waits for the server to answer or hang up, at most 0.1 s: then the next byte
            with contextlib.suppress(asyncio.TimeoutError):
                if not await asyncio.wait_for(reader.read(1), 0.1):
                    closed.append(1)
                    return
            if loop.time() > deadline:
                return
    except ConnectionError:
        closed.append(1)
    finally:
        writer.close()


async def test_slowloris_sockets_are_closed_and_healthz_answers(tmp_path, monkeypatch):
    # raising=False: the same test runs against a server without these settings (and fails there)
    monkeypatch.setattr(server_mod, "HEADER_TIMEOUT", 0.5, raising=False)
    monkeypatch.setattr(server_mod, "MAX_CONNECTIONS", 20, raising=False)
    n = 50
    async with running_agent(tmp_path) as agent:
        closed: list[int] = []
        attack = [asyncio.create_task(slowloris(agent.server.port, closed, limit=5.0)) for _ in range(n)]
        try:
            async with aiohttp.ClientSession() as s:
                for _ in range(5):  # while the sockets hold their connections
                    async with s.get(agent.server.url + "/healthz") as resp:
                        assert resp.status == 200
                        assert await resp.text() == "ok\n"
                live = len(agent.server._runner.server.connections)
            await asyncio.gather(*attack)
        finally:
            for t in attack:
                t.cancel()
    assert (len(closed), live <= 20) == (n, True), \
        f"{n - len(closed)} of {n} slowloris sockets still open after 5 s; {live} connections held at once"


async def test_a_thousand_connects_at_once_are_set_up_a_few_per_loop_turn(tmp_path):
    """asyncio's server sets up everything the kernel has queued in one loop turn: a connect flood held
    the loop over 100 ms."""
    n = 200
    async with running_agent(tmp_path) as agent:
        guard = agent.server.guard
        turn, admitted_at = [0], []
        admit = guard.admit

        def counted(conn):
            admitted_at.append(turn[0])
            return admit(conn)

        guard.admit = counted

        def tick() -> None:
            turn[0] += 1
            if len(admitted_at) < n:
                asyncio.get_running_loop().call_soon(tick)

        socks = []
        try:
            for _ in range(n):  # blocking connects: all queued in the kernel before the loop runs again
                socks.append(socket.create_connection(("127.0.0.1", agent.server.port), timeout=5))
            asyncio.get_running_loop().call_soon(tick)
            await wait_for(lambda: len(admitted_at) >= n, f"{n} connections set up")
        finally:
            for s in socks:
                s.close()
    per_turn = max(admitted_at.count(t) for t in set(admitted_at))
    assert per_turn <= getattr(connections, "ACCEPT_BATCH", 16), f"{per_turn} connections set up in one loop turn"


async def test_healthz_answers_when_every_connection_is_busy_scraping(tmp_path, monkeypatch):
    gate = threading.Event()
    real = server_mod.generate

    def held(registry):
        gate.wait(20)  # every scrape connection stays busy until the test has asked /healthz
        return real(registry)

    monkeypatch.setattr(server_mod, "generate", held)
    monkeypatch.setattr(server_mod, "MAX_CONNECTIONS", 10, raising=False)
    async with running_agent(tmp_path) as agent:
        http = agent.server._runner.server
        seen = http.requests_count
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

            async def get(path: str) -> int:
                async with s.get(agent.server.url + path) as resp:
                    await resp.read()
                    return resp.status

            scrapes = [asyncio.create_task(get("/metrics")) for _ in range(10)]
            try:
                await wait_for(lambda: http.requests_count - seen >= 10, "10 scrapes at the server")
                health = [await get("/healthz") for _ in range(3)]
                extra = await get("/metrics")
            finally:
                gate.set()
            assert await asyncio.gather(*scrapes) == [200] * 10
    assert health == [200] * 3, "/healthz went unanswered while scrapes held every connection"
    assert extra == 503


async def test_idle_keepalive_and_unfinished_body_are_closed(tmp_path, monkeypatch):
    monkeypatch.setattr(server_mod, "IDLE_TIMEOUT", 0.5, raising=False)
    monkeypatch.setattr(server_mod, "BODY_TIMEOUT", 0.5, raising=False)
    async with running_agent(tmp_path) as agent:
        port = agent.server.port
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
        idle_w.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await asyncio.wait_for(idle_r.readuntil(b"ok\n"), 5)).startswith(b"HTTP/1.1 200")
        body_r, body_w = await asyncio.open_connection("127.0.0.1", port)
        body_w.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
        assert (await asyncio.wait_for(body_r.readuntil(b"\r\n"), 5)).startswith(b"HTTP/1.1 413")
        idle_closed, body_closed = await asyncio.gather(closed_by_server(idle_r, 5), closed_by_server(body_r, 5))
        idle_w.close()
        body_w.close()
    assert (idle_closed, body_closed) == (True, True), \
        "still open after 5 s: " + ", ".join(what for what, closed in (("an idle keep-alive connection", idle_closed),
                                                                     ("a request whose body never came", body_closed))
                                             if not closed)


MALFORMED = (
    f"GET /?token={SECRET} HTTP/1.1 junk after the version\r\n\r\n".encode(),  # bad request line
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n",  # oversize header
    b"GET / HTTP/1.1\r\nHo\x00st: x\r\n\r\n",  # NUL byte in a header name
    b"GET /\x00 HTTP/1.1\r\n\r\n",  # NUL byte in the path
)


async def test_malformed_requests_log_one_redacted_line_each_rate_limited(tmp_path):
    stream = io.StringIO()
    # as they were: a later test's records must not go to this test's captured (then closed) stderr
    saved = {name: (lg.handlers[:], lg.level, lg.propagate)
             for name, lg in ((n, logging.getLogger(n)) for n in ("sla_agent", "aiohttp", "asyncio"))}
    logs.setup("info", Redactor([SECRET]), stream=stream)
    # what reaches the root logger went past the agent's formatter (caplog is no witness: recent pytest
    # attaches its handlers to non-propagating loggers too)
    escaped: list[logging.LogRecord] = []
    witness = logging.Handler(logging.DEBUG)
    witness.emit = escaped.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(witness)
    try:
        async with running_agent(tmp_path) as agent:
            for i in range(40):
                reader, writer = await asyncio.open_connection("127.0.0.1", agent.server.port)
                writer.write(MALFORMED[i % len(MALFORMED)])
                answer = await asyncio.wait_for(reader.read(), 5)
                writer.close()
                assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    finally:
        logging.getLogger().removeHandler(witness)
        for name, (handlers, level, propagate) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:], lg.propagate = handlers, propagate
            lg.setLevel(level)
    out = stream.getvalue()
    escaped = [r for r in escaped if r.name.startswith("aiohttp")]
    assert not escaped, f"{len(escaped)} aiohttp records went past the agent's log formatter, e.g. " \
                        f"{escaped[0].getMessage()!r} with a traceback: {escaped[0].exc_info is not None}"
    http_lines = [line for line in out.splitlines() if " aiohttp." in line]
    assert http_lines, "the malformed requests left no line in the agent's log"
    assert len(http_lines) <= logs.FOREIGN_LINES_PER_MINUTE
    assert "Traceback" not in out and "^" not in out
    assert SECRET not in out and "<redacted>" in out
    for line in out.splitlines():  # every line is a log record of its own: time, level, component
        assert line[:4].isdigit() and line[19:21] == "Z ", line


def test_lines_past_the_limit_become_a_count_on_the_next_line_that_passes():
    now = [0.0]
    limit = logs._RateLimit(3, clock=lambda: now[0])

    def record(name: str) -> logging.LogRecord:
        return logging.makeLogRecord({"name": name, "levelname": "ERROR", "msg": "Error handling request"})

    assert [limit.filter(record("aiohttp.server")) for _ in range(5)] == [True] * 3 + [False] * 2
    assert limit.filter(record("asyncio"))  # each library has its own budget
    now[0] = 61.0
    late = record("aiohttp.web")
    assert limit.filter(late)
    line = logs._OneLine(Redactor()).format(late)
    assert line.endswith("Error handling request [2 more lines of aiohttp dropped in the minute before]"), line


async def test_the_scrapes_waiting_for_a_render_are_woken_a_few_per_loop_turn():
    """Hundreds of scrapes joined one render: its end woke them all in the same loop turn, one task step
    each, a stall the probes in flight measured."""
    import threading

    registry = CollectorRegistry()
    registry.register(SloCollector(lambda: None, lambda: False))
    render = server_mod.Renderer(registry)
    gate = threading.Event()
    real = server_mod._render

    def held(reg):
        gate.wait(10)
        return real(reg)

    loop = asyncio.get_running_loop()
    ready: list[int] = []  # callbacks waiting in each loop turn (asyncio's own loop: the tests run on it)

    def tick() -> None:
        ready.append(len(loop._ready))
        if len(ready) < 400:
            loop.call_soon(tick)

    server_mod._render, saved = held, server_mod._render
    try:
        scrapes = [asyncio.ensure_future(render()) for _ in range(100)]
        for _ in range(5):
            await asyncio.sleep(0)  # every scrape joins the render in flight
        loop.call_soon(tick)
        gate.set()
        answers = await asyncio.gather(*scrapes)
    finally:
        server_mod._render = saved
    assert len(set(answers)) == 1 and render.renders == 1
    assert max(ready) <= 2 * getattr(server_mod, "ANSWERS_PER_TURN", 8) + 4, f"{max(ready)} callbacks in one turn"
