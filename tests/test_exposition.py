"""Our cached-label exposition must be byte-identical to prometheus_client's generate_latest."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from agent.export.exposition import generate
from agent.export.metrics import LiveMetrics, SloCollector
from agent.probes import ProbeResult


def test_identical_to_generate_latest():
    reg = CollectorRegistry()
    m = LiveMetrics(reg, location="lab-1")
    m.bind("api", "a")
    m.bind("web", 'we"ird\\name', ("connect", "ttfb", "transfer"))
    for i in range(50):
        m.observe(ProbeResult("a", "api", 0.0, 0.0, 0.01 * i, "up" if i % 5 else "down",
                              "" if i % 5 else "http_status", status=200, phases=(0.001, 0.002, 0.003, 0.004, 0.0),
                              latency_counted=True, tls_not_after=2e9), masked=i % 7 == 0)
    m.observe(ProbeResult('we"ird\\name', "web", 0.0, 0.0, 0.2, "inconclusive", "skipped"), masked=False)
    reg.register(SloCollector(lambda: None, lambda: True, lambda: {"P1": {"ratio": 0.5, "met": 1, "missed": 1}},
                              "lab-1"))
    assert generate(reg) == generate_latest(reg)
    assert generate(reg) == generate(reg)  # cached labels give the same text
