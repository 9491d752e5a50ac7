"""The status page at `/` and the month's report at `/report`, in headless Chromium (Debian's): the
verdicts, the budget, the incidents and the legends are in the DOM, the page is light and asks nothing
of any other host. A screenshot of each is kept with the test's files."""
from __future__ import annotations

import dataclasses
import re
import time

import numpy as np
import pytest
from aiohttp import web

from agent.app import Agent
from agent.config import load_config, parse_config
from agent.demo.history import write_history
from agent.export.page import render_page
from agent.export.status import status_document
from agent.ledger import nfields
from agent.probes import probe_type
from agent.probes.browser.spec import find_chromium
from agent.report import build_report
from agent.report.build import StoreView
from agent.slo import evaluate, slice_states
from agent.store import Store
from agent.tickets import Ticket

from . import month_fixture
from .conftest import ROOT
from .servers import http_server
from .test_daemon import wait_for

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (apt-get install chromium)")


async def _visit(url: str, shot) -> tuple[dict, list[str], int]:
    """The page's DOM facts, every URL it requested, and the bytes it received."""
    from playwright.async_api import async_playwright

    requested: list[str] = []
    received = 0
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone

        async def on_response(resp) -> None:
            nonlocal received
            received += len(await resp.body())
        page.on("request", lambda r: requested.append(r.url))
        page.on("response", on_response)
        await page.goto(url, wait_until="load")
        facts = await page.evaluate("""() => ({
            verdicts: [...document.querySelectorAll('#objectives .v, #rows .verdict')].map(e => e.textContent),
            budget: document.querySelectorAll('svg.budget').length,
            incidents: document.querySelectorAll('#incidents tr.incident, #incidents tbody tr').length,
            noIncident: !!document.querySelector('#no-incidents'),
            legends: document.querySelectorAll('.legend').length,
            targets: document.querySelectorAll('#targets tr.target').length,
            icon: (document.querySelector('link[rel=icon]') || {href: ''}).href.slice(0, 19),
            text: document.body.innerText,
        })""")
        await page.screenshot(path=str(shot), full_page=True)
        await browser.close()
    return facts, requested, received


async def test_the_status_page_and_the_report_in_chromium(tmp_path):
    cfg = load_config(ROOT / "config" / "demo.yaml")
    cfg = dataclasses.replace(cfg, targets=tuple(t for t in cfg.targets if probe_type(t).name != "browser"),
                              agent=dataclasses.replace(cfg.agent, listen="127.0.0.1:0"))
    month = write_history(cfg, str(tmp_path / "state"), time.time())
    store = Store(tmp_path / "state", thresholds=cfg.contract.thresholds)
    store.upsert_tickets([Ticket("OPEN-7", "P1", time.time() - 3600)])  # unanswered: its deadline is shown
    store.close()
    agent = Agent(cfg, state_dir=str(tmp_path / "state"))
    await agent.start()
    try:
        await wait_for(lambda: agent.results_seen >= 3, "a few results")
        await agent.evaluate_now()
        page, asked, size = await _visit(agent.server.url + "/", tmp_path / "status-page.png")
        report, asked_r, size_r = await _visit(f"{agent.server.url}/report?month={month}",
                                               tmp_path / "report.png")
        import aiohttp
        async with aiohttp.ClientSession() as s, s.get(agent.server.url + "/report") as resp:
            assert resp.status == 200 and f"SLA report {time.strftime('%Y-%m')}" in await resp.text()
        async with aiohttp.ClientSession() as s, s.get(agent.server.url + "/report?month=9999-12") as resp:
            assert resp.status == 400 and "2199-12" in (await resp.json())["error"]
        async with aiohttp.ClientSession() as s, s.get(agent.server.url + "/favicon.ico") as resp:
            assert resp.status == 200 and resp.content_type == "image/svg+xml" and b"<svg" in await resp.read()
    finally:
        await agent.stop()
    assert len(page["verdicts"]) == 6 and page["budget"] == 2 and page["targets"] == len(cfg.targets)
    assert page["noIncident"] or page["incidents"] > 0
    assert "Next maintenance window" in page["text"] and "The month's report" in page["text"]
    assert "Tickets waiting for a first response" in page["text"] and "OPEN-7" in page["text"]
    assert re.search(r"(\d+ h \d\d min left|lost)", page["text"]), page["text"]
    assert len(report["verdicts"]) >= 6 and {"MET", "MISSED"} <= set(report["verdicts"])
    assert report["legends"] == 3 and report["incidents"] >= 5
    assert "SIMULATED" in report["text"]
    assert page["icon"] == report["icon"] == "data:image/svg+xml,"  # inline: no request, no 404
    for urls in (asked, asked_r):
        assert urls and all(u.startswith(agent.server.url) for u in urls), urls  # nothing leaves the agent
    assert size < 200_000 and size_r < 200_000, (size, size_r)
    assert (tmp_path / "status-page.png").stat().st_size > 1000


