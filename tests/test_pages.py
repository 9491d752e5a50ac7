"""The status page at `/` and the month's report at `/report`, in headless Chromium (Debian's): the
verdicts, the budget, the incidents and the legends are in the DOM, the page is light and asks nothing
of any other host. A screenshot of each is kept with the test's files."""
from __future__ import annotations

import dataclasses
import re
import time

import pytest

from agent.app import Agent
from agent.config import load_config
from agent.demo.history import write_history
from agent.probes import probe_type
from agent.probes.browser.spec import find_chromium
from agent.store import Store
from agent.tickets import Ticket

from .conftest import ROOT
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
    for urls in (asked, asked_r):
        assert urls and all(u.startswith(agent.server.url) for u in urls), urls  # nothing leaves the agent
    assert size < 200_000 and size_r < 200_000, (size, size_r)
    assert (tmp_path / "status-page.png").stat().st_size > 1000
