"""Hostile targets, all at once beside a healthy one: each gets its exact outcome within its timeout,
the healthy target stays on schedule, and no task or file descriptor is left behind."""
from __future__ import annotations

import asyncio
import os

import pytest
from aiohttp import web

from agent.app import Agent
from agent.config import parse_config

from .servers import closed_port, http_server, make_certs, raw_server


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def silent(reader, writer):
    await asyncio.sleep(3600)


async def slow_headers(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
        writer.write(bytes([b]))
        await writer.drain()
        await asyncio.sleep(1)


async def endless_chunks(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    while True:
        writer.write(b"1\r\nx\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)


async def one_gigabyte(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(16384):
        writer.write(chunk)
        await writer.drain()


async def garbage(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"\x00\xff garbage, not HTTP \r\n\r\n")
    await writer.drain()
    await asyncio.sleep(5)


async def reset_mid_body(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    await writer.drain()
    writer.transport.abort()


async def close_after_headers(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("hostile-certs"))


async def test_hostile_targets_all_at_once(tmp_path, certs):
    async def ok(request):
        return web.Response(text="ok")

    async def loop_(request):
        raise web.HTTPFound("/loop")

    v6 = web.Application()
    v6.router.add_get("/", ok)
    main = web.Application()
    main.router.add_get("/", ok)
    main.router.add_get("/loop", loop_)
    expected: dict[str, tuple[str, str]] = {}
    fds_before = open_fds()  # before the servers too: their sockets are checked after they close
    tasks_before = len(asyncio.all_tasks())
    async with http_server(v6, host="::1") as v6_base, \
            http_server(main) as base, \
            http_server(web.Application(), ssl_context=certs.server_context("self_signed")) as ss_base, \
            http_server(web.Application(), ssl_context=certs.server_context("expired")) as exp_base, \
            http_server(web.Application(), ssl_context=certs.server_context("wrong_host")) as wrong_base, \
            raw_server(silent) as p_silent, raw_server(slow_headers) as p_slow, raw_server(endless_chunks) as p_chunks, \
            raw_server(one_gigabyte) as p_gig, raw_server(garbage) as p_garbage, raw_server(reset_mid_body) as p_reset, \
            raw_server(close_after_headers) as p_close, raw_server(silent) as p_tls_stall:

        async def redirect_away(request):
            raise web.HTTPFound(v6_base + "/")
        main.router._frozen = False  # add one more route to the running test app
        main.router.add_get("/away", redirect_away)
        ca = str(certs.ca)
        targets = {
            "silent": (f"http://127.0.0.1:{p_silent}/", "down", "timeout", ""),
            "slow-headers": (f"http://127.0.0.1:{p_slow}/", "down", "timeout", ""),
            "endless-chunks": (f"http://127.0.0.1:{p_chunks}/", "down", "timeout", ""),
            "one-gigabyte": (f"http://127.0.0.1:{p_gig}/", "down", "body_too_large", "max_body_bytes: 1048576"),
            "garbage": (f"http://127.0.0.1:{p_garbage}/", "down", "protocol", ""),
            "reset-mid-body": (f"http://127.0.0.1:{p_reset}/", "down", "reset", ""),
            "close-after-headers": (f"http://127.0.0.1:{p_close}/", "down", "reset", ""),
            "redirect-loop": (base + "/loop", "down", "too_many_redirects", ""),
            "redirect-away": (base + "/away", "up", "", ""),
            "self-signed": (ss_base + "/", "down", "tls", f"tls: {{ca_file: {ca}}}"),
            "expired": (exp_base + "/", "down", "tls", f"tls: {{ca_file: {ca}}}"),
            "wrong-host": (wrong_base.replace("127.0.0.1", "localhost") + "/", "down", "tls",
                           f"tls: {{ca_file: {ca}}}, ip_family: ipv4"),
            "tls-stall": (f"https://127.0.0.1:{p_tls_stall}/", "down", "tls", ""),
            "no-such-name": ("http://no-such-host.invalid/", "down", "dns", ""),
            "port-closed": (f"http://127.0.0.1:{closed_port()}/", "down", "connect_refused", ""),
            "ipv6-only": (v6_base + "/", "up", "", ""),
        }
        lines = [f'  - {{name: {n}, service: web, url: "{u}", interval: 1500ms, timeout: 1s'
                 + (f", {extra}" if extra else "") + "}" for n, (u, _, _, extra) in targets.items()]
        lines.append(f'  - {{name: steady, service: api, url: "{base}/", interval: 250ms, timeout: 2s, '
                     f'max_in_flight: 10}}')
        cfg = parse_config('agent: {listen: "127.0.0.1:0", shutdown_grace: 2s}\ntargets:\n' + "\n".join(lines) + "\n")
        expected = {n: (o, k) for n, (_, o, k, _) in targets.items()}
        agent = Agent(cfg, state_dir=str(tmp_path / "state"))
        results: list = []
        agent.listeners.append(results.append)
        await agent.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        deadline = t0 + 30
        decisive = lambda n: [r for r in results if r.target == n and r.outcome != "inconclusive"]  # noqa: E731
        while any(len(decisive(n)) < 3 for n in targets):
            assert loop.time() < deadline, {n: len(decisive(n)) for n in targets}
            await asyncio.sleep(0.1)
        elapsed = loop.time() - t0
        steady = agent.scheduler.timelines["steady"]
        await agent.stop()
    for _ in range(50):  # closed transports are released on the next loop iterations
        await asyncio.sleep(0.02)
        if open_fds() <= fds_before and len(asyncio.all_tasks()) <= tasks_before:
            break
    left = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in open_fds() - fds_before
            if os.path.exists(f"/proc/self/fd/{fd}")}
    assert left == {}, f"file descriptors left behind: {left}"
    assert len(asyncio.all_tasks()) <= tasks_before, "tasks left behind"
    for name, (outcome, kind) in expected.items():
        # a tick that found the previous probe still running on a loaded machine is counted as skipped
        # (inconclusive): honest, and allowed; every decided probe must carry the exact outcome
        assert {r.error_kind for r in results if r.target == name and r.outcome == "inconclusive"} <= \
            {"skipped", "agent_overload"}
        got = [(r.outcome, r.error_kind) for r in decisive(name)]
        assert len(got) >= 3 and all(g == (outcome, kind) for g in got), (name, got)
        durations = [r.duration_s for r in decisive(name)]
        assert max(durations) <= 1.0 + 0.5, (name, max(durations))  # every probe ends within its timeout
    steady_results = [r for r in results if r.target == "steady"]
    # on schedule while the others misbehave (a loop stall on a loaded machine may mark a probe inconclusive,
    # never down)
    assert all(r.outcome == "up" or r.error_kind == "agent_overload" for r in steady_results), \
        {r.error_kind for r in steady_results}
    assert steady.skipped == 0
    assert abs(steady.ticks + steady.late - elapsed / 0.25) <= 3
