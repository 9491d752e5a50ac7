"""The monthly report over several locations: the same document as one agent's, its availability from
the slices the `locations` rule combines (slo/locations.py), its latency read per location and decided
as `contract.locations.latency_locations` says, plus each location's own figures, the unconfirmed
minutes, and each location's evidence."""
from __future__ import annotations

import contextlib
import hashlib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .. import __version__
from ..calendar import Calendar, iso
from ..config.model import Config
from ..ledger import DTYPE, nfields
from ..probes import CONTROL_SERVICE
from ..slo import MonthContext, context, objectives_of, rounded
from ..slo.locations import LocationsMonth
from ..slo.verdict import INSUFFICIENT, MET, MISSED, NO_DATA
from ..store import Store
from ..store.extract import JOURNAL_PARTS
from ..timeutil import parse_month
from . import sections
from .build import ReportError, StoreView, cutoff
from .evidence import evidence_hash, report_hash
from .sources import Location, open_locations

FAVOURABLE = {MET: 3, INSUFFICIENT: 2, NO_DATA: 1, MISSED: 0}  # to the vendor
FAILURES = JOURNAL_PARTS["failures"]  # the journal records a report over locations reads and hashes: a pull
# of the failures only (sources.pull) and the whole ledger file give the same report


class PooledView:
    """Every location's requests as one population: minute counts summed, digests side by side."""

    def __init__(self, views: Sequence[StoreView]) -> None:
        self.views = views

    def matrix(self, target: str, m0: int, m1: int) -> np.ndarray:
        out = np.zeros((max(0, m1 - m0), self.views[0].nf), dtype=DTYPE)
        for v in self.views:
            out += v.matrix(target, m0, m1)
        return out

    def digests(self, target: str, start: float, end: float) -> list:
        return [d for v in self.views for d in v.digests(target, start, end)]


PULL_MARGIN = 8 * 86400  # 7-day periods that straddle the month's edges are read whole


def pull_span(cfg: Config, month: str, now: float) -> tuple[float, float]:
    start, end = Calendar(cfg.contract).month_bounds(*parse_month(month))
    return start - PULL_MARGIN, min(end + PULL_MARGIN, now + 60.0)


@contextlib.contextmanager
def opened(cfg: Config, specs: list[str], local_dir: str | None, month: str, now: float,
           ca_file: str | None = None, journal: str = "failures") -> Iterator[list[Location]]:
    """The locations named NAME=URL|PATH (and the local ledger as `agent.location`), pulled or read for
    the month and the 7-day periods at its edges; closed and removed on leaving."""
    try:
        span = pull_span(cfg, month, now)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="sla-locations-") as tmp:
        locations = open_locations(cfg, specs, local_dir, span, Path(tmp), ca_file, journal)
        try:
            yield locations
        finally:
            for loc in locations:
                loc.store.close()


def report_over(cfg: Config, specs: list[str], local_dir: str | None, month: str, now: float,
                ca_file: str | None = None, sign: bool = True) -> tuple[dict[str, Any], list[Location]]:
    """The report over the locations; returns the document and the locations (their stores closed) with
    what each agent said of its ledger."""
    with opened(cfg, specs, local_dir, month, now, ca_file) as locations:
        return build_locations(cfg, locations, month, now, sign), locations


def build_locations(cfg: Config, locations: Sequence[Location], month: str, now: float,
                    sign: bool = True) -> dict[str, Any]:
    """The report of `month` over `locations` as of `now`."""
    try:
        year, mon = parse_month(month)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    c = cfg.contract
    cal = Calendar(c, _declared(locations))
    start, end = cal.month_bounds(year, mon)
    until = min(cutoff(cfg, now), end)
    windows = cal.windows(start, end)
    declared = [w for w in windows if w.source != "weekly"]
    with ThreadPoolExecutor(max_workers=len(locations), thread_name_prefix="sla-evidence") as pool:
        # each hash reads the month's rows inside SQLite, without the GIL: it runs beside the figures
        hashes = {loc.name: pool.submit(_location_hash, loc, cfg, (start, end), until, declared) for loc in locations}
        lm, parts = _figures(cfg, cal, locations, (year, mon, start, end, now, until))
        doc = _document(cfg, cal, lm, parts, windows, (now, until, end), [loc.store for loc in locations])
        digests = {name: f.result() for name, f in hashes.items()}
    doc["evidence"] = _evidence(doc, locations, digests, cfg, cal, (start, end), until, now, sign)
    return doc


