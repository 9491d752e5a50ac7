"""The contract gauges at their edges: a period whose first hours were not observed, the verdict's own
equality, a projection from too little, a ticket closed without an answer, and several locations."""
from __future__ import annotations

import datetime as dt
import subprocess

import yaml

from agent.calendar import Calendar
from agent.config import parse_config
from agent.ledger import Ledger
from agent.probes import ProbeResult
from agent.rules import rule_groups, write_all
from agent.slo import Availability, DayCache, context, objectives_of
from agent.slo.promql import CONTRACT_GROUP
from agent.tickets import Ticket

from .test_deploy import tool

TZ = dt.timezone(dt.timedelta(hours=1))
MONDAY = dt.datetime(2026, 11, 23, tzinfo=TZ).timestamp()  # a 7-day period begins (iso_week)


def _latency_setup(bounds: str = "") -> tuple:
    cfg = parse_config(f"""
contract: {{timezone: "+01:00"{bounds}}}
targets: [{{name: api-health, service: api, url: "http://127.0.0.1:9/", interval: 60s, timeout: 5s}}]
""")
    cal = Calendar(cfg.contract)
    led = Ledger(cfg.contract.thresholds, day_start=cal.day_start)
    led.anchor(MONDAY + 7 * 86400)
    objective = next(o for o in objectives_of(cfg.contract) if o.kind == "latency")
    return cfg, cal, led, objective


def _probe(led: Ledger, cal: Calendar, at: float, duration: float) -> None:
    led.add(ProbeResult("api-health", "api", at, 0.0, duration, "up", status=200, latency_counted=True),
            masked=cal.active(at) is not None)


def test_the_period_volume_goes_on_at_the_rate_of_its_observed_minutes():
    """The agent started on Monday at 14:00: 600 requests by midnight, 100 of them slow. Six days to come
    at one request a minute (less the Thursday window) make 9,120: 2 % of them is 182.4, so 100 slow
    requests do not lose the period (scaling by the 24 h elapsed would have said 4,150 and 83: lost)."""
    cfg, cal, led, objective = _latency_setup()
    for i in range(600):
        _probe(led, cal, MONDAY + 14 * 3600 + 60 * i + 1, 0.7 if i % 6 == 0 else 0.1)
    ctx = context(led, cfg, cal, cache=DayCache(cal))
    a = objective.live(ctx, MONDAY + 86400)["allowance"]
    assert a.expected == 600 + 6 * 1440 - 120 == 9120
    first = a.bounds[0]
    assert (first.slow, first.allowed, first.lost) == (100, 182.4, False)


def test_lost_agrees_with_the_verdict_at_equality():
    """90 % below 1 s, ten requests, one slow: exactly 90 %, met; (1 - 0.9) x 10 is 0.9999999999999998 in
    floating point, so the allowance is rounded as the month's budget is. The period's last ten minutes are
    a maintenance window: no volume is left to come."""
    cfg, cal, led, objective = _latency_setup(
        ', latency: {objectives: [{below: 1s, ratio: 0.9}]}, maintenance: [{once: {start: "2026-11-29T23:50:00+01:00",'
        ' end: "2026-11-30T00:00:00+01:00", reason: "end"}}]')
    end = MONDAY + 7 * 86400
    for i in range(10):
        _probe(led, cal, end - 3600 + 60 * i + 1, 1.5 if i == 0 else 0.1)
    ctx = context(led, cfg, cal, cache=DayCache(cal))
    live = objective.live(ctx, end - 1)
    a = live["allowance"].bounds[0]
    assert (a.slow, a.allowed, a.lost) == (1, 1.0, False) and live["period"].objective_met == (True,)


def test_a_projection_needs_half_its_stretch_observed():
    """Thirty minutes seen since a fresh start, one down: no projection rather than 96.7 %. The month's own
    20,000 good minutes project when the last day saw too little."""
    fresh = Availability.from_counts(0, 1800, (29, 1, 0, 0), 40_000, 0.99, 0.9, (29, 1), min_observed=720)
    assert fresh.projected is None
    resumed = Availability.from_counts(0, 1800, (20_000, 0, 0, 0), 20_000, 0.99, 0.9, (29, 1), min_observed=720)
    assert resumed.projected == 1.0
    steady = Availability.from_counts(0, 1800, (20_000, 0, 0, 0), 20_000, 0.99, 0.9, (1420, 20), min_observed=720)
    assert abs(steady.projected - (20_000 + 20_000 * 1420 / 1440) / 40_000) < 1e-12


