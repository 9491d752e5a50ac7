"""Browser checks against hostile pages, with the real headless Chromium: a page whose HAR outgrows the
worker's answer, a worker that falls out of step with the agent, a password typed into a form and sent
in its URL (hidden in the screenshot, redacted in every encoding in the HAR)."""
from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web

from agent.clock import SystemClock
from agent.config import parse_config
from agent.probes import Capture, ProbeResult, make_probe
from agent.probes.browser import pool as browser_pool
from agent.probes.browser.spec import find_chromium
from agent.redact import Redactor

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


SECRET, DECOY = "Hunter2 Secret/Pw!", "Wqmbzk5 Tlopxa/Rv?"  # nosec B105 - a test credential, and one as long
FIELD = 'style="font: 48px monospace; width: 1100px"'
FORM = f'<form action="/login" method="get"><input id="user" name="user" {FIELD}><button id="go">Go</button></form>'
# Compares three JPEGs (decoded by Chromium): over the pixels where the page showing the secret and the same
# page showing the decoy differ (the glyphs), how far the probe's screenshot is from the one with the secret.
COMPARE = """async ([secret, decoy, probe]) => {
  const pixels = src => new Promise((ok, fail) => {
    const img = new Image();
    img.onload = () => {
      const c = document.createElement("canvas");
      [c.width, c.height] = [img.width, img.height];
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      ok(g.getImageData(0, 0, img.width, img.height).data);
    };
    img.onerror = fail;
    img.src = "data:image/jpeg;base64," + src;
  });
  const [a, b, s] = await Promise.all([secret, decoy, probe].map(pixels));
  const d = (p, q, k) => Math.abs(p[k] - q[k]) + Math.abs(p[k + 1] - q[k + 1]) + Math.abs(p[k + 2] - q[k + 2]);
  let n = 0, toDecoy = 0, toProbe = 0;
  for (let k = 0; k < a.length; k += 4) {
    if (d(a, b, k) > 90) { n++; toDecoy += d(a, b, k); toProbe += d(a, s, k); }
  }
  return {pixels: n, decoy: toDecoy / n, probe: toProbe / n, same_size: a.length === s.length};
}"""


def _form_app() -> web.Application:
    async def form(request: web.Request) -> web.Response:
        return web.Response(text=FORM, content_type="text/html")

    async def login(request: web.Request) -> web.Response:  # echoes what was sent, as many sign-in pages do
        user = html.escape(request.query.get("user", ""))
        return web.Response(text=f'<p id=echo {FIELD}>Unknown user {user}</p><input value="{user}" {FIELD}>'
                                 '<img src="/pixel.gif">', content_type="text/html")

    app = web.Application()
    app.router.add_get("/form", form)
    app.router.add_get("/login", login)
    return app


def _form_targets(base: str) -> str:
    fill = '{fill: {selector: "#user", value: "${WEB_PASSWORD}"}}'
    return f"""
targets:
  - {{name: typed, service: web, type: browser, url: "{base}/form", interval: 30s, timeout: 2s,
     actions: [{fill}], expect_selector: "#dashboard"}}
  - {{name: sent, service: web, type: browser, url: "{base}/form", interval: 30s, timeout: 3s,
     actions: [{fill}, click: "#go", wait_for_selector: "#echo"], expect_selector: "#dashboard"}}
"""


async def _failed_check(base: str, index: int) -> tuple[ProbeResult, dict[str, bytes]]:
    cfg = parse_config(_form_targets(base), environ={"WEB_PASSWORD": SECRET})
    probe = make_probe(cfg.targets[index], clock=SystemClock(), capture=Capture(), redactor=Redactor(cfg.secrets))
    try:
        r = await probe.run()
    finally:
        await probe.close()
    assert (r.outcome, r.error_kind) == ("down", "assertion"), r.error
    return r, dict(r.detail.artifacts)


async def _likeness(shot: bytes, show) -> dict:
    """The probe's screenshot against the same page rendered by Chromium with the secret and with the decoy."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=find_chromium(), args=["--disable-gpu", "--mute-audio"])
        try:
            refs = []
            for value in (SECRET, DECOY):
                ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
                page = await ctx.new_page()
                await show(page, value)
                refs.append(await page.screenshot(type="jpeg", quality=60))
                await ctx.close()
            page = await browser.new_page()
            return await page.evaluate(COMPARE, [base64.b64encode(x).decode() for x in (*refs, shot)])
        finally:
            await browser.close()


def _assert_hidden(seen: dict) -> None:
    assert seen["same_size"] and seen["pixels"] > 500, seen  # the secret's glyphs: a region that can be compared
    # shown, the probe's shot is the secret's render (JPEG noise apart); hidden, it is as far as another text
    assert seen["probe"] > seen["decoy"] / 2, seen


async def test_a_secret_typed_into_a_field_is_not_in_the_screenshot():
    async with http_server(_form_app()) as base:
        _, files = await _failed_check(base, 0)

        async def typed(page, value: str) -> None:
            await page.goto(f"{base}/form")
            await page.fill("#user", value)

        _assert_hidden(await _likeness(files["screenshot.jpg"], typed))


async def test_a_secret_sent_by_a_get_form_is_in_no_encoding_in_the_har_nor_in_the_echoing_page():
    async with http_server(_form_app()) as base:
        _, files = await _failed_check(base, 1)

        async def echoed(page, value: str) -> None:
            await page.goto(f"{base}/login?user={quote_plus(value)}")

        seen = await _likeness(files["screenshot.jpg"], echoed)
    har = files["page.har"]
    urls = [e["request"]["url"] for e in json.loads(har)["log"]["entries"]]
    assert any(u.endswith("/login?user=<redacted>") for u in urls), urls  # the request is there, redacted
    forms = {SECRET, quote(SECRET), quote(SECRET, safe=""), quote_plus(SECRET), quote_plus(SECRET, safe="/")}
    forms |= {re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in forms}
    assert [f for f in sorted(forms) if f.encode() in har] == []
    _assert_hidden(seen)
