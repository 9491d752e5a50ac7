"""The browser probe: hands a check to a worker of the pool and turns its answer into a result.

Phases are consecutive: ttfb (navigation to the first byte of the page), dom_content_loaded, load, and
interaction (the scripted actions and the wait for the expected selector); they sum to the duration.
A failed check keeps a screenshot (the secrets filled into the page hidden) and the HAR (headers and
cookies of secrets masked, the secrets redacted however a URL encodes them, bodies omitted),
at most `artifacts.per_hour` times an hour: in the journal, or as files under the state directory when
the journal is off.
"""
from __future__ import annotations

import asyncio

import base64
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable

from ...clock import Clock
from ...redact import MASK, SECRET_HEADER, Redactor, url_encoded
from ..base import DOWN, ERROR_KINDS, INCONCLUSIVE, UP, Capture, Detail, ProbeResult, Target, inconclusive
from .pool import BrowserPool, BrowserUnavailable, pool_for, release
from .spec import BrowserOptions

log = logging.getLogger("sla_agent.browser")
PHASES = ("ttfb", "dom_content_loaded", "load", "interaction")
FILES_KEPT = 200  # per target, when the journal is off: the oldest go first


class BrowserProbe:
    def __init__(self, target: Target, *, clock: Clock, redactor: Redactor | None = None,
                 capture: Capture | None = None, state_dir: str | None = None, browser_workers: int = 1,
                 **_: object) -> None:
        self.target = target
        self.o: BrowserOptions = target.options
        self.clock = clock
        self.redact = redactor or Redactor()
        self.capture = capture
        self.folder = Path(state_dir) / "artifacts" / target.name if capture is None and state_dir else None
        self.workers = browser_workers
        self._pool: BrowserPool | None = None
        self._hour, self._kept = -1, 0

    def _job(self, artifacts: bool) -> dict[str, Any]:
        o = self.o
        return {"url": o.url, "timeout": self.target.timeout, "expect_selector": o.expect_selector,
                "actions": [{"kind": a.kind, "selector": a.selector, "value": a.value, "describe": a.describe(),
                             "secret": a.kind == "fill" and self.redact(a.value) != a.value}  # hidden in shots
                            for a in o.actions],
                "fail_on": list(o.fail_on), "viewport": list(o.viewport), "artifacts": artifacts,
                "max_bytes": o.artifacts.max_bytes}

    def _artifacts_allowed(self, wall: float) -> bool:
        hour = int(wall // 3600)
        if hour != self._hour:
            self._hour, self._kept = hour, 0
        return self._kept < self.o.artifacts.per_hour and (self.capture is not None or self.folder is not None)

    async def run(self) -> ProbeResult:
        t = self.target
        if self._pool is None:
            self._pool = pool_for(self.o.executable_path, self.workers)
        async with self._pool.lease() as check:
            wall, mono = self.clock.time(), self.clock.monotonic()
            try:
                doc = await check(self._job(self._artifacts_allowed(wall)), t.timeout)
            except BrowserUnavailable as exc:
                return inconclusive(t.name, t.service, wall, mono, "agent_browser", self.redact(str(exc)))
        # decoding and redacting a HAR of megabytes, or writing it, takes a good part of a second: off the loop
        files = await asyncio.to_thread(self._keep, doc.get("artifacts", ()), doc.get("left_out", ()), wall)
        return self._result(doc, files, wall, mono)

    def _result(self, doc: dict[str, Any], files: tuple[tuple[str, bytes], ...], wall: float,
                mono: float) -> ProbeResult:
        t, kind = self.target, doc["kind"]
        total = max(doc["total"], t.timeout) if kind == "timeout" else doc["total"]
        outcome = UP if not kind else ERROR_KINDS.get(kind, DOWN)
        timings = doc.get("timings")
        return ProbeResult(
            target=t.name, service=t.service, started_at=wall, mono_start=mono, duration_s=total, outcome=outcome,
            error_kind=kind, status=doc.get("status"), phases=_phases(timings, total),
            latency_counted=(doc.get("status") is not None or kind == "timeout") and outcome != INCONCLUSIVE,
            error=self.redact(doc["error"]) if doc["error"] else "",
            detail=Detail(doc.get("address", ""), artifacts=files) if self.capture is not None else None,
            marks=(("lcp", timings["lcp"] / 1000),) if timings and timings.get("lcp") else (),
        )

    def _keep(self, raw: Any, left_out: Any, wall: float) -> tuple[tuple[str, bytes], ...]:
        """The artifacts, redacted and within the size bound: for the journal, or written to files."""
        for a in left_out:
            log.info("%s: %s of %d bytes left out: over artifacts.max_bytes or the answer's bound",
                     self.target.name, a["name"], a["bytes"])
        files = []
        for a in raw:
            data = base64.b64decode(a["data"])
            if a["name"].endswith(".har"):
                data = scrub_har(data, self.redact)
            if len(data) <= self.o.artifacts.max_bytes:
                files.append((a["name"], data))
        if files:
            self._kept += 1
        if files and self.folder is not None:
            write_files(self.folder, wall, files)
            return ()
        return tuple(files)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await release(pool)


def _phases(timings: dict[str, float] | None, total: float) -> tuple[float, ...] | None:
    """Navigation Timing marks (ms from the navigation's start) as consecutive intervals that sum to total."""
    if not timings:
        return None
    ttfb = max(0.0, timings["ttfb"] / 1000)
    dcl = max(0.0, (timings["dcl"] - timings["ttfb"]) / 1000)
    load = max(0.0, (timings["load"] - timings["dcl"]) / 1000)
    head = min(total, ttfb + dcl + load)
    scale = head / (ttfb + dcl + load) if ttfb + dcl + load > 0 else 0.0  # the browser's clock is not ours
    return (ttfb * scale, dcl * scale, load * scale, total - head)


def scrub_har(data: bytes, redact: Redactor) -> bytes:
    """Cookies and secret-looking headers masked, posted form data redacted, every text through the
    agent's redactor (the secrets of the config: a password filled into the page, say), and the secrets
    also as a URL or a form encodes them (a form sent with GET puts the password in the URL)."""
    encoded = re.compile("|".join(url_encoded(s) for s in redact.secrets)) if redact.secrets else None

    def clean(text: str) -> str:
        text = redact(text)
        return encoded.sub(MASK, text) if encoded else text

    try:
        har = json.loads(data)
        entries = har["log"]["entries"]
    except (ValueError, KeyError, TypeError):
        return clean(data.decode("utf-8", errors="replace")).encode()
    for e in entries:
        for part in (e.get("request", {}), e.get("response", {})):
            for h in part.get("headers", ()):
                if SECRET_HEADER.search(h.get("name", "")):
                    h["value"] = MASK
            for c in part.get("cookies", ()):
                c["value"] = MASK
        post = e.get("request", {}).get("postData")
        if isinstance(post, dict):
            post["text"] = MASK
            for p in post.get("params", ()):
                p["value"] = MASK
    return json.dumps(_texts(har, clean), ensure_ascii=False).encode()


def _texts(node: Any, clean: Callable[[str], str]) -> Any:
    """Every string of the HAR, decoded: a secret with a quote in it is escaped in the JSON text."""
    if isinstance(node, str):
        return clean(node)
    if isinstance(node, list):
        return [_texts(v, clean) for v in node]
    if isinstance(node, dict):
        return {k: _texts(v, clean) for k, v in node.items()}
    return node


def write_files(folder: Path, wall: float, files: list[tuple[str, bytes]]) -> None:
    """name -> FOLDER/20260310T100000Z-name; at most FILES_KEPT files in the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(wall))
    for name, data in files:
        (folder / f"{stamp}-{name}").write_bytes(data)
    kept = sorted(folder.iterdir())
    for old in kept[:max(0, len(kept) - FILES_KEPT)]:
        old.unlink(missing_ok=True)
