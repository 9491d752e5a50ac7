"""The contract gauges agree with the report: a month in the ledger (tests/month_fixture.py), a real agent on
it at an instant inside the month, its /metrics and its /api/v1/report read over HTTP at that instant."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from agent.app import Agent
from agent.config import parse_config

from .conftest import FakeClock, free_port
from .month_fixture import CONFIG, build

TZ = dt.timezone(dt.timedelta(hours=1))


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:  # nosec - loopback
        return resp.read()


def _gauges(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith(("sla_month_", "sla_period_slow_")):
                key = s.labels.get("service", "") + " " + s.labels.get("threshold", "")
                out[(s.name, key.strip())] = s.value
    return out


def test_budget_gauges_agree_with_the_report(tmp_path):
    state = tmp_path / "state"
    # 20 February, 15:00:30: the API has been down since 10:00 (tests/month_fixture.py)
    now = dt.datetime(2026, 2, 20, 15, 0, 30, tzinfo=TZ).timestamp()
    build(state, until=now)  # the ledger as it stands then
    closed = free_port()
    text = CONFIG.replace('agent: {state_dir: "./unused"}', 'agent: {listen: "127.0.0.1:0"}')
    text = text.replace("https://app.example.invalid/", f"http://127.0.0.1:{closed}/")
    text = text.replace("https://api.example.invalid/health", f"http://127.0.0.1:{closed}/health")
    cfg = parse_config(text)

    async def run() -> tuple[str, dict, dict]:
        agent = Agent(cfg, state_dir=str(state), clock=FakeClock(wall=now))
        await agent.start()
        await agent.scheduler.stop(0)  # nothing new: the month as stored
        try:
            await agent.evaluate_now()
            base = agent.server.url
            metrics = await asyncio.to_thread(_get, f"{base}/metrics")
            report = await asyncio.to_thread(_get, f"{base}/api/v1/report?month=2026-02")
            status = await asyncio.to_thread(_get, f"{base}/api/v1/status")
        finally:
            await agent.stop()
        return metrics.decode(), json.loads(report), json.loads(status)

    metrics, report, status = asyncio.run(run())
    gauges = _gauges(metrics)
    rows = {r["service"]: r for r in report["rows"] if r["measure"] == "availability"}
    assert report["evidence"]["cutoff"] == "2026-02-20T15:00:00+01:00"
    for service in ("web", "api"):
        d = rows[service]["details"]
        assert round(gauges[("sla_month_budget_seconds", service)], 1) == d["budget_s"]
        assert gauges[("sla_month_budget_spent_seconds", service)] == d["down_s"]
        assert round(gauges[("sla_month_budget_remaining_seconds", service)], 1) == d["budget_remaining_s"]
        assert round(gauges[("sla_month_projected_availability_ratio", service)], 6) == d["projected_ratio"]
        live = status["services"][service]["availability"]["budget"]
        assert (live["budget_s"], live["spent_s"], live["lost"]) == (d["budget_s"], d["down_s"], d["lost"])
    # worked out from the fixture: February's eligible minutes (40,320 less four Thursday windows and the
    # 90-minute exclusion) less the 3-hour agent gap, 1 % of them; the API down 10:00 to 15:00 (300 minutes)
    assert gauges[("sla_month_budget_seconds", "api")] == 0.01 * (40320 - 480 - 90 - 180) * 60 == 23742.0
    assert gauges[("sla_month_budget_spent_seconds", "api")] == 300 * 60
    assert rows["api"]["details"]["lost"] is False
    # at the burn of the last day (300 of 1,440 minutes down) the month ends below 99 %: at risk
    assert gauges[("sla_month_projected_availability_ratio", "api")] < 0.99
    assert gauges[("sla_month_projected_availability_ratio", "web")] > 0.99
    slow = gauges[("sla_period_slow_requests", "api 0.5")]
    allowed = gauges[("sla_period_slow_allowed", "api 0.5")]
    assert slow > 0 and allowed > 0 and gauges[("sla_period_slow_projected", "api 0.5")] >= slow
