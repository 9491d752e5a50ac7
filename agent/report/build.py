"""The monthly SLA report as a JSON document: one row per objective of the contract's table, filled from
the stored ledger, with the sections behind them and the evidence. The same document is served at
/api/v1/report; formats/ renders it."""
from __future__ import annotations

import asyncio
import datetime as dt
import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..calendar import Calendar, iso
from ..config.model import Config
from ..ledger import DTYPE, nfields
from ..slo import MonthContext, context, objectives_of, settle_of
from ..store import Store, StoreError
from ..timeutil import parse_month
from . import sections
from .child import in_child, running_idle  # a new interpreter: multiprocessing's would run the caller's main module again
from .evidence import evidence_block


class ReportError(Exception):
    pass


class StoreView:
    """The SLO engine's ledger view over the database (reports read stored rows only, up to `until`)."""

    def __init__(self, store: Store, nf: int, until: float) -> None:
        self.store, self.nf, self.until = store, nf, until

    def matrix(self, target: str, m0: int, m1: int) -> np.ndarray:
        cut = min(m1, max(m0, int(self.until // 60)))  # nothing after the report's "now"
        m = self.store.matrix(target, m0, cut, self.nf)
        if len(m) >= m1 - m0:
            return m
        out = np.zeros((m1 - m0, self.nf), dtype=DTYPE)
        out[:len(m)] = m
        return out

    def digests(self, target: str, start: float, end: float):
        """Only digests closed by the cut-off: the open hour's keeps growing."""
        return self.store.digests(target, start, min(end, self.until), closed_by=self.until)


def cutoff(cfg: Config, now: float) -> float:
    """The last closed minute: nothing before it changes any more (slo.settle_of)."""
    return math.floor((now - settle_of(cfg)) / 60) * 60.0


def span_of(cfg: Config, month: str, now: float) -> tuple[float, float]:
    """The start of `month` and the end of what its report as of `now` reads (its last closed minute)."""
    start, end = Calendar(cfg.contract).month_bounds(*parse_month(month))
    return start, min(cutoff(cfg, now), end)


def open_store(cfg: Config, state_dir: str) -> Store:
    try:
        return Store(state_dir, thresholds=cfg.contract.thresholds, readonly=True)
    except StoreError as exc:
        raise ReportError(str(exc)) from None


def build_report(cfg: Config, state_dir: str, month: str, now: float) -> dict[str, Any]:
    store = open_store(cfg, state_dir)
    try:
        return build(cfg, store, month, now)
    finally:
        store.close()


def build_apart(cfg: Config, folder: Path, month: str, now: float, sign: bool = True) -> Future[dict[str, Any]]:
    """build() over the ledger in `folder`, read-only, in a process of its own: a month's report is seconds of
    Python, which the checks of a bundle (or its journal's pass) can run beside on another core."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="sla-build")
    try:
        return pool.submit(asyncio.run, in_child(_build_in, cfg, folder, month, now, sign, idle=running_idle()))
    finally:
        pool.shutdown(wait=False)  # the future keeps its thread until it is done


def _build_in(cfg: Config, folder: Path, month: str, now: float, sign: bool) -> dict[str, Any]:
    store = Store(folder, thresholds=cfg.contract.thresholds, readonly=True)
    try:
        return build(cfg, store, month, now, sign)
    finally:
        store.close()


def build(cfg: Config, store: Store, month: str, now: float, sign: bool = True) -> dict[str, Any]:
    """The report of `month` as of `now`; signed when a signing key is configured and `sign` is on."""
    try:
        year, mon = parse_month(month)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    c = cfg.contract
    cal = Calendar(c, [w for _, w in store.windows()])
    start, end = cal.month_bounds(year, mon)
    until = span_of(cfg, month, now)[1]
    ctx = context(StoreView(store, nfields(c.thresholds), until), cfg, cal, tickets=store.tickets)
    mc = MonthContext(ctx, year, mon, start, end, now, until)
    parts = [o.month(mc) for o in objectives_of(c)]
    windows = cal.windows(start, end)
    doc: dict[str, Any] = {
        "month": f"{year:04d}-{mon:02d}",
        "timezone": c.timezone,
        "generated_at": iso(now, cal.tz),
        "complete": until >= end,
        "agent_version": __version__,
        "rows": sorted((p["row"] for p in parts), key=lambda r: r["row"]),
        "periods": [period for p in parts for period in p.get("periods", ())],
        "incidents": sorted((i for s in cfg.services for i in sections.incidents(mc.service(s), [store],
                                                                                  cfg.agent.location,
                                                                                  cfg.evidence.path.owners)),
                            key=lambda i: (i["start"], i["service"])),
        "maintenance": [w.to_dict(cal.tz) for w in windows if w.kind == "maintenance"],
        "exclusions": [w.to_dict(cal.tz) for w in windows if w.kind == "exclusion"],
        "coverage": {"floor": c.coverage_floor, "services": {s: sections.coverage(mc.service(s)) for s in cfg.services}},
        "tickets": {prio: t for p in parts for prio, t in p.get("tickets", {}).items()},
        "daily": {s: sections.daily(mc.service(s)) for s in cfg.services},
        "readings": sections.readings(cfg),
    }
    simulated = store.simulated_months()
    if doc["month"] in simulated:
        doc["readings"]["data"] = ("SIMULATED: these figures were written by `sla-agent demo` to show a month's "
                                   "verdict; nothing was measured")
    _mark_simulated_days(doc["periods"], set(simulated) - {doc["month"]})
    doc["evidence"] = evidence_block(doc, store, cfg, cal, (start, end), until, now,
                                     [w for w in windows if w.source != "weekly"], sign)
    return doc


def _mark_simulated_days(periods: list[dict[str, Any]], simulated: set[str]) -> None:
    """A period read in full across a month's edge holds the other month's days: when that month was
    simulated, the period says so (its figures mix what was measured with what was not)."""
    for p in periods:
        first = dt.datetime.fromisoformat(p["start"])
        last = dt.datetime.fromisoformat(p["end"]) - dt.timedelta(microseconds=1)
        months = sorted({f"{d:%Y-%m}" for d in (first, last)} & simulated)
        if months:
            p["simulated"] = months
