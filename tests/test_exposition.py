"""Our cached-label exposition must be byte-identical to prometheus_client's generate_latest."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from agent.export.exposition import generate
from agent.calendar import Calendar
from agent.config import parse_config
from agent.export.collectors import SloCollector
from agent.export.metrics import LiveMetrics
from agent.ledger import Ledger
from agent.slo import evaluate
from agent.probes import ProbeResult


def test_identical_to_generate_latest():
    reg = CollectorRegistry()
    m = LiveMetrics(reg, location="lab-1")
    m.bind("api", "a", ("dns", "connect", "tls", "ttfb", "transfer"))
    m.bind("web", 'we"ird\\name', ("connect", "ttfb", "transfer"))
    for i in range(50):
        m.observe(ProbeResult("a", "api", 0.0, 0.0, 0.01 * i, "up" if i % 5 else "down",
                              "" if i % 5 else "http_status", status=200, phases=(0.001, 0.002, 0.003, 0.004, 0.0),
                              latency_counted=True, tls_not_after=2e9), masked=i % 7 == 0)
    m.observe(ProbeResult('we"ird\\name', "web", 0.0, 0.0, 0.2, "inconclusive", "skipped"), masked=False)
    cfg = parse_config('targets: [{name: a, service: api, url: "http://127.0.0.1:9/", timeout: 2s, interval: 2s}]')
    led = Ledger(cfg.contract.thresholds, day_start=lambda t: t - t % 86400)
    t0 = 1_795_000_000.0
    for i in range(50):
        led.add(ProbeResult("a", "api", t0 + i, 0.0, 0.01 * i, "up", status=200, latency_counted=True))
    snap = evaluate(led, cfg, Calendar(cfg.contract), t0 + 120)
    reg.register(SloCollector(lambda: snap, lambda: True, "lab-1"))
    assert generate(reg) == generate_latest(reg)
    assert generate(reg) == generate(reg)  # cached labels give the same text
