"""What the ledger and the engine keep in memory stays bounded over time: 40 simulated days, 3 targets, the
real ledger, compaction and live evaluation on an injected clock. After the longest window's horizon the
number of digests, merged windows and cached days held is the same at every day boundary."""
from __future__ import annotations

import datetime as dt

import numpy as np

from agent.calendar import Calendar
from agent.config import parse_config
from agent.ledger import Ledger
from agent.probes import ProbeResult
from agent.slo import DayCache, evaluate

TZ = dt.timezone(dt.timedelta(hours=1))
START = dt.datetime(2026, 9, 1, tzinfo=TZ).timestamp()
CONFIG = """
contract: {timezone: "+01:00"}
targets:
  - {name: web-ui, service: web, url: "http://127.0.0.1:9/", interval: 60s}
  - {name: api-a, service: api, url: "http://127.0.0.1:9/", interval: 60s}
  - {name: api-b, service: api, url: "http://127.0.0.1:9/", interval: 60s}
"""


def held(led: Ledger, cache: DayCache) -> dict[str, int]:
    return {"hour digests": sum(len(s.hour_digests) for s in led.series.values()),
            "day digests": sum(len(s.day_digests) for s in led.series.values()),
            "merged windows": sum(len(s.merged) for s in led.series.values()),
            "error minutes": sum(len(s.errors) for s in led.series.values()),
            "cached days": len(cache._days)}


def test_forty_day_boundaries_hold_the_same_number_of_things():
    cfg = parse_config(CONFIG)
    cal = Calendar(cfg.contract)
    led = Ledger(cfg.contract.thresholds, day_start=cal.day_start)
    led.anchor(START)
    cache = DayCache(cal)
    rng = np.random.default_rng(40)
    at_midnight = []
    for day in range(40):
        for minute in range(1440):
            t = START + day * 86400 + minute * 60
            for name, svc in (("web-ui", "web"), ("api-a", "api"), ("api-b", "api")):
                down = minute == 600 + day  # one down minute a day, a failure kind to keep
                led.add(ProbeResult(name, svc, t + 1, 0.0, float(rng.lognormal(-2, 0.5)), "down" if down else "up",
                                    "http_status" if down else "", latency_counted=True),
                        masked=cal.active(t + 1) is not None)
            if minute % 60 == 30:
                evaluate(led, cfg, cal, t + 30, cache)
        now = START + (day + 1) * 86400
        led.compact(now + 1)  # the day that just ended becomes a day digest
        led.take_dirty()
        evaluate(led, cfg, cal, now + 1, cache)
        at_midnight.append(held(led, cache))
    steady = at_midnight[35:]
    assert all(x == steady[0] for x in steady), steady
    assert steady[0]["day digests"] == 3 * led.digest_days
    assert steady[0]["hour digests"] <= 3  # the new day's first hour
    assert steady[0]["cached days"] <= 2 * 34  # two services, the days the month and 30-day windows reach
