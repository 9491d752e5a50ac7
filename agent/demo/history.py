"""A simulated previous month for `sla-agent demo`, so that a new user sees what the product is for (a
month's verdict against the contract) before the live month has any. Written into the demo's own
ledger the way the agent writes (hour rows of minute counts, hourly latency digests, imported tickets)
and marked simulated there: the report of that month says so in its readings.

The month holds what a real one would: short outages, one longer one, a maintenance window overrun by
20 minutes, a week whose slow tail misses the latency objective, and tickets of which some P2 were
answered late. Deterministic for a seed."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
from fastdigest import TDigest

from ..calendar import Calendar
from ..calendar.business import BusinessHours
from ..config import Config
from ..ledger import BELOW0_I, CENTROIDS, DOWN_I, DTYPE, HOUR, LAT_I, UP_I, nfields
from ..store import Store
from ..tickets import Ticket


@dataclass(frozen=True)
class Outage:
    service: str
    day: int  # of the month, 1-based
    start: str  # HH:MM, contract time
    minutes: int
    why: str


OUTAGES = (Outage("web", 6, "14:02", 35, "http_status"), Outage("web", 17, "09:15", 12, "timeout"),
           Outage("web", 23, "03:40", 3, "connect_refused"), Outage("api", 12, "22:10", 48, "http_status"),
           Outage("api", 27, "11:31", 4, "timeout"))
SLOW_DAYS = range(19, 26)  # the slow tail of one week: 98 % < 500 ms is missed there
MEDIAN_S = {"web": 0.25, "api": 0.12}


def previous_month(cal: Calendar, now: float) -> tuple[int, int]:
    y, m = cal.month_of(now)
    return (y - 1, 12) if m == 1 else (y, m - 1)


def write_history(cfg: Config, state_dir: str, now: float, seed: int = 7) -> str:
    """Writes the simulated previous month into the ledger in `state_dir` once; returns it as YYYY-MM."""
    cal = Calendar(cfg.contract)
    year, month = previous_month(cal, now)
    name = f"{year:04d}-{month:02d}"
    store = Store(state_dir, thresholds=cfg.contract.thresholds)
    try:
        if name in store.simulated_months():
            return name
        start, end = cal.month_bounds(year, month)
        down = _down_minutes(cal, year, month, start)
        rng = np.random.default_rng(seed)
        services = {t.name: t.service for t in cfg.all_targets}
        for t in cfg.all_targets:
            per_minute = max(1, round(60 / t.interval))
            hours, digests = _target_month(t.name, t.service, per_minute, (start, end), down, cfg, cal, rng)
            store.write(hours, digests, services, now=end)
        store.upsert_tickets(_tickets(cal, cfg, year, month))
        store.mark_simulated(name)
    finally:
        store.close()
    return name


def _down_minutes(cal: Calendar, year: int, month: int, start: float) -> dict[str, dict[int, str]]:
    """Per service, the epoch minutes it is down and why; the second Thursday's window is overrun."""
    out: dict[str, dict[int, str]] = {"web": {}, "api": {}}
    thursdays = [d for d in range(1, 29) if dt.date(year, month, d).weekday() == 3]
    overrun = [Outage(s, thursdays[1], "06:40", 100, "http_status") for s in ("web", "api")]
    for o in OUTAGES + tuple(overrun):
        hh, mm = (int(x) for x in o.start.split(":"))
        m0 = int(cal.local_epoch(dt.date(year, month, o.day), dt.time(hh, mm)) // 60)
        out[o.service].update({m: o.why for m in range(m0, m0 + o.minutes)})
    return out


def _target_month(target: str, service: str, per_minute: int, span: tuple[float, float],
                  down: dict[str, dict[int, str]], cfg: Config, cal: Calendar, rng: np.random.Generator):
    thresholds = cfg.contract.thresholds
    nf = nfields(thresholds)
    hours, digests = [], []
    for h in range(int(span[0] // HOUR), int(span[1] // HOUR)):
        slow = cal.local_date(h * HOUR).day in SLOW_DAYS and service == "api"
        lat = _latencies(rng, service, 60 * per_minute, slow)
        arr = np.zeros((60, nf), dtype=DTYPE)
        errors = {}
        for i in range(60):
            why = down.get(service, {}).get(h * 60 + i)
            arr[i, DOWN_I if why else UP_I] = per_minute
            if why:
                errors[str(i)] = {why: per_minute}
        minute_lat = lat.reshape(60, per_minute)
        arr[:, LAT_I] = per_minute
        for k, th in enumerate(thresholds):
            arr[:, BELOW0_I + k] = (minute_lat < th).sum(axis=1)
        hours.append((target, h, arr.tobytes(), json.dumps(errors, sort_keys=True) if errors else ""))
        digests.append((target, h * HOUR, HOUR, TDigest.from_values(lat.tolist(), max_centroids=CENTROIDS).to_bytes()))
    return hours, digests


def _latencies(rng: np.random.Generator, service: str, n: int, slow: bool) -> np.ndarray:
    lat = rng.lognormal(np.log(MEDIAN_S.get(service, 0.2)), 0.35, n)
    tail = rng.random(n)
    share = 0.035 if slow else 0.004
    lat[tail < share] = rng.uniform(0.55, 1.6, int((tail < share).sum()))
    return lat


def _tickets(cal: Calendar, cfg: Config, year: int, month: int) -> list[Ticket]:
    """Twelve tickets: P1 and P3 answered in time, one P2 of five late (80 % < 95 %)."""
    spec = [("P1", 3, "10:15", 2.5), ("P1", 14, "16:40", 6.0), ("P1", 21, "09:05", 1.0),
            ("P2", 2, "11:00", 7.0), ("P2", 8, "15:30", 20.0), ("P2", 13, "10:00", 31.0),
            ("P2", 20, "14:00", 12.0), ("P2", 24, "09:30", 3.0),
            ("P3", 5, "12:00", 30.0), ("P3", 10, "17:00", 25.0), ("P3", 16, "09:45", 39.0), ("P3", 22, "13:20", 8.0)]
    out, bh = [], BusinessHours(cfg.contract)
    for i, (prio, day, at, hours) in enumerate(spec, 1):
        d = dt.date(year, month, day)
        while d.weekday() >= 5:
            d += dt.timedelta(days=1)
        hh, mm = (int(x) for x in at.split(":"))
        opened = cal.local_epoch(d, dt.time(hh, mm))
        out.append(Ticket(f"SIM-{i:03d}", prio, opened, bh.deadline(opened, hours * 3600)))
    return out
