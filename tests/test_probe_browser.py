"""Browser checks with the real headless Chromium (Debian's package) driven by Playwright in a worker
process, against the simulator's single-page app: up; its script bundle failing (down, while the plain
HTTP check of the same page stays up) with a screenshot and a HAR stored; a hung page ended at its
timeout; a hung browser killed, inconclusive, and replaced."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3

import aiohttp
import pytest
from aiohttp import web

from agent.app import Agent
from agent.clock import SystemClock
from agent.config import parse_config
from agent.demo import SimSettings, Simulator
from agent.probes import Capture, make_probe
from agent.probes.browser import pool as browser_pool
from agent.probes.browser.spec import find_chromium

from .servers import http_server

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (apt-get install chromium)")
QUIET = dict(web_median_ms=2, api_median_ms=2, sigma=0.1, slow_share=0.0, error_rate=0.0, outage_every=0, seed=5)
PASSWORD = "pa55-w0rd-in-env"  # nosec B105 - a test credential


def _targets(base: str) -> str:
    return f"""
targets:
  - name: web-browser
    service: web
    type: browser
    url: "{base}/"
    interval: 30s
    timeout: 8s
    actions:
      - fill: {{selector: "#email", value: "ops@example.com"}}
      - fill: {{selector: "#password", value: "${{WEB_PASSWORD}}"}}
      - click: "#submit"
    expect_selector: "#dashboard"
  - name: web-page
    service: web
    url: "{base}/"
    body_regex: ["CRM360"]
