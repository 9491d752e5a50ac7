"""The scheduled ticket import (`tickets:`) against a real local HTTP server: a changed export is picked up
at the next fetch, a bad one leaves the stored tickets untouched and shows in the fetch metrics; basic
auth and OAuth2 as for targets; the open-ticket gauge follows."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import sqlite3
import urllib.request
from typing import AsyncIterator

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from agent.app import Agent
from agent.cli import main
from agent.config import parse_config
from agent.demo.tokens import TokenIssuer
from agent.tickets.feed import TicketFeed

from .conftest import FakeClock, free_port
from .servers import closed_port, http_server
from .test_daemon import wait_for

TZ = dt.timezone(dt.timedelta(hours=1))
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=TZ).timestamp()
V1 = b"""id,priority,opened_at,responded_at,workaround_at,resolved_at
S-1,P1,2026-11-25T09:30:00+01:00,,,
S-2,P2,2026-11-24T10:00:00+01:00,2026-11-24T11:00:00+01:00,,
"""
V2 = V1.replace(b"S-1,P1,2026-11-25T09:30:00+01:00,,,", b"S-1,P1,2026-11-25T09:30:00+01:00,2026-11-25T10:00:30+01:00,,") \
    + b"S-3,P3,2026-11-25T09:45:00+01:00,,,\n"
BAD = V2 + b"S-4,P9,yesterday,,,\n"
PASSWORD = "feed-pass-7781"


class Export:
    """The support tool: serves whatever `body` holds, behind basic auth or an OAuth2 bearer token."""

    def __init__(self) -> None:
        self.body, self.status, self.requests = V1, 200, 0
        self.issuer = TokenIssuer(client_id="sla", client_secret="oauth-secret-5521")

    def authorized(self, request: web.Request) -> bool:
        basic = "Basic " + base64.b64encode(f"sla:{PASSWORD}".encode()).decode()
        return request.headers.get("Authorization") == basic or self.issuer.valid(request)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if not self.authorized(request):
            return web.Response(status=401)
        return web.Response(status=self.status, body=self.body, content_type="text/csv")

    def app(self) -> web.Application:
        a = web.Application()
        a.router.add_get("/export", self.handle)
        a.router.add_post("/token", self.issuer.handle)
        return a


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:  # nosec - loopback
        return resp.read().decode()


def _samples(text: str, prefix: str) -> dict[str, float]:
    return {f"{s.name}{sorted(s.labels.items())}": s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name.startswith(prefix)}


@contextlib.asynccontextmanager
async def _agent(tickets: str, tmp_path) -> AsyncIterator[tuple[Agent, FakeClock]]:
    """An agent whose only work is the ticket feed (`tickets`: the section's flow mapping), on a fake clock."""
    cfg = parse_config(f"""
agent: {{listen: "127.0.0.1:0"}}
tickets: {tickets}
targets: [{{name: api, service: api, url: "http://127.0.0.1:{free_port()}/"}}]
""")
    clock = FakeClock(wall=NOW)
    agent = Agent(cfg, state_dir=str(tmp_path / "state"), clock=clock)
    await agent.start()
    await agent.scheduler.stop(0)
    try:
        yield agent, clock
    finally:
        await agent.stop()


def _fetches(agent: Agent, result: str) -> float:
    return agent.feed.metrics.fetches.labels(result)._value.get()


async def test_scheduled_import_follows_the_export_and_keeps_the_tickets_on_a_bad_one(tmp_path, caplog):
    export = Export()
    async with http_server(export.app()) as base, _agent(
            f'{{url: "{base}/export", every: 1m, basic_auth: {{username: sla, password: "{PASSWORD}"}}}}',
            tmp_path) as (agent, clock):
        await wait_for(lambda: _fetches(agent, "ok") == 1, "the first fetch, at start")
        assert {t.id: t.responded_at for t in agent.store.tickets()} == {
            "S-1": None, "S-2": dt.datetime(2026, 11, 24, 11, 0, tzinfo=TZ).timestamp()}
        await agent.evaluate_now()
        text = await asyncio.to_thread(_get, agent.server.url + "/metrics")
        left = _samples(text, "sla_ticket_business_seconds_left")
        assert list(left.values()) == [8 * 3600 - 1800]  # S-1 opened 09:30, now 10:00: 30 business minutes used

        export.body = V2  # S-1 answered, S-3 opened
        await clock.advance(60)
        await wait_for(lambda: _fetches(agent, "ok") == 2, "the next fetch, a minute later")
        stored = {t.id: t.responded_at for t in agent.store.tickets()}
        assert stored["S-1"] == dt.datetime(2026, 11, 25, 10, 0, 30, tzinfo=TZ).timestamp() and "S-3" in stored
        await agent.evaluate_now()
        text = await asyncio.to_thread(_get, agent.server.url + "/metrics")
        assert [k for k in _samples(text, "sla_ticket_business_seconds_left")] == [
            "sla_ticket_business_seconds_left[('month', '2026-11'), ('priority', 'P3'), ('ticket', 'S-3')]"]
        last_ok = _samples(text, "sla_tickets_fetch_last_success")

        for body, status, reason in ((BAD, 200, "invalid"), (V2, 503, "http")):
            export.body, export.status = body, status
            await clock.advance(60)
            await wait_for(lambda: agent.feed.metrics.errors.labels(reason)._value.get() == 1, f"a {reason} error")
            assert {t.id: t.responded_at for t in agent.store.tickets()} == stored  # untouched
        text = await asyncio.to_thread(_get, agent.server.url + "/metrics")
        health = _samples(text, "sla_tickets_fetch")
        assert health["sla_tickets_fetch_success[]"] == 0
        assert health["sla_tickets_fetch_errors_total[('reason', 'invalid')]"] == 1
        assert health["sla_tickets_fetch_errors_total[('reason', 'http')]"] == 1
        assert _samples(text, "sla_tickets_fetch_last_success") == last_ok
        assert "line 5" not in caplog.text and ":5: priority" in caplog.text  # the bad line is named
        assert PASSWORD not in caplog.text and PASSWORD not in text

        export.status = 200
        await clock.advance(60)
        await wait_for(lambda: agent.feed.metrics.success._value.get() == 1, "recovery")
    assert export.requests == 5


async def test_oauth2_as_for_targets(tmp_path):
    export = Export()
    async with http_server(export.app()) as base, _agent(
            f'{{url: "{base}/export", every: 1m, auth: {{oauth2: {{token_url: "{base}/token", client_id: sla, '
            f'client_secret: "oauth-secret-5521"}}}}}}', tmp_path) as (agent, clock):
        await wait_for(lambda: _fetches(agent, "ok") == 1, "a fetch with a bearer token")
        assert len(agent.store.tickets()) == 2 and export.issuer.requests == 1
        export.issuer.revoke_all()  # the export answers 401 once: one new token, then the export
        export.body = V2
        await clock.advance(60)
        await wait_for(lambda: _fetches(agent, "ok") == 2, "a fetch after a revoked token")
        assert export.issuer.requests == 2 and len(agent.store.tickets()) == 3


async def test_a_streamed_export_is_read_whole_and_redirects_keep_credentials_home(tmp_path):
    """20,000 lines sent in small chunks are all imported; a redirect to another origin gets none of the
    configured headers; a redirect loop ends in an error result, and the schedule goes on."""
    lines = [b"id,priority,opened_at,responded_at"] + [
        f"Z-{i},P3,2026-11-2{i % 5}T10:00:00+01:00,2026-11-2{i % 5}T11:00:00+01:00".encode() for i in range(20_000)]
    seen: list[str | None] = []

    async def streamed(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/csv"})
        await resp.prepare(request)
        body = b"\n".join(lines) + b"\n"
        for i in range(0, len(body), 16384):
            await resp.write(body[i:i + 16384])
        await resp.write_eof()
        return resp

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Api-Key"))
        return web.Response(body=V1, content_type="text/csv")

    other = web.Application()
    other.router.add_get("/export", elsewhere)
    target = {"to": "/big"}

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound(target["to"])

    app = web.Application()
    app.router.add_get("/big", streamed)
    app.router.add_get("/hop", hop)
    async with http_server(other) as other_base, http_server(app) as base, _agent(
            f'{{url: "{base}/hop", every: 1m, headers: {{X-Api-Key: "key-8812-secret"}}}}', tmp_path) as (agent, clock):
        await wait_for(lambda: _fetches(agent, "ok") == 1, "the streamed export, through one same-origin redirect")
        assert len(agent.store.tickets()) == 20_000
        target["to"] = f"{other_base}/export"
        await clock.advance(60)
        await wait_for(lambda: _fetches(agent, "ok") == 2, "the export on another origin")
        assert seen == [None]  # the key stayed home
        target["to"] = "/hop"  # a loop
        await clock.advance(60)
        await wait_for(lambda: _fetches(agent, "error") == 1, "an error result")
        assert agent.feed.metrics.errors.labels("http")._value.get() == 1
        target["to"] = "/big"
        await clock.advance(60)
        await wait_for(lambda: _fetches(agent, "ok") == 3, "the schedule going on")


def _changing_export(n: int, version: int) -> bytes:
    """`n` tickets, every one of them answered a minute later in each version of the export."""
    return b"\n".join([b"id,priority,opened_at,responded_at"] + [
        f"C-{i},P2,2026-11-24T10:00:00+01:00,2026-11-24T11:{version:02d}:00+01:00".encode() for i in range(n)]) + b"\n"


def _chain_rows(db) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        return tuple(conn.execute("SELECT (SELECT COUNT(*) FROM chain), (SELECT COUNT(*) FROM seals)").fetchone())
    finally:
        conn.close()


async def test_an_export_whose_every_ticket_changes_adds_one_seal_a_fetch_and_a_tampered_ticket_is_named(tmp_path,
                                                                                                        capsys):
    export = Export()
    export.body = _changing_export(400, 0)
    db = tmp_path / "state" / "ledger.db"
    async with http_server(export.app()) as base, _agent(
            f'{{url: "{base}/export", every: 1m, basic_auth: {{username: sla, password: "{PASSWORD}"}}}}',
            tmp_path) as (agent, clock):
        await wait_for(lambda: _fetches(agent, "ok") == 1, "the first fetch, at start")
        sizes = [_chain_rows(db)]
        for version in range(1, 6):
            export.body = _changing_export(400, version)
            await clock.advance(60)
            await wait_for(lambda: _fetches(agent, "ok") == version + 1, f"fetch {version + 1}")
            assert {t.responded_at for t in agent.store.tickets()} == {
                dt.datetime(2026, 11, 24, 11, version, tzinfo=TZ).timestamp()}
            sizes.append(_chain_rows(db))
    assert [(b[0] - a[0], b[1] - a[1]) for a, b in zip(sizes, sizes[1:])] == [(1, 1)] * 5  # links, seals
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text('targets: [{name: api, service: api, url: "http://127.0.0.1:9/"}]\n')
    verify = ["evidence", "verify", "--config", str(cfg), "--state-dir", str(tmp_path / "state")]
    assert main(verify) == 0, capsys.readouterr().err
    conn = sqlite3.connect(db)
    conn.execute("UPDATE tickets SET responded_at = responded_at + 3600 WHERE id = 'C-217'")
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(verify) == 1
    err = capsys.readouterr().err
    assert "ticket C-217 (sealed in link" in err and "differs from what was sealed" in err, err
    assert "C-216" not in err and "C-218" not in err
    conn = sqlite3.connect(db)
    conn.execute("UPDATE tickets SET responded_at = responded_at - 3600 WHERE id = 'C-217'")  # as it was
    conn.execute("DELETE FROM tickets WHERE id = 'C-3'")
    conn.commit()
    conn.close()
    assert main(verify) == 1
    assert "the tickets (sealed in link 6): 399 stored where 400 were sealed" in capsys.readouterr().err


async def test_a_stop_that_meets_a_failing_fetch_ends_the_feed(tmp_path):
    """A cancel that arrives as a fetch fails must end the task: asyncio.wait_for (Python 3.11) hands back
    the inner failure instead, the feed took it for an ordinary failed fetch and slept until the next one,
    and the agent's stop waited on it for ever. Cancelled at every step of a fetch to a closed port."""
    cfg = parse_config(f"""
tickets: {{url: "http://127.0.0.1:{closed_port()}/export.csv", every: 1h}}
targets: [{{name: api, service: api, url: "http://127.0.0.1:{free_port()}/"}}]
""")
    hung = []
    for turns in range(80):
        feed = TicketFeed(lambda: cfg, None, FakeClock(wall=NOW), lambda r: None, str)
        task = asyncio.create_task(feed.run())
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:
            hung.append(turns)
            task.cancel()  # a second cancel lands in the sleep and ends it
            await asyncio.wait({task}, timeout=5)
        await feed.close()
    assert not hung, f"the feed went on after a cancel at loop turns {hung}"
