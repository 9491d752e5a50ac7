"""The browser worker: a separate process that drives one Chromium with Playwright, one check at a time.

    python -m agent.probes.browser.worker CHROMIUM_PATH

It answers on stdout, one JSON line per line read on stdin: first {"ready": version} (or {"fatal": why}),
then one result per job, carrying the job's id. An answer never exceeds the job's `answer_bytes` (the
agent's bound on a line): an artifact over `max_bytes`, or that would take the line past it, is left out
and named in `left_out`, and the check keeps its verdict. It runs apart from the agent so that a browser
that hangs or crashes can never stall the probe loop: the agent kills the whole process group when an
answer is late.

Every call into the page is bounded by the check's deadline: a page whose scripts never yield (the
renderer busy) fails as `timeout` like a page that never loads, and its context is closed. When even
that does not answer, the result is given and the worker exits; the agent starts a new one.

Each check gets a new browser context (no cookies, cache or storage from the previous one). `total` runs
from the navigation to the end of the check; the phases come from the page's Navigation Timing entry
(ttfb, DOMContentLoaded, load), the rest is the scripted actions and the wait for the expected selector;
the largest contentful paint is read from a PerformanceObserver.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from ...redact import MASK

# After the check's own timeout: the screenshot of a failed check, then closing its context (a hung
# renderer is killed by it). The agent waits for the answer this much longer than the timeout, and more.
ARTIFACT_SECONDS = 3.0
CLOSE_SECONDS = 5.0
ERROR_CHARS = 2000  # an error past this is cut: a URL in it can be megabytes long
LCP_SCRIPT = """window.__slaLcp = null;
try {
  new PerformanceObserver(list => { for (const e of list.getEntries()) window.__slaLcp = e.startTime; })
    .observe({type: "largest-contentful-paint", buffered: true});
} catch (e) {}"""
TIMING_SCRIPT = """() => {
  const n = performance.getEntriesByType("navigation")[0];
  return n ? {ttfb: n.responseStart, dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd, lcp: window.__slaLcp}
           : null;
}"""
# Before a screenshot: the secrets filled into the page, wherever the page shows them (a field, text it
# echoes, in shadow roots too), read as the mask. The page has these values already: it was given them.
HIDE_SCRIPT = """([secrets, mask]) => {
  const holds = t => secrets.some(x => t.includes(x));
  const hide = t => secrets.reduce((s, x) => s.split(x).join(mask), t);
  const visit = root => {
    for (const el of root.querySelectorAll("input, textarea")) if (holds(el.value)) el.value = hide(el.value);
    const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) if (holds(n.data)) n.data = hide(n.data);
    for (const el of root.querySelectorAll("*")) if (el.shadowRoot) visit(el.shadowRoot);
  };
  visit(document);
}"""
# Chromium's net errors -> the agent's error kinds (the rest are connect_error)
NET_ERRORS = (("ERR_NAME_NOT_RESOLVED", "dns"), ("ERR_NAME_RESOLUTION_FAILED", "dns"),
              ("ERR_CONNECTION_REFUSED", "connect_refused"), ("ERR_CONNECTION_TIMED_OUT", "connect_timeout"),
              ("ERR_CERT", "tls"), ("ERR_SSL", "tls"), ("ERR_BAD_SSL", "tls"),
              ("ERR_CONNECTION_RESET", "reset"), ("ERR_CONNECTION_CLOSED", "reset"), ("ERR_EMPTY_RESPONSE", "reset"),
              ("ERR_INVALID_RESPONSE", "protocol"), ("ERR_INVALID_HTTP_RESPONSE", "protocol"),
              ("ERR_TOO_MANY_REDIRECTS", "too_many_redirects"), ("ERR_TIMED_OUT", "timeout"))


class Failed(Exception):
    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


def emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def origin(url: str) -> tuple[str, str]:
    p = urlsplit(url)
    return p.scheme, p.netloc


def net_kind(message: str) -> str:
    return next((kind for code, kind in NET_ERRORS if code in message), "connect_error")


def first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


class Check:
    """One job: the page, the failures its own requests and scripts report, the timings."""

    def __init__(self, job: dict[str, Any], pw_error: type[Exception]) -> None:
        self.job = job
        self.pw_error = pw_error
        self.deadline = 0.0  # set when the navigation starts
        self.origin = origin(job["url"])
        self.failures: list[tuple[str, str]] = []
        self.main: Any = None
        self.folder = tempfile.mkdtemp(prefix="sla-browser-")
        self.har = os.path.join(self.folder, "page.har") if job["artifacts"] else None
        self.ctx: Any = None
        self.page: Any = None
        self.stuck = False  # the context would not close: the result is given, then the worker exits

    async def open(self, browser: Any) -> None:
        w, h = self.job["viewport"]
        self.ctx = await browser.new_context(viewport={"width": w, "height": h}, record_har_path=self.har,
                                             record_har_content="omit", service_workers="block")
        self.page = await self.ctx.new_page()
        await self.page.add_init_script(LCP_SCRIPT)
        self.page.on("pageerror", lambda err: self._failure("script_error", f"uncaught {err.name}: {err.message}"))
        self.page.on("response", self._response)
        self.page.on("requestfailed", self._request_failed)

    def _failure(self, kind: str, text: str) -> None:
        if kind in self.job["fail_on"] and len(self.failures) < 20:
            self.failures.append((kind, text))

    def _response(self, resp: Any) -> None:
        if resp.status >= 500 and origin(resp.url) == self.origin and resp.request != self.main:
            self._failure("resource_error", f"HTTP {resp.status} for {urlsplit(resp.url).path}")

    def _request_failed(self, req: Any) -> None:
        if origin(req.url) == self.origin and req != self.main:
            self._failure("resource_error", f"{req.failure} for {urlsplit(req.url).path}")

    async def bounded(self, call: Awaitable[Any], what: str, kind: str = "timeout") -> Any:
        """The call within what is left of the check's time; its errors as the agent's kinds."""
        try:
            async with asyncio.timeout(max(0.001, self.deadline - time.monotonic())):
                return await call
        except (TimeoutError, asyncio.TimeoutError):
            raise Failed(kind, f"{what} not done within {self.job['timeout']:g}s") from None
        except self.pw_error as exc:
            text = first_line(exc)
            if "Timeout" in type(exc).__name__:
                raise Failed(kind, f"{what} not done within {self.job['timeout']:g}s") from None
            raise Failed(net_kind(text) if what == "page load" else "assertion", f"{what}: {text}") from None

    async def run(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "", "error": "", "status": None, "timings": None, "address": ""}
        t0 = time.monotonic()
        self.deadline = t0 + self.job["timeout"]
        try:
            await self._navigate(out)
            self._fail_fast()
            for i, action in enumerate(self.job["actions"]):
                await self._act(i, action)
            await self._expect()
            self._fail_fast()
        except Failed as exc:
            out["kind"], out["error"] = exc.kind, str(exc)[:ERROR_CHARS]
        out["total"] = time.monotonic() - t0
        budget = Budget(self.job, out)
        await self._artifacts(out, budget)
        out["artifacts"], out["left_out"] = budget.kept, budget.left_out
        return out

    async def _navigate(self, out: dict[str, Any]) -> None:
        resp = await self.bounded(self.page.goto(self.job["url"], wait_until="load"), "page load")
        if resp is not None:
            self.main = resp.request
            out["status"] = resp.status
            addr = await self.bounded(resp.server_addr(), "page load")
            if addr:
                host = addr["ipAddress"]
                out["address"] = f"[{host}]:{addr['port']}" if ":" in host else f"{host}:{addr['port']}"
            if not 200 <= resp.status < 400:
                raise Failed("http_status", f"HTTP {resp.status} for the page")
        out["timings"] = await self.bounded(self.page.evaluate(TIMING_SCRIPT), "page scripts (busy renderer)")

    def _fail_fast(self) -> None:
        if self.failures:
            kind, text = self.failures[0]
            more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
            raise Failed(kind, text + more)

    async def _act(self, i: int, a: dict[str, str]) -> None:
        p, kind = self.page, a["kind"]
        calls = {"fill": lambda: p.fill(a["selector"], a["value"]), "click": lambda: p.click(a["selector"]),
                 "press": lambda: p.press(a["selector"], a["value"]),
                 "wait_for_selector": lambda: p.wait_for_selector(a["selector"], state="visible"),
                 "wait_for_url": lambda: p.wait_for_url(a["value"]),
                 "goto": lambda: p.goto(a["value"], wait_until="load")}
        await self.bounded(calls[kind](), f"action {i + 1} ({a['describe']})",
                           "timeout" if kind == "goto" else "assertion")

    async def _expect(self) -> None:
        sel = self.job["expect_selector"]
        try:
            await self.bounded(self.page.wait_for_selector(sel, state="visible"), f"{sel} visible", "assertion")
        except Failed:
            self._fail_fast()  # the resource or script that failed explains the missing element
            raise

    async def _artifacts(self, out: dict[str, Any], budget: Budget) -> None:
        """A screenshot and the HAR of a failed check, as the budget allows; the context is closed either way."""
        try:
            if out["kind"] and self.job["artifacts"]:
                try:
                    shot = await asyncio.wait_for(self._screenshot(), ARTIFACT_SECONDS)
                    budget.take("screenshot.jpg", len(shot), lambda: shot)
                except (TimeoutError, asyncio.TimeoutError, self.pw_error):
                    pass  # a hung renderer, or secrets that could not be hidden: the HAR still says what happened
            try:
                await asyncio.wait_for(self.ctx.close(), CLOSE_SECONDS)
            except (TimeoutError, asyncio.TimeoutError):
                self.stuck = True
            if out["kind"] and self.har and os.path.exists(self.har):
                har = Path(self.har)
                budget.take("page.har", har.stat().st_size, har.read_bytes)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    async def _screenshot(self) -> bytes:
        """The page as the check left it, the secret values filled into it out of sight: replaced wherever
        the page shows them, and the fields they were filled into covered."""
        fills = [a for a in self.job["actions"] if a.get("secret")]
        if fills:
            for frame in self.page.frames:
                await frame.evaluate(HIDE_SCRIPT, [[a["value"] for a in fills], MASK])
        return await self.page.screenshot(type="jpeg", quality=60,
                                          mask=[self.page.locator(a["selector"]) for a in fills])


class Budget:
    """What one answer may still carry: each file at most `max_bytes`, the whole line within `answer_bytes`.
    A file over either is left out unread (a page's HAR can be gigabytes), never the check's verdict."""

    SLACK = 512  # the id, the keys and the list of what was left out

    def __init__(self, job: dict[str, Any], out: dict[str, Any]) -> None:
        self.max_bytes = job["max_bytes"]
        self.left = job["answer_bytes"] - len(json.dumps(out)) - self.SLACK
        self.kept: list[dict[str, str]] = []
        self.left_out: list[dict[str, Any]] = []

    def take(self, name: str, size: int, read: Callable[[], bytes]) -> None:
        cost = 4 * -(-size // 3) + len(name) + 32  # base64, quoted, with its keys
        if size > self.max_bytes or cost > self.left:
            self.left_out.append({"name": name, "bytes": size})
            return
        self.left -= cost
        self.kept.append({"name": name, "data": base64.b64encode(read()).decode()})


async def serve(executable: str) -> int:
    try:
        from playwright.async_api import Error, async_playwright
    except ImportError:
        emit({"fatal": "browser checks need the Python package playwright: pip install 'sla-agent[browser]'"})
        return 3
    async with async_playwright() as pw:
        try:
            browser = await pw.chromium.launch(executable_path=executable, args=["--disable-gpu", "--mute-audio"])
        except Error as exc:
            emit({"fatal": f"Chromium ({executable}) did not start: {first_line(exc)}"})
            return 3
        emit({"ready": browser.version})
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            job = json.loads(line)
            check = Check(job, Error)
            try:
                await check.open(browser)
                emit({"id": job["id"], **await check.run()})
            except Error as exc:  # the browser itself failed: the agent starts a new worker
                emit({"id": job["id"], "fatal": f"browser failure: {first_line(exc)}"})
                return 4
            if check.stuck:
                return 4
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(serve(sys.argv[1])))
