"""OAuth2 client credentials against the simulator's real token endpoint and API: tokens refreshed
before expiry without a false down, one token request per refresh window, a token endpoint that stops,
a 401 that triggers one refresh, and no token or client secret in any text the agent gives out."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from agent.app import Agent
from agent.config import parse_config
from agent.demo import SimSettings, Simulator
from agent.probes import Capture, make_probe
from agent.report import build_report, render

from .conftest import FakeClock
from .servers import http_server, raw_server
from .test_probe_http import DEEP_JSON, scheduled

SECRET = "s3cr3t-client-value"  # nosec B105 - a test credential
QUIET = dict(web_median_ms=1, api_median_ms=1, sigma=0.1, slow_share=0.0, error_rate=0.0, outage_every=0, seed=3)


def _config(api: str, token_url: str, **extra: str) -> str:
    opts = "".join(f", {k}: {v}" for k, v in extra.items())
    return f"""
contract: {{maintenance: []}}
targets:
  - name: contacts
    service: api
    url: "{api}/api/v1/contacts"
    interval: 1s
    timeout: 2s
    max_in_flight: 5
    json: [{{path: "data[0].id", equals: 1}}]
    auth:
      oauth2: {{token_url: "{token_url}", client_id: demo-client, client_secret: "${{CLIENT_SECRET}}"{opts}}}
"""


def _load(text: str):
    return parse_config(text, environ={"CLIENT_SECRET": SECRET})


async def _sim(clock: FakeClock, ttl: float) -> tuple[Simulator, str]:
    sim = Simulator(SimSettings(token_ttl=ttl, **QUIET), clock=clock)
    sim.issuer.client_secret = SECRET
    port = await sim.start("127.0.0.1", 0)
    return sim, f"http://127.0.0.1:{port}"


async def test_five_second_tokens_give_no_false_down_and_one_request_per_window():
    clock = FakeClock()
    sim, base = await _sim(clock, ttl=5)
    cfg = _load(_config(base, f"{base}/oauth/token"))
    probe = make_probe(cfg.targets[0], clock=clock)
    try:
        results = []
        for _ in range(60):
            results.append(await probe.run())
            await clock.advance(1)
        # at a refresh point, five probes at once: they share one token request
        await clock.advance(3)
        burst = await asyncio.gather(*(probe.run() for _ in range(5)))
    finally:
        await probe.close()
        await sim.stop()
    assert [r.outcome for r in results] == ["up"] * 60
    # a 5 s token renewed at 80 % of its life: at 0, 4, 8, ... 56 s
    asked = [tr for r in results for tr in r.token_requests]
    assert len(asked) == 15 and {tr.result for tr in asked} == {"ok"}
    assert [tr.reason for tr in asked] == ["first"] + ["refresh"] * 14
    assert sum(len(r.token_requests) for r in burst) == 1 and all(r.outcome == "up" for r in burst)
    assert sim.issuer.requests == 16 == sim.count("POST", "/oauth/token", 200)
    assert sim.count("GET", "/api/v1/contacts", 401) == 0
    # the measured latency is the API call alone: the token request is not in it
    assert all(r.latency_counted and r.status == 200 for r in results)


async def test_token_endpoint_stopped_gives_auth_with_the_configured_outcome():
    clock = FakeClock()
    sim, api = await _sim(clock, ttl=5)
    idp = web.Application()
    idp.router.add_post("/token", sim.issuer.handle)
    try:
        for outcome in ("down", "inconclusive"):
            async with http_server(idp) as token_base:
                cfg = _load(_config(api, f"{token_base}/token", failure_outcome=outcome))
                probe = make_probe(cfg.targets[0], clock=clock)
                first = await probe.run()
            # the token endpoint is gone; the token it gave still serves until it expires
            await clock.advance(4.2)
            still = await probe.run()
            await clock.advance(0.5)
            gone = await probe.run()
            await probe.close()
            assert first.outcome == "up" and still.outcome == "up", (first, still)
            assert [tr.result for tr in still.token_requests] == ["error"]
            assert gone.outcome == outcome and gone.error_kind == "auth"
            assert "token endpoint unreachable" in gone.error and not gone.latency_counted
            assert [(tr.result, tr.reason) for tr in gone.token_requests] == [("error", "retry")]
    finally:
        await sim.stop()


async def test_a_401_triggers_exactly_one_refresh():
    clock = FakeClock()
    sim, base = await _sim(clock, ttl=300)
    cfg = _load(_config(base, f"{base}/oauth/token"))
    probe = make_probe(cfg.targets[0], clock=clock)
    try:
        assert (await probe.run()).outcome == "up"
        sim.issuer.revoke_all()  # the vendor rotated its keys: every token given so far is refused
        r = await probe.run()
        assert r.outcome == "up" and [(t.result, t.reason) for t in r.token_requests] == [("ok", "rejected")]
        assert sim.count("GET", "/api/v1/contacts", 401) == 1 and sim.issuer.requests == 2
        sim.issuer.valid = lambda request: False  # an API that refuses every token: one refresh, no loop
        r = await probe.run()
        assert r.outcome == "down" and r.error_kind == "http_status" and r.status == 401
        assert len(r.token_requests) == 1 and sim.issuer.requests == 3
        assert sim.count("GET", "/api/v1/contacts", 401) == 3
    finally:
        await probe.close()
        await sim.stop()


async def test_token_and_client_secret_appear_in_no_text(tmp_path, caplog):
    """An API that echoes the bearer token in its error body and headers: the journal, the logs, the
    metrics, the report and the error texts all show <redacted> instead."""
    clock = FakeClock(wall=1_790_000_000.0)
    sim, base = await _sim(clock, ttl=60)
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "")
        seen.append(token.removeprefix("Bearer "))
        return web.Response(status=500, text=f"bad request with {token} and secret {SECRET}",
                            headers={"X-Echo": token})

    app = web.Application()
    app.router.add_get("/api/v1/contacts", echo)
    async with http_server(app) as echo_base:
        text = _config(echo_base, f"{base}/oauth/token") + f"""
