"""The daemon's faces: the read-only view the status page reads (export/status.StatusSource), and what
the HTTP endpoints serve beyond /metrics and /api/v1/status (Served)."""
from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from functools import partial
from pathlib import Path
from typing import Any

from .calendar import Calendar
from .config import Config
from .export import extracts, workers
from .export.page import render_page
from .export.status import status_document
from .report import build_report, render
from .report.archive import Archive
from .report.history import page_history
from .report.sources import serve_ledger
from .report.witnessed import make_for_agent
from .slo import Snapshot
from .store.extract import Cancel
from .timeutil import parse_day, parse_month

class AgentView:
    """What the status page may see of the agent: its config and calendar, the latest snapshot, each
    target's state, and its own health."""

    def __init__(self, agent: Any) -> None:  # the app's Agent (typed loosely: the app imports this module)
        self._agent = agent

    @property
    def cfg(self) -> Config:
        return self._agent.cfg

    @property
    def cal(self) -> Calendar:
        return self._agent.cal

    @property
    def snapshot(self) -> Snapshot | None:
        return self._agent.snapshot

    def now(self) -> float:
        return self._agent.clock.time()

    def last(self, target: str) -> Any:
        return self._agent.states.get(target)

    def redact(self, text: str) -> str:
        return self._agent.redact(text)

    def health(self) -> dict[str, Any]:
        a = self._agent
        flusher = a.flusher
        return {"agent": {"loop_lag_max_s": round(a.lag.max_lag, 6), "gc_pauses_over_bound": a.lag.gc_pauses,
                          "samples_dropped_too_old": a.ledger.dropped_old, "results_seen": a.pipeline.seen},
                "state": {"path": str(a.store.path) if a.store else None,
                          "write_failing": flusher.failing if flusher else False,
                          "last_error": flusher.last_error if flusher else None},
                # per channel, the last closed month's delivery (reports.deliver): sent, retrying or failed
                "delivery": a.delivery.status() if a.delivery is not None else {}}


class Served:
    """Reports, journal, artifacts, ledger extracts and the status page, each read after a flush (what
    memory holds is on disk first) in a worker thread."""

    def __init__(self, agent: Any) -> None:  # the app's Agent
        self._agent = agent
        self._page_report: tuple[str, float, dict, dict] | None = None  # (month, built at, report, history)
        self._extracts = workers.pool(extracts.MAX_EXTRACTS, "sla-extract")
        self.archive = Archive(agent.state_dir)  # the closed months, served at /reports

    def span(self, kind: str, value: str) -> tuple[float, float]:
        """The bounds of a month (YYYY-MM) or of the 7-day period beginning on a day (YYYY-MM-DD), in the
        contract's calendar. Raises ValueError."""
        cal = self._agent.cal
        if kind == "month":
            return cal.month_bounds(*parse_month(value))
        start = cal.local_epoch(parse_day(value), dt.time(0))
        if cal.period_bounds(start)[0] != start:
            raise ValueError(f"{value!r} is not the first day of a 7-day period")
        return cal.period_bounds(start)

    async def report_json(self, month: str) -> dict:
        a = self._agent
        month = month or "{:04d}-{:02d}".format(*a.cal.month_of(a.clock.time()))
        await a.flush()
        return await asyncio.to_thread(build_report, a.cfg, a.state_dir, month, a.clock.time())

    async def report_html(self, month: str) -> str:
        return render(await self.report_json(month), "html")

    async def journal(self, target: str, service: str, start: float, end: float, limit: int) -> list:
        a = self._agent
        names = [t.name for t in a.cfg.all_targets if (not target or t.name == target)
                 and (not service or t.service == service)]
        await a.flush()
        return await asyncio.to_thread(a.store.journal, names, start, end, limit=limit)

    async def artifact(self, sha256: str) -> tuple[str, bytes] | None:
        await self._agent.flush()
        return await asyncio.to_thread(self._agent.store.artifact, sha256)

    async def ledger(self, start: float, end: float, journal: str, folder: Path,
                     cancel: Cancel) -> tuple[Path, dict[str, str]]:
        """In a thread of the extracts' own: the flushes' threads (asyncio's default pool) stay free."""
        a = self._agent
        need, free = extracts.SPACE_FACTOR * a.store.size() + extracts.SPACE_RESERVE, shutil.disk_usage(folder).free
        if free < need:
            raise extracts.NoSpace(f"{free >> 20} MiB free for temporary files in {folder.parent}; an extract of "
                                   f"this ledger may take {need >> 20} MiB: free some, or point TMPDIR elsewhere")
        await a.flush()
        return await asyncio.get_running_loop().run_in_executor(
            self._extracts, partial(serve_ledger, a.store, start, end, a.cfg, folder, journal, cancel))

    async def checkpoint(self) -> tuple[str | None, str]:
        """The chain's signed checkpoint now (what the witnesses get), or (None, why not)."""
        a = self._agent
        if not a.cfg.evidence.signing_key_file:
            return None, "the agent has no signing key (evidence.signing_key_file)"
        await a.flush()
        return await asyncio.to_thread(make_for_agent, a.store.path, a.cfg.evidence.signing_key_file,
                                       a.cfg.agent.location, a.clock.time())

    def close(self) -> None:
        self._extracts.shutdown(wait=False, cancel_futures=True)

    async def page(self) -> str:
        """The status page; the month's report in it is rebuilt at most once a minute (it reads the month)."""
        a = self._agent
        now = a.clock.time()
        month = "{:04d}-{:02d}".format(*a.cal.month_of(now))
        if self._page_report is None or self._page_report[0] != month or now - self._page_report[1] > 60:
            report = await self.report_json(month)  # flushes: the history reads what it flushed
            self._page_report = (month, now, report,
                                 await asyncio.to_thread(page_history, a.cfg, a.state_dir, now))
        upcoming = [w for w in a.cal.windows(now, now + 8 * 86400) if w.kind == "maintenance" and w.end > now]
        nxt = upcoming[0].to_dict(a.cal.tz) if upcoming else None
        closed = await asyncio.to_thread(self._last_closed)
        status = status_document(AgentView(a))  # the live state, read on the loop that keeps it
        # a month of strips for many targets is hundreds of kB of markup: written beside the loop, not on it
        return await asyncio.to_thread(render_page, status, self._page_report[2], nxt, closed, self._page_report[3])

    def _last_closed(self) -> tuple[str, str] | None:
        """The last closed month and its latest revision, for the status page's link."""
        months = self.archive.months()
        latest = self.archive.latest(months[0]) if months else None
        return None if latest is None else (latest.month, latest.name)
