"""A contract with a third service (sso, 99.5 %) and a latency objective on the web interface (95 % < 2 s),
by config alone: report rows, metrics, status entries and alert rules follow the table; the rules pass
promtool's checks and a promtool unit test."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import textwrap

import pytest
import yaml
from prometheus_client import CollectorRegistry

from agent.calendar import Calendar
from agent.config import ConfigError, parse_config
from agent.export.collectors import SloCollector
from agent.export.status import objectives_document
from agent.ledger import Ledger
from agent.probes import ProbeResult
from agent.report import build_report
from agent.rules import write_all
from agent.slo import evaluate
from agent.store import Store

CONFIG = """
agent: {state_dir: "./unused"}
contract:
  objectives:
    - availability: {service: web, objective: 0.99}
    - availability: {service: api, objective: 0.99}
    - availability: {service: sso, objective: 0.995, title: "Single sign-on"}
    - latency: {service: api}
    - latency: {service: web, bounds: [{below: 2s, ratio: 0.95}]}
    - ticket_response: {priority: P1}
    - ticket_response: {priority: P2}
    - ticket_response: {priority: P3}
targets:
  - {name: web-ui, service: web, url: "https://app.example.invalid/", interval: 60s, timeout: 10s}
  - {name: api-health, service: api, url: "https://api.example.invalid/health", interval: 60s, timeout: 5s}
  - {name: sso-login, service: sso, url: "https://sso.example.invalid/", interval: 60s, timeout: 5s}