SIZES = ((360, 740), (1280, 900))  # a small phone, a laptop


async def _look(html: str | None, url: str | None, shots) -> list[dict]:
    """At each size: the page's width against the window, its banner, strips and charts."""
    from playwright.async_api import async_playwright

    out = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
        for (width, height), shot in zip(SIZES, shots):
            page = await browser.new_page(viewport={"width": width, "height": height})
            if url:
                await page.goto(url, wait_until="load")
            else:
                await page.set_content(html, wait_until="load")
            out.append(await page.evaluate("""() => {
                const verdict = document.querySelector('#objectives tbody tr td:last-child .v');
                const box = verdict && verdict.getBoundingClientRect();
                const cells = sel => [...document.querySelectorAll(sel)].map(e => ({state: e.dataset.state,
                    from: e.dataset.from, to: e.dataset.to, minutes: e.dataset.minutes, grain: e.dataset.grain,
                    title: e.querySelector('title').textContent}));
                return {
                  scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
                  verdictVisible: !!box && box.width > 0 && box.right <= window.innerWidth
                                  && getComputedStyle(verdict).visibility === 'visible',
                  verdictText: verdict && verdict.textContent,
                  banner: [...document.querySelectorAll('#banner li')].map(e => ({row: e.dataset.row,
                      state: e.dataset.state, pending: !!e.closest('#banner-pending'), text: e.textContent})),
                  strips: Object.fromEntries([...document.querySelectorAll('#strips .strip-row')].map(e =>
                      [e.dataset.target, cells(`.strip-row[data-target="${e.dataset.target}"] rect.cell`)])),
                  charts: [...document.querySelectorAll('svg.chart')].map(e => ({cls: e.getAttribute('class'),
                      width: e.getBoundingClientRect().width, viewBox: e.getAttribute('viewBox')})),
                  budgetFills: [...document.querySelectorAll('svg.budget rect:nth-child(2)')].map(
                      e => e.getAttribute('fill')),
                  text: document.body.innerText,
                };
            }"""))
            await page.screenshot(path=str(shot), full_page=True)
            await page.close()
        await browser.close()
    return out


class FixtureAgent:
    """What the status page reads of an agent, over a fixture ledger at an injected `now`: the live
    figures evaluated from its stored rows, no probe run yet."""

    def __init__(self, cfg, cal, store: Store, now: float) -> None:
        self.cfg, self.cal, self._now = cfg, cal, now
        view = StoreView(store, nfields(cfg.contract.thresholds), now)
        self.snapshot = evaluate(view, cfg, cal, now, tickets=store.tickets)

    def now(self) -> float:
        return self._now

    def last(self, target: str):
        return None

    def redact(self, text: str) -> str:
        return text

    def health(self) -> dict:
        return {}


def fixture_page(state, until: float) -> tuple[str, object, object]:
    """The status page of the fixture month as it stood at `until`."""
    from agent.report.history import page_history

    cfg, cal = month_fixture.build(state, until)
    store = Store(state, thresholds=cfg.contract.thresholds, readonly=True)
    try:
        status = status_document(FixtureAgent(cfg, cal, store, until))
    finally:
        store.close()
    report = build_report(cfg, str(state), "2026-02", until)
    return render_page(status, report, None, None, page_history(cfg, str(state), until)), cfg, cal


