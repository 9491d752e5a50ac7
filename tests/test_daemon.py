"""The daemon for real: exporter scraped over HTTP (promtool checks it), signals, reload, sd_notify."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agent.app import Agent
from agent.config import parse_config

from .conftest import free_port
from .servers import http_server


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install the Debian package `prometheus` (bash .ci/run does)")
    return path


async def ok(request):
    return web.json_response({"status": "ok"})


async def slow(request):
    await asyncio.sleep(0.6)
    return web.Response(text="slow")


def app() -> web.Application:
    a = web.Application()
    a.router.add_get("/", ok)
    a.router.add_get("/slow", slow)
    return a


async def wait_for(predicate, what: str, limit: float = 20.0) -> None:
    """Waits for an event produced by real I/O (not for time to pass), bounded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_exporter_over_http_passes_promtool(tmp_path):
    async with http_server(app()) as base:
        cfg = parse_config(f"""
agent: {{listen: "127.0.0.1:0", flush_interval: 1s, location: test-lab}}
targets:
  - {{name: api-fast, service: api, url: "{base}/", interval: 200ms, timeout: 2s, max_in_flight: 11}}
  - {{name: api-slow, service: api, url: "{base}/slow", interval: 200ms, timeout: 2s, max_in_flight: 11}}
  - {{name: web-ui, service: web, url: "{base}/", interval: 200ms, timeout: 1s, max_in_flight: 6, labels: {{team: crm}}}}
controls:
  - {{name: control, url: "{base}/", interval: 500ms, timeout: 400ms}}
""")
        agent = Agent(cfg, state_dir=str(tmp_path / "state"))
        seen: list = []
        agent.listeners.append(seen.append)
        await agent.start()
        try:
            await wait_for(lambda: sum(1 for r in seen if r.target == "api-slow") >= 3, "probes")
            await agent.evaluate_now()
            async with aiohttp.ClientSession() as s:
                async with s.get(agent.server.url + "/metrics") as resp:
                    assert resp.status == 200
                    text = await resp.text()
                async with s.get(agent.server.url + "/readyz") as resp:
                    assert resp.status == 200
                async with s.get(agent.server.url + "/healthz") as resp:
                    assert resp.status == 200
                async with s.get(agent.server.url + "/api/v1/status") as resp:
                    status = await resp.json()
                async with s.post(agent.server.url + "/metrics", data=b"x") as resp:
                    assert resp.status == 405
                async with s.get(agent.server.url + "/api/v1/report?month=2026-13") as resp:
                    assert resp.status == 400
        finally:
            await agent.stop()
    proc = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'location="test-lab"' in text
    info = [line for line in text.splitlines() if line.startswith("sla_target_info") and 'target="web-ui"' in line]
    assert info and 'team="crm"' in info[0]
    for name in ("sla_probes_total", "sla_probe_duration_seconds_bucket", "sla_probe_phase_duration_seconds_bucket",
                 "sla_probe_success", "sla_agent_loop_lag_seconds_bucket", "sla_agent_build_info",
                 "sla_agent_probes_in_flight", "sla_agent_ticks_skipped_total", "sla_agent_throttle_waits_total",
                 "sla_availability_ratio", "sla_coverage_ratio", "sla_latency_below_ratio",
                 "sla_latency_quantile_seconds", "sla_objective_met", "sla_error_budget_remaining_ratio",
                 "sla_maintenance_active", "sla_counted_probes_total"):
        assert name in text, name
    buckets = {line.split('le="')[1].split('"')[0] for line in text.splitlines()
               if line.startswith("sla_probe_duration_seconds_bucket")}
    assert {"0.5", "1.0"} <= buckets
    slow_lt_half = [line for line in text.splitlines() if line.startswith("sla_probe_duration_seconds_bucket")
                    and 'target="api-slow"' in line and 'le="0.5"' in line]
    assert slow_lt_half and float(slow_lt_half[0].split()[-1]) == 0.0  # 0.6 s requests are not below 0.5 s
    assert status["targets"]["api-fast"]["outcome"] == "up"
    assert status["targets"]["control"]["control"] is True
    assert "api" in status["services"] and "web" in status["services"]