evidence: {{headers: [X-Echo], body_bytes: 200}}
agent: {{state_dir: "{tmp_path / 'state'}"}}
"""
        cfg = _load(text)
        agent = Agent(cfg, state_dir=str(tmp_path / "state"), clock=clock)
        caplog.set_level(logging.DEBUG)
        await agent.start()
        await agent.scheduler.stop(0)
        probe = make_probe(cfg.targets[0], clock=clock, capture=Capture(("X-Echo",), 200), redactor=agent.redact)
        results = []
        for _ in range(3):
            results.append(await probe.run())
            agent.on_result(results[-1])
            sim.issuer.revoke_all()  # a new token every probe, each echoed
            await clock.advance(1)
        await probe.close()
        await agent.flush()
        exposition = generate_latest(agent.registry).decode()
        journal = agent.store.journal(["contacts"], 0, 2e9, limit=100)
        await agent.stop()
    await sim.stop()
    report = render(build_report(cfg, str(tmp_path / "state"), "2026-09", clock.time()), "json")
    texts = [caplog.text, exposition, report, *(r.error for r in results), str(journal)]
    details = [r.detail.body.decode() + str(r.detail.headers) for r in results if r.detail]
    assert len(seen) >= 3 and all(seen)
    for secret in [SECRET, *seen]:
        for text in texts:
            assert secret not in text
    for token in seen:  # the journal's global redaction knows the secret, not the tokens: the probe masks them
        assert all(token not in d for d in details)
    assert "<redacted>" in journal[0]["body"] and SECRET not in journal[0]["body"]
    assert all("<redacted>" in r.error or r.error_kind == "http_status" for r in results)
    assert any(b"<redacted>" in r.detail.body for r in results if r.detail)


async def _request_read(reader: asyncio.StreamReader) -> None:
    """The whole request (head and form body): a socket closed with unread bytes would be reset."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(
        b"content-length:")), 0)
    await reader.readexactly(length)


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_a_token_answer_in_pieces_is_read_whole(framing):
    """The token JSON arrives in two pieces, the second held back until the client has had the first (or
    has given up on it): the whole answer is read, as a large JWT arrives over the internet."""
    doc = json.dumps({"access_token": "tok-" + "x" * 3000, "token_type": "Bearer", "expires_in": 300}).encode()
    pieces = (doc[:100], doc[100:])
    sent, go = asyncio.Event(), asyncio.Event()

    async def token(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_read(reader)
        head = "Transfer-Encoding: chunked" if framing == "chunked" else f"Content-Length: {len(doc)}"
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{head}\r\n\r\n".encode())
        for i, piece in enumerate(pieces):
            if i:
                sent.set()
                await go.wait()
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece)
            await writer.drain()
        writer.write(b"0\r\n\r\n" if framing == "chunked" else b"")
        await writer.drain()

    async def contacts(request: web.Request) -> web.Response:
        ok = request.headers.get("Authorization") == "Bearer tok-" + "x" * 3000
        return web.json_response({"data": [{"id": 1}]}, status=200 if ok else 401)

    api = web.Application()
    api.router.add_get("/api/v1/contacts", contacts)
    async with raw_server(token) as port, http_server(api) as base:
        cfg = _load(_config(base, f"http://127.0.0.1:{port}/token"))
        probe = make_probe(cfg.targets[0], clock=FakeClock())
        run = asyncio.create_task(probe.run())
        await sent.wait()
        for _ in range(100):  # loop turns, not time: the client takes in the first piece meanwhile
            if run.done():
                break
            await asyncio.sleep(0)
        go.set()
        result = await run
        await probe.close()
    assert (result.outcome, result.error) == ("up", "")
    assert [(t.result, t.reason) for t in result.token_requests] == [("ok", "first")]
async def test_a_token_response_nested_too_deeply_is_down_auth(caplog):
    """The token endpoint's broken answer is the vendor's: `down (auth)`, not the agent's error."""
    async def token(request: web.Request) -> web.Response:
        return web.Response(text=DEEP_JSON, content_type="application/json")

    async def api(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": 1}]})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/api/v1/contacts", api)
    async with http_server(app) as base:
        r = await scheduled(_load(_config(base, f"{base}/token")).targets[0])
    assert (r.outcome, r.error_kind) == ("down", "auth"), r.error
    assert r.error == "no OAuth2 token: token endpoint answered without an access_token"
    assert not [rec for rec in caplog.records if rec.exc_info or rec.levelno >= 40]  # no traceback logged