def _figures(cfg: Config, cal: Calendar, locations: Sequence[Location],
             month: tuple) -> tuple[LocationsMonth, list[dict[str, Any]]]:
    """The month at each location, combined by the locations rule, and each objective's part of the report."""
    c = cfg.contract
    nf = nfields(c.thresholds)
    tickets = locations[0].store.tickets
    until = month[-1]
    views = {loc.name: StoreView(loc.store, nf, until) for loc in locations}
    months = {n: MonthContext(context(v, cfg, cal, tickets=tickets), *month) for n, v in views.items()}
    controls = tuple(t.name for t in cfg.controls if t.service == CONTROL_SERVICE)
    lm = LocationsMonth(months, controls, c.min_agree)
    pooled = MonthContext(context(PooledView(list(views.values())), cfg, cal, tickets=tickets), *month)
    parts = [_latency(o, lm, pooled, c.latency_locations) if o.kind == "latency" else o.month(lm)
             for o in objectives_of(c)]
    return lm, parts


def _document(cfg: Config, cal: Calendar, lm: LocationsMonth, parts: list[dict[str, Any]], windows: list,
              times: tuple[float, float, float], stores: list) -> dict[str, Any]:
    now, until, end = times
    c = cfg.contract
    return {
        "month": f"{lm.year:04d}-{lm.month:02d}", "timezone": c.timezone, "generated_at": iso(now, cal.tz),
        "complete": until >= end, "agent_version": __version__,
        "rows": sorted((p["row"] for p in parts), key=lambda r: r["row"]),
        "periods": [period for p in parts for period in p.get("periods", ())],
        "incidents": sorted((i for s in cfg.services for i in sections.incidents(lm.service(s), stores,
                                                                                   owners=cfg.evidence.path.owners)),
                            key=lambda i: (i["start"], i["service"])),
        "maintenance": [w.to_dict(cal.tz) for w in windows if w.kind == "maintenance"],
        "exclusions": [w.to_dict(cal.tz) for w in windows if w.kind == "exclusion"],
        "coverage": {"floor": c.coverage_floor,
                     "services": {s: sections.coverage(lm.service(s)) for s in cfg.services}},
        "tickets": {prio: t for p in parts for prio, t in p.get("tickets", {}).items()},
        "daily": {s: sections.daily(lm.service(s)) for s in cfg.services},
        "unconfirmed": _unconfirmed(lm, cfg.services, cal),
        "locations": _per_location(lm, parts, cfg.services, len(stores)),
        "readings": {**sections.readings(cfg), "locations": _reading(c.min_agree, len(stores),
                                                                     c.latency_locations)},
    }


def _location_hash(loc: Location, cfg: Config, span: tuple[float, float], until: float,
                   declared: list) -> tuple[str, int]:
    """The hash of the rows the report reads from one location, over a connection of its own (the
    figures read the same store meanwhile)."""
    store = Store(loc.store.path.parent, thresholds=cfg.contract.thresholds, readonly=True)
    try:
        return evidence_hash(store, sorted(t.name for t in cfg.all_targets), span[0], until, store.tickets(*span),
                             declared, FAILURES)
    finally:
        store.close()


def _declared(locations: Sequence[Location]) -> list:
    """Windows declared at any location (maintenance add): each counts once."""
    seen: dict[tuple, Any] = {}
    for loc in locations:
        for _, w in loc.store.windows():
            seen.setdefault((w.kind, w.start, w.end, w.reason), w)
    return list(seen.values())


def _latency(o: Any, lm: LocationsMonth, pooled: MonthContext, mode: str) -> dict[str, Any]:
    """Per period, the location `mode` says decides: best (the most favourable to the vendor, so that a
    claimed miss holds on the vendor's own terms), each (the least), or pooled (all requests as one)."""
    if mode == "pooled":
        periods = [{**p, "location": "pooled"} for p in o.periods(pooled)]
        return {"row": o.row_of(periods), "periods": periods}
    per = {loc: o.periods(mc) for loc, mc in lm.months.items()}
    chosen = []
    for i, first in enumerate(next(iter(per.values()))):
        seen = [(loc, ps[i]) for loc, ps in per.items() if ps[i]["count"]]
        if not seen:
            chosen.append({**first, "location": None})
            continue
        pick = max if mode == "best" else min
        loc, p = pick(seen, key=lambda lp: (FAVOURABLE[lp[1]["verdict"]],
                                            tuple(b["fraction"] or 0.0 for b in lp[1]["below"].values())))
        chosen.append({**p, "location": loc})
    return {"row": o.row_of(chosen), "periods": chosen, "by_location": per}


