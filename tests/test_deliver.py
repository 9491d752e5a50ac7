"""Delivery of a closed month's revision (notify/deliver.py) to a real local SMTP server (aiosmtpd, STARTTLS,
login) and a real local webhook (aiohttp), on an injected clock: retried with backoff while refused, the
alert on, then delivered exactly once, also when called again or after a restart; the bundle linked when too
large to attach; no secret in the log, the status or the record."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import ssl
import subprocess  # nosec - promtool
from email import message_from_bytes, policy
from pathlib import Path

import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry

from agent.config import parse_config
from agent.export.metrics import DeliveryMetrics
from agent.notify import deliver as deliver_mod
from agent.notify.deliver import Delivery
from agent.redact import Redactor
from agent.rules.prometheus_rules import rule_groups

from .conftest import FakeClock
from .servers import Mailbox, closed_port, http_server, make_certs
from .test_daemon import wait_for
from .test_deploy import tool

T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.timezone.utc).timestamp()
KEY = "ab" * 32
SUMMARY = {"month": "2026-11", "evidence": {"signature": {"key_sha256": KEY}}, "rows": [
    {"row": 1, "service": "web", "measure": "availability", "description": "Web interface: monthly availability",
     "objective": 0.995, "value": 0.99912, "verdict": "met", "details": {"big": "x" * 100}},
    {"row": 2, "service": "api", "measure": "latency", "description": "API response time per 7-day period",
     "objective": {"0.5": 0.98}, "value": {"0.5": 0.9712}, "verdict": "missed"}]}
BASE = "https://agent.example.com:9810"


def _revision(tmp: Path, bundle_bytes: int = 2000) -> Path:
    folder = tmp / "state" / "reports" / "2026-11" / "r1"
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(SUMMARY))
    (folder / "report.html").write_text("<html>report</html>")
    (folder / "report.pdf").write_bytes(b"%PDF-1.4 the month's report\n%%EOF\n")
    (folder / "evidence.tar.gz").write_bytes(bytes(range(256)) * (bundle_bytes // 256) + b"x" * (bundle_bytes % 256))
    return folder


def _settings(tmp: Path, deliver: str, password: str = "mail-pw-123"):
    (tmp / "mail-pw").write_text(password + "\n")
    return parse_config(f'reports: {{deliver: {deliver}}}\n'
                        f'targets: [{{name: a, service: web, url: "http://127.0.0.1:1/"}}]\n')


def _email(box: Mailbox, tmp: Path, extra: str = "") -> str:
    return (f'{{to: [vendor-manager@example.com, legal@example.com], smtp: {{smarthost: "127.0.0.1:{box.port}", '
            f'from: sla-agent@example.com, username: agent, password_file: "{tmp / "mail-pw"}"}}{extra}}}')


def _delivery(cfg, clock: FakeClock, certs, registry: CollectorRegistry) -> Delivery:
    return Delivery(lambda: cfg.reports.deliver, lambda: DeliveryMetrics(registry), clock, Redactor(cfg.secrets),
                    smtp_context=ssl.create_default_context(cafile=str(certs.ca)) if certs else None)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def _attempts(d: Delivery, channel: str, n: int) -> None:
    """The n-th attempt made and recorded (real I/O: a mail server's answer, a thread, a file)."""
    await wait_for(lambda: d.status().get(channel, {}).get("attempts", 0) >= n, f"{channel} attempt {n}")


def _promtool_alert(tmp: Path, cfg, shift: float, gauge: list[tuple[float, float]], checks: list[tuple[int, str]]):
    """The generated SLAReportDeliveryFailing rule under `promtool test rules`, fed with the failing-since gauge
    the delivery set (`gauge`: wall time, value), one sample a minute; promtool's time 0 is wall time `shift`.
    `checks`: (minute, how long the alert says the delivery has failed; empty: no alert)."""
    (alert,) = [r for g in rule_groups(cfg) for r in g["rules"] if r.get("alert") == "SLAReportDeliveryFailing"]
    minutes = max(m for m, _ in checks) + 2
    values = []
    for m in range(minutes):
        now = shift + 60 * m
        v = next((v for at, v in reversed(gauge) if at <= now), 0.0)
        values.append(str(v - shift if v else 0))
    (tmp / "d.rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "health", "rules": [alert]}]}))
    series = 'sla_report_delivery_failing_since_timestamp_seconds{channel="email"}'
    tests = [{"eval_time": f"{m}m", "alertname": alert["alert"],
              "exp_alerts": [{"exp_labels": {"channel": "email", "severity": "ticket", "slo": "agent"},
                              "exp_annotations": {"summary": f"sla-agent : the month's report has not reached its "
                                                             f"email receiver for {age}",
                                                  "description": alert["annotations"]["description"]}}] if age else []}
             for m, age in checks]
    doc = {"rule_files": [str(tmp / "d.rules.yml")], "evaluation_interval": "1m",
           "tests": [{"interval": "1m", "input_series": [{"series": series, "values": " ".join(values)}],
                      "alert_rule_test": tests}]}
    (tmp / "d.test.yml").write_text(yaml.safe_dump(doc, sort_keys=False, width=100_000))
    p = subprocess.run([tool("promtool"), "test", "rules", str(tmp / "d.test.yml")], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]


async def test_smtp_refusing_for_an_hour_is_retried_alerted_then_delivered_once(tmp_path):
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    box, clock, registry = Mailbox(certs), FakeClock(wall=T0), CollectorRegistry()
    box.refuse = "451 4.3.0 try again later"
    folder = _revision(tmp_path)
    cfg = _settings(tmp_path, f'{{email: {_email(box, tmp_path)}, base_url: "{BASE}"}}')
    d, gauge = _delivery(cfg, clock, certs, registry), []
    box.controller.start()
    try:
        task = asyncio.create_task(d.deliver(folder, SUMMARY))
        for n in range(1, 9):  # at 0, 30 s, 1.5 min, 3.5, 7.5, 15.5, 31.5 and 61.5: refused
            await _attempts(d, "email", n)
            gauge.append((clock.time(), _sample(registry, "sla_report_delivery_failing_since_timestamp_seconds",
                                                channel="email")))
            assert box.refused == n and not box.messages and not task.done()
            if n < 8:
                await clock.advance(deliver_mod.backoff(n))
        assert clock.time() - T0 == 3690
        status = d.status()["email"]
        assert status["state"] == "retrying" and status["failing_since"] == T0 and "451" in status["error"]
        assert _sample(registry, "sla_report_deliveries_total", channel="email", result="error") == 8
        box.refuse = ""
        await clock.advance(deliver_mod.MAX_BACKOFF)
        await asyncio.wait_for(task, 20)
        gauge.append((clock.time(), _sample(registry, "sla_report_delivery_failing_since_timestamp_seconds",
                                            channel="email")))
        await d.deliver(folder, SUMMARY)  # called again: nothing more is sent
        await _delivery(cfg, clock, certs, CollectorRegistry()).deliver(folder, SUMMARY)  # a restart: nor then
    finally:
        box.controller.stop()
    assert len(box.messages) == 1 and box.refused == 8
    assert _sample(registry, "sla_report_deliveries_total", channel="email", result="ok") == 1
    assert _sample(registry, "sla_report_delivery_last_success_timestamp_seconds", channel="email") == T0 + 5490
    assert gauge[0][1] == T0 and gauge[-1] == (T0 + 5490, 0)
    record = json.loads((folder / "delivery.json").read_text())["channels"]["email"]
    assert record["state"] == "sent" and record["attempts"] == 9 and record["sent_at"] == T0 + 5490
    mail = message_from_bytes(box.messages[0], policy=policy.default)
    assert mail["Subject"] == "SLA report 2026-11 (r1): MISSED"
    assert mail["Message-ID"].startswith("<sla-report-2026-11-r1-")
    assert mail["To"] == "vendor-manager@example.com, legal@example.com"
    files = {p.get_filename(): p.get_payload(decode=True) for p in mail.walk() if p.get_filename()}
    assert files == {"report.pdf": (folder / "report.pdf").read_bytes(),
                     "evidence.tar.gz": (folder / "evidence.tar.gz").read_bytes()}
    body = next(p for p in mail.walk() if p.get_content_type() == "text/plain" and not p.get_filename()).get_content()
    assert "  1  MET" in body and "  2  MISSED" in body and "97.120 %" in body
    assert f"{BASE}/reports/2026-11/r1/report.html" in body and f"--key {KEY}" in body
    # the alert: off within the hour, on past it, off once delivered (promtool's 0 is 20 minutes before T0)
    _promtool_alert(tmp_path, cfg, T0 - 1200, gauge, [(20 + 59, ""), (20 + 62, "1h 2m 0s"), (20 + 92, "")])


async def test_a_bundle_over_the_limit_is_linked_not_attached(tmp_path):
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    box, clock = Mailbox(certs), FakeClock(wall=T0)
    folder = _revision(tmp_path, bundle_bytes=5000)
    cfg = _settings(tmp_path, f'{{email: {_email(box, tmp_path, ", attach_bundle_max: 4kB")}}}')
    box.controller.start()
    try:
        await asyncio.wait_for(_delivery(cfg, clock, certs, CollectorRegistry()).deliver(folder, SUMMARY), 20)
    finally:
        box.controller.stop()
    (raw,) = box.messages
    mail = message_from_bytes(raw, policy=policy.default)
    assert [p.get_filename() for p in mail.walk() if p.get_filename()] == ["report.pdf"]
    body = next(p for p in mail.walk() if p.get_content_type() == "text/plain").get_content()
    # the links start with the agent's own URL when base_url is not set
    assert ("Evidence bundle:  http://127.0.0.1:9810/reports/2026-11/r1/evidence.tar.gz (not attached: 5,000 bytes, "
            "over the 4,000 a mail carries)") in body


class Hook:
    """A webhook receiver: answers 503 to the first `fail` calls, keeps every call (headers, JSON)."""

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[tuple[dict[str, str], dict]] = []
        self.fail = fail
        self.app = web.Application()
        self.app.router.add_post("/sla", self.post)

    async def post(self, request: web.Request) -> web.Response:
        self.calls.append((dict(request.headers), await request.json()))
        return web.Response(status=503 if len(self.calls) <= self.fail else 200)


async def test_the_webhook_gets_the_rows_and_links_once_even_called_twice_and_after_a_restart(tmp_path):
    hook, clock, registry = Hook(fail=3), FakeClock(wall=T0), CollectorRegistry()
    folder = _revision(tmp_path)
    async with http_server(hook.app) as base:
        cfg = _settings(tmp_path, f'{{webhook: {{url: "{base}/sla"}}, base_url: "{BASE}/"}}')
        d = _delivery(cfg, clock, None, registry)
        task = asyncio.create_task(d.deliver(folder, SUMMARY))
        for n in (1, 2, 3):
            await _attempts(d, "webhook", n)
            if n < 3:
                await clock.advance(deliver_mod.backoff(n))
        task.cancel()  # the agent stops (or dies) while the fourth attempt waits its 2 minutes
        await asyncio.gather(task, return_exceptions=True)
        await d.close()
        await clock.advance(30)
        registry = CollectorRegistry()
        d = _delivery(cfg, clock, None, registry)  # the restart: the record tells where the schedule was
        tasks = [asyncio.create_task(d.deliver(folder, SUMMARY)) for _ in range(2)]
        await wait_for(lambda: d.status().get("webhook"), "the record read again")
        assert _sample(registry, "sla_report_delivery_failing_since_timestamp_seconds", channel="webhook") == T0
        await clock.advance(60)  # not yet: the backoff after the third failure is 120 s, 30 + 60 of it gone
        assert len(hook.calls) == 3
        await clock.advance(30)
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        await d.deliver(folder, SUMMARY)
        await d.close()
    assert len(hook.calls) == 4 and d.status()["webhook"]["state"] == "sent"
    assert {h["Idempotency-Key"] for h, _ in hook.calls} == {hook.calls[0][1]["delivery_id"]}
    payload = hook.calls[-1][1]
    assert payload["month"] == "2026-11" and payload["revision"] == "r1" and payload["verdict"] == "missed"
    assert payload["rows"] == [{k: r[k] for k in r if k != "details"} for r in SUMMARY["rows"]]
    assert payload["links"] == {k: f"{BASE}/reports/2026-11/r1/{f}" for k, f in
                                (("html", "report.html"), ("pdf", "report.pdf"), ("json", "report.json"),
                                 ("bundle", "evidence.tar.gz"))}
    assert _sample(registry, "sla_report_deliveries_total", channel="webhook", result="ok") == 1
    assert _sample(registry, "sla_report_delivery_failing_since_timestamp_seconds", channel="webhook") == 0


async def test_secrets_stay_out_of_the_log_the_status_and_the_record(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="sla_agent")
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    box, clock = Mailbox(certs), FakeClock(wall=T0)
    folder = _revision(tmp_path)
    port = closed_port()  # the webhook's receiver is down
    hook = f"http://hook-user:hook-pw-456@127.0.0.1:{port}/sla?token=tok-789-secret"
    cfg = _settings(tmp_path, f'{{email: {_email(box, tmp_path)}, webhook: {{url: "{hook}"}}}}', "wrong-pw-321")
    d = _delivery(cfg, clock, certs, CollectorRegistry())
    box.controller.start()
    try:
        task = asyncio.create_task(d.deliver(folder, SUMMARY))
        await _attempts(d, "email", 1)
        await _attempts(d, "webhook", 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await d.close()
    finally:
        box.controller.stop()
    shown = json.dumps(d.status()) + (folder / "delivery.json").read_text() + caplog.text
    assert "refused the login of agent" in shown and "hook-user" not in shown
    assert f"http://127.0.0.1:{port}/sla" in shown
    for secret in ("wrong-pw-321", "hook-pw-456", "tok-789-secret", "token="):
        assert secret not in shown, secret


async def test_a_channel_failing_for_a_day_is_given_up_logged_and_its_alert_stays_on(tmp_path, caplog):
    hook, clock, registry = Hook(fail=10_000), FakeClock(wall=T0), CollectorRegistry()
    folder = _revision(tmp_path)
    async with http_server(hook.app) as base:
        cfg = _settings(tmp_path, f'{{webhook: {{url: "{base}/sla"}}}}')
        d = _delivery(cfg, clock, None, registry)
        task = asyncio.create_task(d.deliver(folder, SUMMARY))
        for n in range(1, 100):  # bounded: a day of attempts is about fifty
            await wait_for(lambda: task.done() or d.status().get("webhook", {}).get("attempts", 0) >= n, f"attempt {n}")
            if task.done():
                break
            await clock.advance(deliver_mod.backoff(n))
        await task
        assert d.finished(folder)
        await d.deliver(folder, SUMMARY)  # a channel given up is left: not tried again for this revision
        await d.close()
    attempts = len(hook.calls)
    assert 40 <= attempts <= 60 and d.status()["webhook"]["state"] == "failed"
    assert clock.time() - T0 >= deliver_mod.GIVE_UP > clock.time() - T0 - deliver_mod.MAX_BACKOFF
    assert _sample(registry, "sla_report_deliveries_total", channel="webhook", result="error") == attempts
    assert _sample(registry, "sla_report_deliveries_total", channel="webhook", result="gave_up") == 1
    assert _sample(registry, "sla_report_delivery_failing_since_timestamp_seconds", channel="webhook") == T0
    assert json.loads((folder / "delivery.json").read_text())["channels"]["webhook"]["state"] == "failed"
    assert "given up after 24 h of failures" in caplog.text
