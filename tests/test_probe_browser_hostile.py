"""Browser checks against hostile pages, with the real headless Chromium: a page whose HAR outgrows the
worker's answer, a worker that falls out of step with the agent."""
from __future__ import annotations

import json

import pytest
from aiohttp import web

from agent.clock import SystemClock
from agent.config import parse_config
from agent.probes import Capture, ProbeResult, make_probe
from agent.probes.browser import pool as browser_pool
from agent.probes.browser.spec import find_chromium

from .servers import http_server

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (apt-get install chromium)")
LINE_LIMIT = 1 << 20  # the agent's bound on one answer, for the test: 256 MiB in the agent
# A page that fetches a long query string several times: its HAR holds each twice (url and queryString),
# about 4 MiB, four times the line limit above (the attack: 150 fetches of 1 MB, over 256 MiB).
BIG_PAGE = """<h1>big</h1><script>
const q = "x".repeat(256 * 1024);
Promise.all([...Array(8).keys()].map(i => fetch(`/q?i=${i}&q=${q}`)))
  .then(() => document.body.insertAdjacentHTML("beforeend", "<p id=fetched>done</p>"));
</script>"""


def _app() -> web.Application:
    def page(text: str, status: int = 200):
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=text, status=status, content_type="text/html")
        return handler

    app = web.Application(handler_args={"max_line_size": 1 << 20})  # the long query strings
    app.router.add_get("/big", page(BIG_PAGE))
    app.router.add_get("/q", page("ok"))
    app.router.add_get("/fine", page("<h1 id=ok>fine</h1>"))
    app.router.add_get("/missing", page("<h1>gone</h1>", 404))
    return app


def _config(base: str) -> str:
    return f"""
targets:
  - {{name: big, service: web, type: browser, url: "{base}/big", interval: 30s, timeout: 4s,
     actions: [wait_for_selector: "#fetched"], expect_selector: "#never", artifacts: {{max_bytes: {64 << 20}}}}}
  - {{name: fine, service: web, type: browser, url: "{base}/fine", interval: 30s, timeout: 4s,
     expect_selector: "#ok"}}
  - {{name: missing, service: web, type: browser, url: "{base}/missing", interval: 30s, timeout: 4s}}
"""


async def _run(probe) -> ProbeResult | str:
    """The probe's result, or the exception that escaped it (the scheduler files it as agent_error)."""
    try:
        return await probe.run()
    except Exception as exc:  # noqa: BLE001 - an escaped exception is what the old code did
        return f"raised {type(exc).__name__}: {exc}"[:120]


async def _outcome(probe) -> tuple[str, str] | str:
    r = await _run(probe)
    return r if isinstance(r, str) else (r.outcome, r.error_kind)


async def test_a_huge_har_is_left_out_and_every_target_keeps_its_own_answer(monkeypatch):
    monkeypatch.setattr(browser_pool, "LINE_LIMIT", LINE_LIMIT)
    async with http_server(_app()) as base:
        big, fine, missing = (make_probe(t, clock=SystemClock(), capture=Capture())
                              for t in parse_config(_config(base)).targets)
        try:
            first = await _run(big)
            pid = big._pool._workers[0].proc and big._pool._workers[0].proc.pid
            seen = [await _outcome(p) for p in (fine, missing, fine, big)]
            same_worker = big._pool._workers[0].proc.pid == pid
        finally:
            for p in (big, fine, missing):
                await p.close()
    assert seen == [("up", ""), ("down", "http_status"), ("up", ""), ("down", "assertion")]
    assert (first.outcome, first.error_kind) == ("down", "assertion") and "#never" in first.error
    assert [n for n, _ in first.detail.artifacts] == ["screenshot.jpg"]  # the HAR left out, not fatal
    assert same_worker  # the answer stayed within its bound: nothing to replace


@pytest.mark.parametrize("stray", ["another check's answer", "an answer over the line limit"])
async def test_a_worker_out_of_step_is_replaced_and_no_answer_lands_on_another_target(monkeypatch, stray):
    monkeypatch.setattr(browser_pool, "LINE_LIMIT", LINE_LIMIT)
    async with http_server(_app()) as base:
        big, fine, missing = (make_probe(t, clock=SystemClock(), capture=Capture())
                              for t in parse_config(_config(base)).targets)
        try:
            assert (await fine.run()).outcome == "up"
            worker = fine._pool._workers[0]
            # a job the agent did not send (a step lost somewhere): its answer comes first
            job = missing._job(True) if stray == "another check's answer" else big._job(True)
            job.update(id="stray", answer_bytes=1 << 30, max_bytes=1 << 30)
            worker.proc.stdin.write(json.dumps(job).encode() + b"\n")
            out_of_step = await fine.run()
            seen = [await _outcome(p) for p in (missing, fine, missing)]
        finally:
            for p in (big, fine, missing):
                await p.close()
    assert (out_of_step.outcome, out_of_step.error_kind) == ("inconclusive", "agent_browser"), \
        (out_of_step.outcome, out_of_step.error)
    assert "killed and restarted" in out_of_step.error
    assert seen == [("down", "http_status"), ("up", ""), ("down", "http_status")]