async def test_control_checks_failing_make_failures_inconclusive(tmp_path):
    from agent.probes import ProbeResult
    cfg = parse_config("""
targets: [{name: api, service: api, url: "http://127.0.0.1:9/", interval: 1s, timeout: 2s, max_in_flight: 3}]
controls: [{name: gw, url: "http://127.0.0.1:8/", interval: 1s, timeout: 500ms}]
""")
    agent = Agent(cfg, state_dir=str(tmp_path))
    seen: list = []
    agent.listeners.append(seen.append)
    t = 1_795_000_000.0
    down = ProbeResult("api", "api", t, 1.0, 0.01, "down", "connect_refused", error="refused")
    agent.on_result(down)  # no control result yet: the provider is blamed
    agent.on_result(ProbeResult("gw", "_control", t + 1, 2.0, 0.01, "down", "connect_refused"))
    agent.on_result(ProbeResult("api", "api", t + 1.5, 2.5, 0.01, "down", "dns", error="nxdomain"))
    agent.on_result(ProbeResult("gw", "_control", t + 2, 3.0, 0.01, "up"))
    agent.on_result(ProbeResult("api", "api", t + 2.5, 3.5, 0.01, "down", "dns", error="nxdomain"))
    api = [r for r in seen if r.target == "api"]
    assert [(r.outcome, r.error_kind) for r in api] == [
        ("down", "connect_refused"), ("inconclusive", "agent_network"), ("down", "dns")]


def _run_daemon(config: Path, state: Path, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config), "--state-dir", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _http_get(port: int, path: str, deadline: float) -> int:
    import urllib.error
    import urllib.request
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:  # nosec - loopback
                return resp.status
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _wait_metric(port: int, needle: str, limit: float = 20.0) -> None:
    """Polls /metrics until the daemon (another process) shows `needle`."""
    import urllib.request
    deadline = time.monotonic() + limit
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:  # nosec - loopback
            if needle in resp.read().decode():
                return
        assert time.monotonic() < deadline, f"/metrics never showed {needle}"
        time.sleep(0.05)


def _write_config(path: Path, port: int, target_port: int, extra: str = "") -> None:
    path.write_text(f"""
agent: {{listen: "127.0.0.1:{port}", flush_interval: 500ms, shutdown_grace: 2s}}
targets:
  - {{name: web-ui, service: web, url: "http://127.0.0.1:{target_port}/", interval: 250ms, timeout: 200ms}}
{extra}""")


def test_sighup_reload_and_sigterm(tmp_path, target_server):
    port = free_port()
    cfg = tmp_path / "agent.yaml"
    _write_config(cfg, port, target_server)
    proc = _run_daemon(cfg, tmp_path / "state")
    try:
        assert _http_get(port, "/readyz", time.monotonic() + 20) == 200
        cfg.write_text("targets: [{name: broken, url: 12}]\n")  # a bad new config is refused
        proc.send_signal(signal.SIGHUP)
        _write_config(tmp_path / "good.yaml", port, target_server,
                      f'  - {{name: web-2, service: web, url: "http://127.0.0.1:{target_server}/", interval: 250ms, '
                      f'timeout: 200ms}}')
        _wait_metric(port, 'sla_agent_config_reloads_total{result="error"} 1.0')
        assert proc.poll() is None, "a bad config must not stop the daemon"
        (tmp_path / "good.yaml").replace(cfg)
        proc.send_signal(signal.SIGHUP)
        _wait_metric(port, 'target="web-2"')
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "reload refused" in err and "targets[0]" in err
    assert "configuration reloaded: 2 targets" in err
    assert "ledger flushed" in err
    assert (tmp_path / "state" / "ledger.db").exists()


def test_sd_notify_ready_watchdog_stopping(tmp_path, target_server):
    sock_path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(sock_path)
    server.settimeout(20)
    port = free_port()
    cfg = tmp_path / "agent.yaml"
    _write_config(cfg, port, target_server)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="400000")
    proc = _run_daemon(cfg, tmp_path / "state", env=env)
    messages: list[str] = []
    try:
        while not any("READY=1" in m for m in messages) or sum("WATCHDOG=1" in m for m in messages) < 2:
            messages.append(server.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        while not any("STOPPING=1" in m for m in messages):
            messages.append(server.recv(4096).decode())
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    assert proc.returncode == 0
    assert any(m.startswith("READY=1") for m in messages)


def test_notifier_is_a_no_op_outside_systemd():
    from agent.sdnotify import Notifier
    n = Notifier({})
    assert not n.enabled and n.ready() is False and n.watchdog_interval is None
    assert Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "10000000"}).watchdog_interval == 5.0