"""
TZ = dt.timezone(dt.timedelta(hours=1))
START = dt.datetime(2026, 3, 1, 0, 0, tzinfo=TZ).timestamp()  # eight days, the ISO week of 2 March whole
NOW = dt.datetime(2026, 3, 9, 0, 30, tzinfo=TZ).timestamp()


def _result(name: str, service: str, t: float, i: int) -> ProbeResult:
    if service == "sso" and i % 100 == 0:  # 1 % down: below 99.5 %
        return ProbeResult(name, service, t, 0.0, 0.05, "down", "http_status", status=503, latency_counted=True)
    slow = service == "web" and i % 25 == 0  # 4 % of the web's requests take 3 s: 96 % < 2 s
    return ProbeResult(name, service, t, 0.0, 3.0 if slow else 0.2, "up", status=200, latency_counted=True)


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    cfg = parse_config(CONFIG)
    cal = Calendar(cfg.contract)
    state = tmp_path_factory.mktemp("objectives")
    led = Ledger(cfg.contract.thresholds, day_start=cal.day_start)
    led.anchor(NOW)
    for i, t in enumerate(range(int(START), int(START + 8 * 86400), 60)):
        for target in cfg.targets:
            led.add(_result(target.name, target.service, float(t), i), masked=cal.active(t) is not None)
    store = Store(state, thresholds=cfg.contract.thresholds)
    hours, digests = led.take_dirty()
    store.write(hours, digests, {t.name: t.service for t in cfg.targets}, led.compact(NOW))
    store.close()
    return cfg, cal, led, state


def test_the_table_by_config():
    cfg = parse_config(CONFIG)
    c = cfg.contract
    assert c.thresholds == (0.5, 1.0, 2.0)  # the ledger counts below every bound of the table
    assert [(s.row, s.kind, getattr(s, "service", getattr(s, "priority", ""))) for s in c.objectives] == [
        (1, "availability", "web"), (2, "availability", "api"), (3, "availability", "sso"), (4, "latency", "api"),
        (5, "latency", "web"), (6, "ticket_response", "P1"), (7, "ticket_response", "P2"),
        (8, "ticket_response", "P3")]
    assert c.objectives[2].objective == 0.995 and c.objectives[0].objective == 0.99  # shorthand fills the rest


def test_the_table_is_checked():
    with pytest.raises(ConfigError) as err:
        parse_config(CONFIG.replace("service: sso, objective", "service: ssso, objective")
                     .replace("latency: {service: api}", "latency: {service: api, row: 1}"))
    got = [f"{i.line}: {i.path}: {i.message}" for i in err.value.issues]
    assert "7: contract.objectives[2].availability.service: no target has service 'ssso' (services: web, api, sso)" \
        in got
    assert "8: contract.objectives[3].latency: row 1 is already given at contract.objectives[0].availability" in got


def test_report_rows(month):
    cfg, _, _, state = month
    doc = build_report(cfg, str(state), "2026-03", NOW)
    rows = {r["row"]: r for r in doc["rows"]}
    assert len(rows) == 8
    sso = rows[3]
    assert (sso["service"], sso["measure"], sso["objective"]) == ("sso", "availability", 0.995)
    assert sso["description"].startswith("Single sign-on: monthly availability")
    assert 0.985 < sso["value"] < 0.995 and sso["verdict"] == "missed"  # 1 % of the minutes down
    assert rows[1]["verdict"] == rows[2]["verdict"] == "met"
    web_lat = rows[5]
    assert (web_lat["service"], web_lat["measure"], web_lat["objective"]) == ("web", "latency", {"2": 0.95})
    week = next(p for p in doc["periods"] if p["service"] == "web" and p["start"].startswith("2026-03-02"))
    assert list(week["below"]) == ["2"] and week["below"]["2"]["fraction"] == pytest.approx(0.96, abs=1e-3)
    assert week["verdict"] == "met"
    assert list(next(p for p in doc["periods"] if p["service"] == "api")["below"]) == ["0.5", "1"]


def test_metrics_and_status(month):
    cfg, cal, led, _ = month
    snap = evaluate(led, cfg, cal, START + 8 * 86400 - 60)
    reg = CollectorRegistry()
    reg.register(SloCollector(lambda: snap, lambda: False))
    get = reg.get_sample_value
    assert get("sla_availability_ratio", {"service": "sso", "window": "month"}) == pytest.approx(0.99, abs=2e-3)
    assert get("sla_objective_met", {"service": "sso", "objective": "availability", "window": "month"}) == 0.0
    assert get("sla_objective_met", {"service": "web", "objective": "availability", "window": "month"}) == 1.0
    assert get("sla_latency_below_ratio", {"service": "web", "threshold": "2", "window": "period"}) == \
        pytest.approx(0.96, abs=1e-3)
    assert get("sla_objective_met", {"service": "web", "objective": "latency_2s", "window": "period"}) == 1.0
    assert get("sla_latency_below_ratio", {"service": "web", "threshold": "0.5", "window": "period"}) is None
    status = objectives_document(snap, cfg.services, cal.tz)
    assert status["services"]["sso"]["availability"]["month"]["objective"] == 0.995
    assert list(status["services"]["web"]["latency"]["period"]["below"]) == ["2"]
    assert status["services"]["sso"]["latency"] == {}
    assert set(status["tickets"]) == {"P1", "P2", "P3"}


PROMTOOL_TEST = """
rule_files: [{rules}]
evaluation_interval: 30s
tests:
  # sso fails 10 % of its probes: 20x its 0.5 % budget pages; web and api, at 99 %, are untouched
  - interval: 15s
    input_series:
      - series: 'sla_counted_probes_total{{service="sso",target="sso-login",outcome="up",location="paris"}}'
        values: '0+27x300'
      - series: 'sla_counted_probes_total{{service="sso",target="sso-login",outcome="down",location="paris"}}'
        values: '0+3x300'
      - series: 'sla_counted_probes_total{{service="web",target="web-ui",outcome="up",location="paris"}}'
        values: '0+30x300'
      - series: 'sla_counted_probes_total{{service="web",target="web-ui",outcome="down",location="paris"}}'
        values: '0x300'
      - series: 'sla_maintenance_active{{location="paris"}}'
        values: '0x300'
    alert_rule_test:
      - eval_time: 70m
        alertname: SLAAvailabilityBurnRateFast1h
        exp_alerts:
          - exp_labels: {{service: sso, severity: page, slo: availability, objective: availability}}
            exp_annotations:
              summary: "sso is burning its 99.5 % availability budget 14.4x too fast (1h and 5m windows)"
              description: "Error ratio over 1h: 10% (budget 0.5 %). Seen by at least two locations, or by the only one. Maintenance windows and inconclusive probes are left out."
  # 80 % of the web's requests take 2 s or more: 16x its 5 % budget pages (14.4x is the fast burn)
  - interval: 15s
    input_series:
      - series: 'sla_probe_duration_seconds_bucket{{service="web",target="web-ui",le="2.0",location="paris"}}'
        values: '0+6x300'
      - series: 'sla_probe_duration_seconds_count{{service="web",target="web-ui",location="paris"}}'
        values: '0+30x300'
      - series: 'sla_maintenance_active{{location="paris"}}'
        values: '0x300'
    alert_rule_test:
      - eval_time: 70m
        alertname: SLALatencyBurnRateFast1h
        exp_alerts:
          - exp_labels: {{service: web, severity: page, slo: latency_2s, objective: latency_2s, threshold: "2"}}
            exp_annotations:
              summary: "web: requests slower than 2 s burn the 95 % objective 14.4x too fast"
              description: "Share of requests >= 2 s over 1h: 80% (allowed 5 % per 7-day period)."
"""


def test_rules_pass_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: bash .ci/run installs it (Debian package prometheus)")
    cfg = parse_config(CONFIG)
    write_all(cfg, tmp_path)
    rules = tmp_path / "prometheus" / "rules" / "sla-agent.rules.yml"
    exprs = "\n".join(r["expr"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"])
    assert 'sla:availability_error_ratio_quorum:rate1h{service=~"sso"} > 0.072' in exprs  # 14.4 x 0.5 %
    assert 'sla:availability_error_ratio_quorum:rate1h{service=~"web|api"} > 0.144' in exprs
    assert 'sla:latency_slow_ratio_quorum:rate1h{service="web",objective="latency_2s"} > 0.72' in exprs
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    test = tmp_path / "objectives.test.yml"
    test.write_text(textwrap.dedent(PROMTOOL_TEST.format(rules=rules)))
    p = subprocess.run([promtool, "test", "rules", str(test)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