@pytest.mark.parametrize("until, state", [
    ("2026-02-01T06:00:00+01:00", "pending"),   # six hours observed: half a day is the least a projection reads
    ("2026-02-14T12:00:00+01:00", "on_track"),  # two quiet weeks
    ("2026-02-20T12:00:00+01:00", "at_risk"),   # api down for two hours: within budget, not at that burn
    ("2026-02-21T12:00:00+01:00", "lost"),      # api down for eight hours: beyond the month's 1 %
])
async def test_the_banner_says_where_the_month_is_heading(tmp_path, until, state):
    html, cfg, _ = fixture_page(tmp_path / "state", month_fixture.t(until))
    small, large = await _look(html, None, [tmp_path / f"banner-{state}-{w}.png" for w, _ in SIZES])
    api = next(r for r in cfg.contract.objectives if getattr(r, "service", "") == "api"
               and not hasattr(r, "bounds"))
    head = next(b for b in large["banner"] if b["row"] == str(api.row))
    assert head["state"] == state, large["banner"]
    assert head["pending"] == (state == "pending")  # not enough data is listed apart from verdicts
    assert ("so far" in head["text"]) and "%" in head["text"]
    if state != "lost":  # the budget bar is red only once the month is lost
        assert "#cf222e" not in large["budgetFills"], large["budgetFills"]
    for look in (small, large):
        assert look["scrollWidth"] <= look["innerWidth"], (look["scrollWidth"], look["innerWidth"])
        assert look["verdictVisible"], look["verdictText"]
        assert look["charts"] and all(0 < c["width"] <= look["innerWidth"] for c in look["charts"])


async def test_the_heartbeat_strip_shows_the_ledgers_minutes(tmp_path):
    until = month_fixture.t("2026-02-17T16:30:00+01:00")
    html, cfg, cal = fixture_page(tmp_path / "state", until)
    _, large = await _look(html, None, [tmp_path / f"strip-{w}.png" for w, _ in SIZES])
    hour = month_fixture.t("2026-02-17T14:00:00+01:00")  # web-ui answered 503 from 14:00 to 14:45
    store = Store(tmp_path / "state", thresholds=cfg.contract.thresholds, readonly=True)
    try:
        m0 = int(hour // 60)
        states = slice_states(store.matrix("web-ui", m0, m0 + 60, nfields(cfg.contract.thresholds)),
                              cal.mask(m0, m0 + 60), cfg.contract.slice_down_ratio)
    finally:
        store.close()
    want = {name: int(n) for name, n in zip(("up", "down", "unknown", "masked"), np.bincount(states, minlength=4)) if n}
    assert want == {"up": 15, "down": 45}
    cell = next(c for c in large["strips"]["web-ui"] if c["grain"] == "hour" and c["from"] == "2026-02-17T14:00:00+01:00")
    assert cell["state"] == "down" and cell["to"] == "2026-02-17T15:00:00+01:00"
    assert dict(x.split(":") for x in cell["minutes"].split()) == {k: str(v) for k, v in want.items()}
    by_minute = [c for c in large["strips"]["web-ui"] if c["grain"] == "minute"]
    down = next(c for c in by_minute if c["state"] == "down")
    assert (down["from"], down["to"]) == ("2026-02-17T14:00:00+01:00", "2026-02-17T14:45:00+01:00")
    maint = next(c for c in large["strips"]["api-health"] if c["from"] == "2026-02-12T06:00:00+01:00")
    assert maint["state"] == "masked" and maint["to"] == "2026-02-12T08:00:00+01:00"  # its outage left out


async def test_a_live_outage_shows_failing_at_once(tmp_path):
    async def broken(request):
        return web.Response(status=503, text="down")
    app = web.Application()
    app.router.add_get("/", broken)
    async with http_server(app) as base:
        cfg = parse_config(f"""
agent: {{state_dir: "{tmp_path / 'state'}", listen: "127.0.0.1:0"}}
targets:
  - {{name: shop, service: shop, url: "{base}/", interval: 1s, timeout: 2s}}
""")
        agent = Agent(cfg, state_dir=str(tmp_path / "state"))
        await agent.start()
        try:
            await wait_for(lambda: getattr(agent.states.get("shop"), "outcome", None) == "down",
                           "a failing probe")
            await agent.evaluate_now()
            small, large = await _look(None, agent.server.url + "/",
                                       [tmp_path / f"outage-{w}.png" for w, _ in SIZES])
        finally:
            await agent.stop()
    for look in (small, large):
        now = [c for c in look["strips"]["shop"] if c["grain"] == "open"]
        assert len(now) == 1 and now[0]["state"] == "down" and "failing since" in now[0]["title"], now
        assert "failing now: shop since" in look["text"]
        assert "100.000 %" not in look["text"]
        assert look["scrollWidth"] <= look["innerWidth"], (look["scrollWidth"], look["innerWidth"])
