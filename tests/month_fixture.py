"""A synthetic, deterministic month (February 2026, +01:00) written through the real ledger and store:
Thursday maintenance, an outage inside it and outages outside it, an exclusion window, an agent gap,
a slow week, and tickets."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from agent.calendar import Calendar
from agent.config import parse_config
from agent.ledger import Ledger
from agent.probes import ProbeResult
from agent.tickets import parse_export
from agent.store import Store

CONFIG = """
agent: {state_dir: "./unused"}
contract:
  timezone: "+01:00"
  maintenance:
    - weekly: {day: thursday, start: "06:00", end: "08:00", reason: "weekly maintenance (annexe 2)"}
  exclusions:
    - {start: "2026-02-09T22:00:00+01:00", end: "2026-02-09T23:30:00+01:00", reason: "ISP outage (transit provider), case 4411"}
targets:
  - {name: web-ui, service: web, url: "https://app.example.invalid/", interval: 30s, timeout: 10s}
  - {name: api-health, service: api, url: "https://api.example.invalid/health", interval: 30s, timeout: 5s}
"""

TICKETS = """id,priority,opened_at,responded_at,workaround_at,resolved_at
T-1,P1,2026-02-06T17:30:00+01:00,2026-02-09T10:00:00+01:00,,
T-2,P1,2026-02-20T10:05:00+01:00,2026-02-23T16:00:00+01:00,2026-02-23T17:00:00+01:00,
T-3,P2,2026-02-10T08:00:00+01:00,2026-02-11T11:00:00+01:00,,2026-02-12T09:00:00+01:00
T-4,P3,2026-02-26T18:00:00+01:00,,,
T-5,P2,2026-02-13T12:00:00,2026-02-13T12:30:00,,
"""

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))).timestamp()


def t(s: str) -> float:
    return dt.datetime.fromisoformat(s).timestamp()


def build(state: Path, until: float = NOW) -> tuple:
    """The month as the agent would have stored it by `until` (an agent's clock never starts below the
    latest instant its ledger holds: a test that runs one in the middle of the month stops the month there)."""
    cfg = parse_config(CONFIG)
    cal = Calendar(cfg.contract)
    start, end = cal.month_bounds(2026, 2)
    led = Ledger(cfg.contract.thresholds, day_start=cal.day_start)
    led.anchor(end)
    rng = np.random.default_rng(2026)
    outages = [  # (target, start, end, error_kind)
        ("api-health", t("2026-02-12T06:10:00+01:00"), t("2026-02-12T06:50:00+01:00"), "connect_refused"),  # in maint.
        ("web-ui", t("2026-02-17T14:00:00+01:00"), t("2026-02-17T14:45:00+01:00"), "http_status"),
        ("api-health", t("2026-02-20T10:00:00+01:00"), t("2026-02-20T18:00:00+01:00"), "timeout"),
        ("api-health", t("2026-02-09T22:10:00+01:00"), t("2026-02-09T23:00:00+01:00"), "dns"),  # in exclusion
        ("web-ui", t("2026-02-09T22:10:00+01:00"), t("2026-02-09T23:00:00+01:00"), "dns"),
    ]
    gap = (t("2026-02-03T02:00:00+01:00"), t("2026-02-03T05:00:00+01:00"))
    slow_week = (t("2026-02-16T00:00:00+01:00"), t("2026-02-23T00:00:00+01:00"))
    store = Store(state, thresholds=cfg.contract.thresholds, clock=lambda: until)
    services = {"web-ui": "web", "api-health": "api"}

    def flush(now: float, seal_all: bool = False) -> None:  # as the agent does: compact finished days, write
        compactions = led.compact(now)                        # what changed (and seal it all at its stop)
        hours, digests = led.take_dirty()
        store.write(hours, digests, services, compactions, now=now, seal_all=seal_all)

    ts = np.arange(start, end, 30.0)
    lats = {name: (rng.lognormal(np.log(median), 0.4, len(ts)), rng.random(len(ts)))
            for name, median in (("web-ui", 0.08), ("api-health", 0.12))}
    for i, when in enumerate(ts.tolist()):
        if when >= until:
            break
        if i and when % 86400 == 82800:  # 00:00 +01:00: a day has ended
            flush(when)
        for name, svc in (("web-ui", "web"), ("api-health", "api")):
            lat, tail = lats[name]
            if gap[0] <= when < gap[1]:
                continue
            d = float(lat[i])
            slow_share = 0.03 if slow_week[0] <= when < slow_week[1] else 0.008
            if tail[i] < slow_share:
                d = 0.6 + 0.8 * float(tail[i]) / slow_share  # 0.6 to 1.4 s
            kind = next((k for n, a, b, k in outages if n == name and a <= when < b), "")
            if kind:
                counted = kind in ("http_status", "timeout")
                dur = 5.0 if kind == "timeout" else (0.05 if counted else 0.002)
                r = ProbeResult(name, svc, when, 0.0, dur, "down", kind, status=503 if kind == "http_status" else None,
                                latency_counted=counted)
            else:
                r = ProbeResult(name, svc, when, 0.0, d, "up", status=200, latency_counted=True)
            led.add(r, masked=cal.active(when) is not None)
    flush(min(end, until), seal_all=True)  # the agent stopped cleanly
    store.upsert_tickets(parse_export(cfg, "tickets.csv", TICKETS.encode()))
    store.close()
    return cfg, cal