def _unconfirmed(lm: LocationsMonth, services: Sequence[str], cal: Calendar) -> list[dict[str, Any]]:
    out = []
    for s in services:
        sm = lm.service(s)
        for a, b, seen in sm.unconfirmed_runs():
            out.append({"service": s, "start": iso((sm.m0 + a) * 60.0, cal.tz), "end": iso((sm.m0 + b) * 60.0, cal.tz),
                        "minutes": b - a, "locations": seen})
    return sorted(out, key=lambda u: (u["start"], u["service"]))


def _per_location(lm: LocationsMonth, parts: list[dict[str, Any]], services: Sequence[str],
                  n: int) -> dict[str, Any]:
    latency = {p["row"]["service"]: p.get("by_location", {}) for p in parts if p["row"]["measure"] == "latency"}
    out: dict[str, Any] = {"names": list(lm.months), "min_agree": max(1, min(lm.min_agree, n)), "by_location": {}}
    for loc in lm.months:
        entry: dict[str, Any] = {"availability": {}, "latency": {}, "daily": {}}
        for s in services:
            sm = lm.service(s).locations[loc]
            a = sm.availability(0.0)
            entry["availability"][s] = {"ratio": rounded(a.ratio), "coverage": rounded(a.coverage),
                                        "slices": {"up": a.up, "down": a.down, "unknown": a.unknown}}
            entry["daily"][s] = [{"date": day.isoformat(), "down_minutes": int(c[1]), "unknown_minutes": int(c[2])}
                                 for day, c in sm.days()]
        for s, per in latency.items():
            entry["latency"][s] = [{"start": p["start"], "end": p["end"], "count": p["count"], "verdict": p["verdict"],
                                    "below": {k: b["fraction"] for k, b in p["below"].items()}}
                                   for p in per.get(loc, [])]
        out["by_location"][loc] = entry
    return out


def _reading(min_agree: int, n: int, latency: str) -> str:
    need = max(1, min(min_agree, n))
    return (f"{n} locations; a slice is down when at least {need} of them saw it down (contract.locations.min_agree "
            f"{min_agree}), up when one saw it up and fewer than {need} down; seen down by fewer than {need} and up "
            f"by none it is unconfirmed: listed, counted neither way, lowering coverage; a location whose control "
            f"checks all failed in a minute does not vote. Latency per period: {latency} "
            + {"best": "(the location most favourable to the vendor decides)",
               "each": "(the location least favourable to the vendor decides)",
               "pooled": "(every location's requests as one population)"}[latency])


def _evidence(doc: dict[str, Any], locations: Sequence[Location], digests: dict[str, tuple[str, int]], cfg: Config,
              cal: Calendar, span: tuple[float, float], until: float, now: float, sign: bool) -> dict[str, Any]:
    """Each location's evidence (the hash of the rows it gave the report, its chain head), and over them
    the report's own block: ledger_sha256 is the hash of the locations' hashes, in order. Where a ledger
    came from (pulled or read) is not part of the document: the same rows give the same report."""
    per = {}
    combined = hashlib.sha256()
    rows = 0
    targets = sorted(t.name for t in cfg.all_targets)
    for loc in locations:
        digest, n = digests[loc.name]
        head = loc.store.chain_head()
        per[loc.name] = {"ledger_sha256": digest, "rows_hashed": n,
                         "chain": None if head is None else {"seq": head["seq"], "link": head["link"],
                                                             "at": iso(head["at"], cal.tz)}}
        combined.update(f"{loc.name}|{digest}|".encode())
        rows += n
    block = {"algorithm": "sha256", "ledger_sha256": combined.hexdigest(), "rows_hashed": rows, "targets": targets,
             "range": [iso(span[0], cal.tz), iso(until, cal.tz)], "until_epoch": until, "generated_epoch": now,
             "cutoff": iso(until, cal.tz), "chain": None, "locations": per, "report_sha256": report_hash(doc)}
    if sign and cfg.evidence.signing_key_file:
        from . import signing

        key = signing.load_private(cfg.evidence.signing_key_file)
        block["signature"] = signing.sign(signing.canonical({**doc, "evidence": block}), key)
    return block