"""


async def _sim() -> tuple[Simulator, str]:
    sim = Simulator(SimSettings(**QUIET))
    port = await sim.start("127.0.0.1", 0)
    return sim, f"http://127.0.0.1:{port}"


async def test_spa_up_then_its_bundle_fails_while_the_page_still_answers(tmp_path):
    sim, base = await _sim()
    cfg = parse_config(_targets(base) + 'agent: {listen: "127.0.0.1:0"}\n', environ={"WEB_PASSWORD": PASSWORD})
    agent = Agent(cfg, state_dir=str(tmp_path / "state"))
    await agent.start()
    await agent.scheduler.stop(0)
    browser = make_probe(cfg.targets[0], clock=SystemClock(), capture=Capture(), redactor=agent.redact)
    page = make_probe(cfg.targets[1], clock=SystemClock())
    try:
        up = await browser.run()
        sim.s.bundle_fails = True
        down, plain = await browser.run(), await page.run()
        for r in (up, down, plain):
            agent.on_result(r)
        await agent.flush()
        served = await _served_artifacts(agent.server.url)
    finally:
        await browser.close()
        await page.close()
        await agent.stop()
        await sim.stop()
    assert up.outcome == "up", up.error
    assert len(up.phases) == 4 and abs(sum(up.phases) - up.duration_s) < 1e-6 and up.latency_counted
    assert [m for m, _ in up.marks] in ([], ["lcp"])
    assert down.outcome == "down" and down.error_kind == "resource_error"
    assert down.error.startswith("HTTP 500 for /static/app.js")
    assert plain.outcome == "up"  # the page's shell still answers 200 with its title
    assert sim.count("GET", "/static/app.js", 500) == 1
    names = [n for n, _ in down.detail.artifacts]
    assert names == ["screenshot.jpg", "page.har"]
    shot, har = (data for _, data in down.detail.artifacts)
    assert shot[:3] == b"\xff\xd8\xff"  # a JPEG
    entries = json.loads(har)["log"]["entries"]
    assert any(e["request"]["url"].endswith("/static/app.js") and e["response"]["status"] == 500 for e in entries)
    # stored with the journal record, by hash, and named by it
    db = sqlite3.connect(tmp_path / "state" / "ledger.db")
    (files,) = db.execute("SELECT artifacts FROM journal WHERE error_kind='resource_error'").fetchone()
    stored = {sha: data for sha, data in db.execute("SELECT sha256, data FROM blobs")}
    assert [n for n, _ in json.loads(files)] == names and all(sha in stored for _, sha in json.loads(files))
    assert PASSWORD.encode() not in b"".join(stored.values())
    # and served to a person by the agent: the journal names them, the artifact endpoint gives them
    assert [(name, kind, data) for name, kind, data in served] == [
        ("screenshot.jpg", "image/jpeg", shot), ("page.har", "application/json", har)]


async def _served_artifacts(base: str) -> list[tuple[str, str, bytes]]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/api/v1/journal", params={"target": "web-browser"}) as resp:
            records = [r for r in (await resp.json())["records"] if r["artifacts"]]
        out = []
        for a in records[0]["artifacts"]:
            async with s.get(f"{base}/api/v1/journal/artifact", params={"sha256": a["sha256"]}) as resp:
                out.append((a["name"], resp.content_type, await resp.read()))
        async with s.get(f"{base}/api/v1/journal/artifact", params={"sha256": "0" * 64}) as resp:
            assert resp.status == 404
    return out


async def test_the_password_filled_into_the_page_is_not_in_the_har(tmp_path):
    sim, base = await _sim()
    cfg = parse_config(_targets(base).replace('"#dashboard"', '"#never"').replace("timeout: 8s", "timeout: 3s"),
                       environ={"WEB_PASSWORD": PASSWORD})
    probe = make_probe(cfg.targets[0], clock=SystemClock(), capture=Capture(),
                       redactor=__import__("agent.redact", fromlist=["Redactor"]).Redactor(cfg.secrets))
    try:
        r = await probe.run()
    finally:
        await probe.close()
        await sim.stop()
    assert r.outcome == "down" and r.error_kind == "assertion" and "#never" in r.error
    assert all(PASSWORD.encode() not in data for _, data in r.detail.artifacts)


async def test_a_hung_page_is_ended_at_its_timeout_and_the_next_check_runs():
    async def never(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.Response(text="late")

    async def busy(request: web.Request) -> web.Response:  # a script that never yields: the renderer is stuck
        return web.Response(text="<h1 id=ok>x</h1><script>setTimeout(() => { while (true) {} }, 5)</script>",
                            content_type="text/html")

    async def fine(request: web.Request) -> web.Response:
        return web.Response(text="<h1 id=ok>fine</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/never", never)
    app.router.add_get("/busy", busy)
    app.router.add_get("/fine", fine)
    async with http_server(app) as base:
        results = {}
        for path in ("never", "busy", "fine"):
            cfg = parse_config(f'targets: [{{name: b, service: web, type: browser, url: "{base}/{path}", '
                               f'interval: 30s, timeout: 2s, expect_selector: "#ok"}}]')
            probe = make_probe(cfg.targets[0], clock=SystemClock())
            results[path] = await probe.run()
            await probe.close()
    for path in ("never", "busy"):
        r = results[path]
        assert r.outcome == "down" and r.error_kind == "timeout", (path, r.error)
        assert 2.0 <= r.duration_s < 2.5 and r.latency_counted  # slower than every threshold, like http
    assert results["fine"].outcome == "up", results["fine"].error


def _chromium_pids() -> set[int]:
    pids = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() in ("chromium", "chrome", "headless_shell"):
                        pids.add(int(d))
            except OSError:
                pass
    return pids


async def test_a_hung_browser_is_killed_inconclusive_and_replaced(monkeypatch):
    monkeypatch.setattr(browser_pool, "ANSWER_SLACK", 1.0)
    sim, base = await _sim()
    cfg = parse_config(f'targets: [{{name: b, service: web, type: browser, url: "{base}/", interval: 30s, '
                       f'timeout: 2s, expect_selector: "#sign-in"}}]')
    probe = make_probe(cfg.targets[0], clock=SystemClock())
    before = _chromium_pids()
    try:
        assert (await probe.run()).outcome == "up"
        worker = probe._pool._workers[0]
        mine = _chromium_pids() - before
        os.killpg(worker.proc.pid, signal.SIGSTOP)  # the worker and its driver freeze
        hung = await probe.run()
        for _ in range(100):  # Chromium exits once its pipe to the killed driver is closed
            if not (mine & _chromium_pids()):
                break
            await asyncio.sleep(0.1)
        assert not (mine & _chromium_pids())
        again = await probe.run()
    finally:
        await probe.close()
        await sim.stop()
    assert hung.outcome == "inconclusive" and hung.error_kind == "agent_browser"
    assert "did not answer within 3s: killed and restarted" in hung.error
    assert again.outcome == "up"


async def test_without_the_journal_artifacts_are_files_under_the_state_dir(tmp_path):
    sim, base = await _sim()
    sim.s.bundle_fails = True
    cfg = parse_config(f'targets: [{{name: spa, service: web, type: browser, url: "{base}/", interval: 30s, '
                       f'timeout: 3s, expect_selector: "#sign-in", artifacts: {{per_hour: 1}}}}]')
    probe = make_probe(cfg.targets[0], clock=SystemClock(), state_dir=str(tmp_path))
    try:
        first, second = await probe.run(), await probe.run()
    finally:
        await probe.close()
        await sim.stop()
    assert first.outcome == second.outcome == "down" and first.detail is None
    files = sorted(p.name.split("-", 1)[1] for p in (tmp_path / "artifacts" / "spa").iterdir())
    assert files == ["page.har", "screenshot.jpg"]  # one failure's worth: per_hour is 1
