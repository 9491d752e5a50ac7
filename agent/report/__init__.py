"""The monthly SLA report: the contract's six rows filled from the stored ledger, with the evidence.

build_report() returns the JSON document (INTERFACE.md keys); render.py turns it into text, Markdown,
HTML or CSV. The same document is served at /api/v1/report.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib
from typing import Any

import numpy as np

from .. import __version__
from ..calendar import Calendar, iso
from ..config.model import Config
from ..ledger import DTYPE
from ..slo import (INSUFFICIENT, MET, MISSED, NO_DATA, S_DOWN, S_UNKNOWN, availability, combine, combine_verdicts,
                   latency, service_states, slice_states, threshold_label)
from ..store import Store, StoreError
from .tickets import PRIORITIES, summarize

ROW_SERVICES = {1: "web", 2: "api"}
CDF_POINTS = tuple(round(x, 4) for x in np.geomspace(0.01, 5.0, 40))


class ReportError(Exception):
    pass


class StoreView:
    """The SLO engine's ledger view over the database (reports read stored rows only)."""

    def __init__(self, store: Store, nf: int, until: float) -> None:
        self.store, self.nf, self.until = store, nf, until

    def matrix(self, target: str, m0: int, m1: int) -> np.ndarray:
        cut = min(m1, max(m0, int(self.until // 60)))  # nothing after the report's "now"
        return _pad(self.store.matrix(target, m0, cut, self.nf), m1 - m0)

    def digests(self, target: str, start: float, end: float):
        return self.store.digests(target, start, min(end, self.until))


def _pad(m: np.ndarray, n: int) -> np.ndarray:
    if len(m) >= n:
        return m
    out = np.zeros((n, m.shape[1]), dtype=DTYPE)
    out[:len(m)] = m
    return out


def _month(month: str) -> tuple[int, int]:
    try:
        y, m = (int(x) for x in month.split("-"))
        dt.date(y, m, 1)
    except ValueError:
        raise ReportError(f"month must be YYYY-MM, got {month!r}") from None
    return y, m


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else round(float(x), nd)


def build_report(cfg: Config, state_dir: str, month: str, now: float) -> dict[str, Any]:
    try:
        store = Store(state_dir, thresholds=cfg.contract.thresholds, readonly=True)
    except StoreError as exc:
        raise ReportError(str(exc)) from None
    try:
        return _build(cfg, store, month, now)
    finally:
        store.close()


def _build(cfg: Config, store: Store, month: str, now: float) -> dict[str, Any]:
    y, m = _month(month)
    c = cfg.contract
    cal = Calendar(c, [w for _, w in store.windows()])
    tz = cal.tz
    start, end = cal.month_bounds(y, m)
    until = min(now, end)
    nf = 4 + len(c.thresholds)
    view = StoreView(store, nf, until)
    rows: list[dict[str, Any]] = []
    services: dict[str, Any] = {}
    daily: dict[str, list[dict[str, Any]]] = {}
    incidents: list[dict[str, Any]] = []
    coverage: dict[str, Any] = {}
    for svc in cfg.services:
        names = [t.name for t in cfg.targets_of(svc)]
        mode = c.policy(svc).combine
        a = availability(view, names, mode, cal, c, start, end, until)
        services[svc] = a
        daily[svc] = _daily(view, names, mode, cal, c, start, end, until)
        incidents.extend(_incidents(view, store, names, svc, mode, cal, c, start, until))
        coverage[svc] = {"ratio": _r(a.coverage), "observed_minutes": a.up + a.down,
                         "eligible_minutes": a.up + a.down + a.unknown, "unknown_minutes": a.unknown,
                         "masked_minutes": a.masked, "gaps": _gaps(view, names, mode, cal, c, start, until, tz)}
    for row, svc in ROW_SERVICES.items():
        a = services.get(svc)
        rows.append({
            "row": row, "service": svc, "measure": "availability",
            "description": f"{'Web interface' if svc == 'web' else 'API'}: monthly availability, 24/7, "
                           "maintenance and declared exclusions left out",
            "objective": c.availability_objective,
            "value": _r(a.ratio) if a else None,
            "verdict": a.verdict if a else NO_DATA,
            "details": a.to_dict() if a else None,
        })
    periods = []
    lat_services = [s for s in c.latency_services if s in cfg.services]
    for ps, pe in cal.periods_of_month(y, m):
        for svc in lat_services:
            names = [t.name for t in cfg.targets_of(svc)]
            lat = latency(view, names, cal, c, ps, pe, min(now, pe), coverage_targets_combine=c.policy(svc).combine)
            doc = {"service": svc, "start": iso(ps, tz), "end": iso(pe, tz),
                   "complete": now >= pe, **lat.to_dict()}
            doc["cdf"] = _cdf(view, names, ps, min(now, pe))
            periods.append(doc)
    lat_rows = [p for p in periods if p["service"] == "api"] or periods
    row3_value = {}
    for t in c.thresholds:
        fr = [p["below"][threshold_label(t)]["fraction"] for p in lat_rows if p["count"]]
        row3_value[threshold_label(t)] = min(fr) if fr else None
    rows.append({
        "row": 3, "service": "api", "measure": "latency",
        "description": "API response time per 7-day period: " + " and ".join(
            f"{o.ratio * 100:g} % of requests < {o.below * 1000:g} ms" if o.below < 1 else
            f"{o.ratio * 100:g} % of requests < {o.below:g} s" for o in c.latency_objectives),
        "objective": {threshold_label(o.below): o.ratio for o in c.latency_objectives},
        "value": row3_value,
        "verdict": combine_verdicts([p["verdict"] for p in lat_rows]),
        "details": {"periods": [{"start": p["start"], "end": p["end"], "verdict": p["verdict"]} for p in lat_rows],
                    "rule": "the month is met when every 7-day period overlapping it is met (worst period shown)"},
    })
    tickets = store.tickets(start, end)
    tsum = summarize(tickets, cfg, now)
    for i, prio in enumerate(PRIORITIES):
        s = tsum[prio]
        ratio = s["ratio"]
        if s["total"] == 0:
            verdict = NO_DATA
        elif ratio is None:
            verdict = INSUFFICIENT
        else:
            verdict = MET if ratio >= c.ticket_objective else MISSED
        rows.append({
            "row": 4 + i, "service": f"ticket_{prio}", "measure": "first_response",
            "description": f"Ticket {prio}: first response within {s['deadline_h']:g} business hours for "
                           f"{c.ticket_objective * 100:g} % of tickets",
            "objective": c.ticket_objective, "value": _r(ratio), "verdict": verdict,
            "details": {k: v for k, v in s.items() if k != "outcomes"},
        })
    windows = cal.windows(start, end)
    maintenance = [w.to_dict(tz) for w in windows if w.kind == "maintenance"]
    exclusions = [w.to_dict(tz) for w in windows if w.kind == "exclusion"]
    ev_targets = sorted(t.name for t in cfg.all_targets)
    digest, n = evidence_hash(store, ev_targets, start, until, tickets, [w for w in windows if w.source != "weekly"])
    doc: dict[str, Any] = {
        "month": f"{y:04d}-{m:02d}",
        "timezone": c.timezone,
        "generated_at": iso(now, tz),
        "complete": now >= end,
        "agent_version": __version__,
        "rows": sorted(rows, key=lambda r: r["row"]),
        "periods": periods,
        "incidents": sorted(incidents, key=lambda i: (i["start"], i["service"])),
        "maintenance": maintenance,
        "exclusions": exclusions,
        "coverage": {"floor": c.coverage_floor, "services": coverage},
        "tickets": {p: {**{k: v for k, v in tsum[p].items() if k != "outcomes"},
                        "list": [o.to_dict(tz) for o in tsum[p]["outcomes"]]} for p in PRIORITIES},
        "daily": daily,
        "readings": {
            "timezone": f"{c.timezone} (the annexe says 'GMT+1')",
            "period": {"iso_week": "ISO weeks, Monday 00:00 contract time", "month_start":
                       "days 1-7, 8-14, 15-21, 22-28, 29-end"}[c.period],
            "combine": {s: c.policy(s).combine for s in cfg.services},
            "slice": f"1-minute slices; down when >= {c.slice_down_ratio:g} of its probes are down; a slice touching a "
                     "maintenance or exclusion window is masked",
            "latency_population": "probes that sent a request and got any answer or timed out (a timeout counts as "
                                  "slower than every threshold); strict '<' on exact counts; quantiles from t-digests",
            "tickets": "first response = taken in charge by support; business hours "
                       f"{c.business_start:%H:%M}-{c.business_end:%H:%M} on working days, "
                       f"{c.holidays_country} public holidays excluded; a workaround changes the resolution delay, "
                       "not the response time",
            "coverage_floor": f"below {c.coverage_floor * 100:g} % observed time a row is insufficient_data",
        },
        "evidence": {"algorithm": "sha256", "ledger_sha256": digest, "rows_hashed": n, "targets": ev_targets,
                     "range": [iso(start, tz), iso(until, tz)], "until_epoch": until,
                     "generated_epoch": now},
    }
    doc["evidence"]["report_sha256"] = report_hash(doc)
    return doc


def report_hash(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k not in ("generated_at", "evidence")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def evidence_hash(store: Store, targets: list[str], start: float, until: float, tickets, windows) -> tuple[str, int]:
    """sha256 over exactly the stored rows the report reads: minute counts in [start, until), the
    digests of complete buckets, the tickets opened in the month and the declared windows."""
    h = hashlib.sha256()
    n = 0
    m0, m1 = int(start // 60), int(until // 60)
    with store._lock:
        for name in targets:
            for hour, blob, errors in store.conn.execute(
                    "SELECT m.hour, m.counts, m.errors FROM minutes m JOIN targets t ON t.id = m.target_id "
                    "WHERE t.name=? AND m.hour >= ? AND m.hour < ? ORDER BY m.hour",
                    (name, m0 // 60, -(-m1 // 60))):
                arr = np.frombuffer(zlib.decompress(blob), dtype=DTYPE).reshape(60, -1)
                lo, hi = max(hour * 60, m0) - hour * 60, min(hour * 60 + 60, m1) - hour * 60
                h.update(f"m|{name}|{hour}|{lo}|{hi}|{errors}|".encode())
                h.update(arr[lo:hi].tobytes())
                n += 1
            for s, span, data in store.conn.execute(
                    "SELECT d.start, d.span, d.data FROM digests d JOIN targets t ON t.id = d.target_id "
                    "WHERE t.name=? AND d.start >= ? AND d.start + d.span <= ? ORDER BY d.start, d.span",
                    (name, int(start) - 86400, int(until))):
                h.update(f"d|{name}|{s}|{span}|".encode())
                h.update(zlib.decompress(data))
                n += 1
    for t in tickets:
        h.update(f"t|{t.id}|{t.priority}|{t.opened_at}|{t.responded_at}|{t.workaround_at}|{t.resolved_at}|"
                 f"{t.closed_at}".encode())
        n += 1
    for w in windows:
        h.update(f"w|{w.kind}|{w.start}|{w.end}|{w.reason}".encode())
        n += 1
    return h.hexdigest(), n


def verify_report(cfg: Config, state_dir: str, doc: dict[str, Any]) -> list[str]:
    """Checks a JSON report against the stored ledger. Returns the mismatches (empty: verified)."""
    problems = []
    ev = doc.get("evidence") or {}
    if "month" not in doc or "ledger_sha256" not in ev or "generated_epoch" not in ev:
        raise ReportError("not an sla-agent JSON report (no month or evidence block)")
    if report_hash(doc) != ev.get("report_sha256"):
        problems.append("the report's content does not match its report_sha256: numbers were edited")
    try:
        store = Store(state_dir, thresholds=cfg.contract.thresholds, readonly=True)
    except StoreError as exc:
        raise ReportError(str(exc)) from None
    try:
        fresh = _build(cfg, store, doc["month"], float(ev["generated_epoch"]))
    finally:
        store.close()
    if fresh["evidence"]["ledger_sha256"] != ev["ledger_sha256"]:
        problems.append(f"the stored ledger rows differ from those the report was computed from "
                        f"(now {fresh['evidence']['ledger_sha256'][:16]}..., report "
                        f"{str(ev['ledger_sha256'])[:16]}...)")
    for key in ("rows", "periods", "incidents", "tickets"):
        if json.dumps(fresh.get(key), sort_keys=True) != json.dumps(doc.get(key), sort_keys=True):
            problems.append(f"`{key}` differs from what the stored ledger gives")
    return problems


# -- pieces ------------------------------------------------------------------------------------------------
def _daily(view, names, mode, cal: Calendar, c, start: float, end: float, until: float) -> list[dict[str, Any]]:
    out = []
    day = cal.local_date(start)
    t = start
    while t < end:
        nxt = cal.local_epoch(day + dt.timedelta(days=1), dt.time(0))
        if t < until:
            a = availability(view, names, mode, cal, c, t, nxt, until)
            out.append({"date": day.isoformat(), "ratio": _r(a.ratio), "down_minutes": a.down,
                        "masked_minutes": a.masked, "unknown_minutes": a.unknown})
        t, day = nxt, day + dt.timedelta(days=1)
    return out


def _cdf(view, names, start: float, end: float) -> list[list[float]]:
    ds = []
    for n in names:
        ds.extend(view.digests(n, start, end))
    ds = [d for d in ds if d.n_values > 0]
    if not ds:
        return []
    from fastdigest import merge_all

    m = merge_all(ds) if len(ds) > 1 else ds[0]
    return [[x, round(float(m.cdf(x)), 6)] for x in CDF_POINTS]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of the True runs."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def _incidents(view, store: Store, names, svc: str, mode: str, cal: Calendar, c, start: float,
               until: float) -> list[dict[str, Any]]:
    m0, m1 = int(start // 60), int(until // 60)
    if m1 <= m0:
        return []
    tz = cal.tz
    nomask = np.zeros(m1 - m0, dtype=bool)
    per_raw = {n: slice_states(view.matrix(n, m0, m1), nomask, c.slice_down_ratio) for n in names}
    raw = combine(list(per_raw.values()), mode) if per_raw else np.full(m1 - m0, S_UNKNOWN, dtype=np.int8)
    maint = cal.mask(m0, m1, ("maintenance",))
    excl = cal.mask(m0, m1, ("exclusion",))
    out = []
    for a, b in _runs(raw == S_DOWN):
        s, e = (m0 + a) * 60.0, (m0 + b) * 60.0
        during = None
        if maint[a:b].all():
            during = "maintenance"
        elif excl[a:b].all():
            during = "exclusion"
        elif (maint[a:b] | excl[a:b]).all():
            during = "maintenance+exclusion"
        counted = int((~(maint[a:b] | excl[a:b])).sum())
        kinds: dict[str, int] = {}
        down_targets = []
        for n, st in per_raw.items():
            if (st[a:b] == S_DOWN).any():
                down_targets.append(n)
                for k, v in store.error_kinds(n, s, e).items():
                    kinds[k] = kinds.get(k, 0) + v
        out.append({"service": svc, "start": iso(s, tz), "end": iso(e, tz), "duration_s": e - s,
                    "counted_minutes": counted, "during": during, "targets": sorted(down_targets),
                    "error_kinds": dict(sorted(kinds.items()))})
    return out


def _gaps(view, names, mode, cal: Calendar, c, start: float, until: float, tz) -> list[dict[str, Any]]:
    """Runs of unknown slices of 5 minutes or more (agent stopped, every probe inconclusive)."""
    m0, m1 = int(start // 60), int(until // 60)
    if m1 <= m0:
        return []
    st = service_states(view, names, mode, cal, m0, m1, c.slice_down_ratio)
    return [{"start": iso((m0 + a) * 60.0, tz), "end": iso((m0 + b) * 60.0, tz), "minutes": b - a}
            for a, b in _runs(st == S_UNKNOWN) if b - a >= 5]


__all__ = ["ReportError", "build_report", "verify_report"]
