"""The month's close, beside the running agent: once a month has ended and its rows are final (the last
hour sealed), a last ticket fetch made when a feed is configured, and `reports.close_after` passed, the
month's revision is written into the archive (revision.py, archive.py), the chain's head time-stamped
first when time-stamping is configured, and the revision handed to `deliver`.

Nothing of it lives in memory only: what is closed is what the archive holds, what is handed over is
what its delivered.json says. An agent that stopped or was killed during a close closes again at its
next start (a half-built revision is removed and built anew), a month that ended while it was down is
closed then, and a revision written but not handed over is handed over then. A closed month whose
tickets or declared windows change gets a new revision beside the first."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..calendar import iso
from ..slo import seal_delay_of
from ..timeutil import parse_month
from .archive import Archive, Revision
from .child import in_child
from .revision import PdfRenderer, inputs_hash, render_pdf_lazily, write_revision

log = logging.getLogger("sla_agent.reports")
CHECK_EVERY = 300.0  # how often the close looks at the months (seconds of the agent's clock)
FEED_PATIENCE = 86400.0  # how long a failing ticket feed holds a close back


async def no_delivery(revision: Path, summary: dict[str, Any]) -> None:
    """No delivery configured: the revision stays in the archive, served at /reports."""


def summary_of(rev: Revision) -> dict[str, Any]:
    """What a delivery says of a revision (its metadata without the per-file hashes)."""
    meta = rev.meta()
    keep = ("month", "revision", "reason", "built_at", "complete", "verdicts", "pdf", "bundle", "signed", "changes",
            "ledger_sha256")
    return {**{k: meta[k] for k in keep if k in meta}, "path": str(rev.path), "files": rev.files()}


class MonthClose:
    """The close's loop over the agent (app.py's Agent, reached loosely as notify/witness.py does).
    `deliver(revision, summary)` is awaited once per revision; `pdf` is the PDF renderer (revision.py)."""

    deliver: Callable[[Path, dict[str, Any]], Awaitable[None]] = staticmethod(no_delivery)

    def __init__(self, agent: Any, pdf: PdfRenderer = render_pdf_lazily) -> None:
        self._agent, self.pdf = agent, pdf
        self._task: asyncio.Task[None] | None = None
        self._first: float | None = None  # the first hour the ledger held at the first look
        self._empty: set[str] = set()  # ended months without a row: nothing to close
        self._said: dict[str, str] = {}  # why each month waits, as last logged
        self._one = asyncio.Lock()  # one look at a time: a revision is handed over once

    @property
    def archive(self) -> Archive:
        return Archive(self._agent.state_dir)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="month-close")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        clock = self._agent.clock
        while True:
            try:
                await self.check()
            except Exception:  # noqa: BLE001 - a close that fails is tried again at the next look
                log.exception("the month's close failed; tried again in %g s", CHECK_EVERY)
            await clock.sleep_until(clock.monotonic() + CHECK_EVERY)

    async def check(self) -> list[Revision]:
        """One look: hands over what was written but not handed over, then closes (or rebuilds) the months
        that are due, oldest first; a month not ready yet holds back the ones after it."""
        async with self._one:
            return await self._look()

    async def _look(self) -> list[Revision]:
        for rev in await asyncio.to_thread(self.archive.undelivered):
            await self._hand_over(rev)
        written = []
        a = self._agent
        for month, reason in await asyncio.to_thread(self._due, a.clock.time()):
            notes = await self._ready(month)
            if notes is None:
                break
            rev = await in_child(write_revision, a.cfg, a.state_dir, month, a.clock.time(), self.archive,
                                 {"reason": reason, **notes}, self.pdf)
            log.info("%s closed: %s written (%s; PDF %s)", month, rev.path, reason, rev.meta().get("pdf"))
            self._said.pop(month, None)
            written.append(rev)
            await self._hand_over(rev)
        return written

    def _due(self, now: float) -> list[tuple[str, str]]:
        """The ended months with rows and no revision, and the closed ones whose inputs changed since
        (while their rows are kept: a month pruned away is not rebuilt)."""
        a = self._agent
        if self._first is None:
            held = a.store.hours_held(until=now)
            if held is None:
                return []
            self._first = held[0]
        out: list[tuple[str, str]] = []
        year, mon = a.cal.month_of(self._first)
        kept_from = now - a.cfg.agent.retention_days * 86400
        while (span := a.cal.month_bounds(year, mon))[1] <= now:
            month = f"{year:04d}-{mon:02d}"
            latest = self.archive.latest(month)
            if latest is None and month not in self._empty:
                if a.store.hours_held(*span) is None:
                    self._empty.add(month)
                else:
                    out.append((month, "month closed"))
            elif latest is not None and span[0] >= kept_from and \
                    latest.meta().get("inputs") != inputs_hash(a.cfg, a.store, month):
                out.append((month, "rebuilt: the month's tickets or declared windows changed"))
            year, mon = (year, mon + 1) if mon < 12 else (year + 1, 1)
        return out

    async def _ready(self, month: str) -> dict[str, Any] | None:
        """What the close notes when `month` can be closed now; None (the reason logged) when not yet."""
        a = self._agent
        start, end = a.cal.month_bounds(*parse_month(month))
        settled = end + max(a.cfg.reports.close_after, seal_delay_of(a.cfg))
        if a.clock.time() < settled:
            return self._wait(month, f"closes at {iso(settled, a.cal.tz)} at the earliest (reports.close_after, and "
                                     "the last hour sealed)")
        await a.flush()
        if found := await asyncio.to_thread(a.store.outside, start, end):
            return self._wait(month, "rows not sealed final yet: " + "; ".join(o.text(a.cal.tz) for o in found))
        notes: dict[str, Any] = {}
        fetched = await a.feed.fetch_now()
        if fetched is not None:
            notes["tickets_fetch"] = {"ok": fetched.ok, "reason": fetched.reason, "message": fetched.message,
                                      "tickets": fetched.tickets, "at": iso(a.clock.time(), a.cal.tz)}
            if not fetched.ok and a.clock.time() < settled + FEED_PATIENCE:
                return self._wait(month, f"the last ticket fetch failed ({fetched.reason}: {fetched.message}); "
                                         f"tried again in {CHECK_EVERY:g} s, for a day at most")
        if a.cfg.evidence.timestamping is not None:
            notes["timestamps"] = [dataclasses.asdict(r) for r in await a.stamping.stamp_now()]
        notes["inputs"] = await asyncio.to_thread(inputs_hash, a.cfg, a.store, month)
        return notes

    def _wait(self, month: str, why: str) -> None:
        if self._said.get(month) != why[:40]:  # once per reason, not at every look
            log.info("%s not closed yet: %s", month, why)
            self._said[month] = why[:40]
        return None

    async def _hand_over(self, rev: Revision) -> None:
        """Awaits the delivery, then notes it in the revision (once noted, never again)."""
        try:
            await self.deliver(rev.path, await asyncio.to_thread(summary_of, rev))
        except Exception:  # noqa: BLE001 - handed over again at the next look
            log.exception("%s/%s not handed over to its delivery; tried again in %g s", rev.month, rev.name,
                          CHECK_EVERY)
            return
        now = self._agent.clock.time()
        await asyncio.to_thread(Archive.mark_delivered, rev, {"handed_over_at": iso(now, self._agent.cal.tz),
                                                              "handed_over_epoch": now})