def test_a_ticket_closed_without_an_answer_is_still_waiting_for_one():
    cfg = parse_config('targets: [{name: a, service: api, url: "http://127.0.0.1:9/"}]')
    cal = Calendar(cfg.contract)
    opened = MONDAY + 10 * 3600
    closed = Ticket("T-1", "P1", opened, None, None, opened + 600, opened + 600)
    ctx = context(None, cfg, cal, tickets=lambda a, b: [closed])
    p1 = next(o for o in objectives_of(cfg.contract) if o.kind == "ticket_response" and o.subject == "P1")
    open_now = p1.live(ctx, opened + 3600)["open"]
    assert [o.ticket.id for o in open_now.outcomes] == ["T-1"]


def _contract_exprs(text: str) -> dict[str, str]:
    cfg = parse_config(text + 'targets: [{name: a, service: api, url: "http://127.0.0.1:9/"}]\n')
    group = next(g for g in rule_groups(cfg) if g["name"] == CONTRACT_GROUP)
    return {f'{r["alert"]} {r["labels"]["slo"]}': r["expr"] for r in group["rules"]}


def test_locations_are_combined_as_the_report_combines_them():
    exprs = _contract_exprs("contract: {locations: {min_agree: 3, latency_locations: each}}\n")
    assert "topk by (service, month) (3," in exprs["SLAMonthLost availability"]
    assert exprs["SLALatencyPeriodLost latency_500ms"].startswith("max by (service, objective, threshold, period, month)")
    best = _contract_exprs("contract: {locations: {latency_locations: best}}\n")
    assert best["SLALatencyPeriodLost latency_1s"].startswith("min by (service, objective, threshold, period, month)")
    pooled = _contract_exprs("contract: {locations: {latency_locations: pooled}}\n")
    assert pooled["SLALatencyPeriodLost latency_1s"].startswith("sum by (service, objective, threshold, period, month)")


def test_two_of_three_places_make_a_lost_month(tmp_path):
    """min_agree 2: one place over its budget does not fire; two do, with the smaller overrun of the two."""
    cfg = parse_config('contract: {locations: {min_agree: 2}}\n'
                       'targets: [{name: a, service: api, url: "http://127.0.0.1:9/"}]\n')
    write_all(cfg, tmp_path / "gen")
    generated = yaml.safe_load((tmp_path / "gen" / "prometheus" / "rules" / "sla-agent.rules.yml").read_text())
    rules = tmp_path / "contract.rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [g for g in generated["groups"] if g["name"] == CONTRACT_GROUP]}))
    series = 'sla_month_budget_remaining_seconds{{service="api",month="2026-11",location="{}"}}'
    test = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": series.format("paris"), "values": "100 -600 -600"},
                         {"series": series.format("fra"), "values": "100 100 -300"},
                         {"series": series.format("london"), "values": "100 100 100"}],
        "alert_rule_test": [
            {"eval_time": "1m", "alertname": "SLAMonthLost", "exp_alerts": []},
            {"eval_time": "2m", "alertname": "SLAMonthLost", "exp_alerts": [{
                "exp_labels": {"service": "api", "month": "2026-11", "severity": "ticket", "slo": "availability",
                               "audience": "contract"},
                "exp_annotations": {
                    "summary": "api: the 99 % availability of 2026-11 is lost",
                    "description": "Down time already exceeds the month's budget by 5m 0s: even if every minute "
                                   "left is up, the month ends below 99 %. Maintenance and declared exclusions "
                                   "are left out.",
                    "report": "http://127.0.0.1:9810/report?month=2026-11",
                    "evidence": "http://127.0.0.1:9810/api/v1/journal?month=2026-11&service=api"}}]}]}]}
    path = tmp_path / "places.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    p = subprocess.run([tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
