"""Deployment artefacts checked by the real tools: promtool, amtool, systemd-analyze, and a real
Prometheus scraping a real agent and evaluating the generated rules."""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from agent.app import Agent
from agent.config import load_config, parse_config
from agent.demo import SimSettings, Simulator
from agent.rules import dashboard, dashboard_exprs, write_all

from .conftest import ROOT, free_port

DEPLOY = ROOT / "deploy"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: bash .ci/run installs it (Debian packages prometheus, "
                    f"prometheus-alertmanager, systemd)")
    return path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def test_committed_deploy_files_match_the_generator(tmp_path):
    cfg = load_config(ROOT / "config" / "crm360.yaml")
    written = write_all(cfg, tmp_path)
    for path in written:
        rel = path.relative_to(tmp_path)
        committed = DEPLOY / rel
        assert committed.exists(), f"deploy/{rel} is missing: run sla-agent rules --config config/crm360.yaml " \
                                   f"--output-dir deploy"
        assert committed.read_text() == path.read_text().replace(str(ROOT / "config" / "crm360.yaml"),
                                                                 "config/crm360.yaml"), \
            f"deploy/{rel} differs from the generator's output: regenerate it"


def test_promtool_checks_rules_and_config():
    p = run(tool("promtool"), "check", "rules", str(DEPLOY / "prometheus" / "rules" / "sla-agent.rules.yml"))
    assert p.returncode == 0, p.stdout + p.stderr
    p = run(tool("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert p.returncode == 0, p.stdout + p.stderr


def test_promtool_rule_unit_tests():
    p = run(tool("promtool"), "test", "rules", str(ROOT / "tests" / "data" / "promtool" / "sla-agent.test.yml"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


def test_amtool_checks_alertmanager_config():
    p = run(tool("amtool"), "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))
    assert p.returncode == 0, p.stdout + p.stderr


def test_amtool_routes_contract_alerts_to_vendor_management_only():
    """Every generated alert, with its own labels, through the committed Alertmanager routes: the contract
    alerts reach `sla-contract` and nothing else; the burn-rate and health alerts the on-call's receivers."""
    config = str(DEPLOY / "alertmanager" / "alertmanager.yml")
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "sla-agent.rules.yml").read_text())
    alerts = {r["alert"]: r["labels"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    contract = {"SLAMonthLost", "SLAMonthAtRisk", "SLALatencyPeriodLost", "SLALatencyPeriodAtRisk",
                "SLATicketDeadlineSoon", "SLATicketDeadlineMissed", "SLATicketComplianceLow"}
    assert contract <= set(alerts)
    for name, labels in alerts.items():
        args = [f"alertname={name}"] + [f"{k}={v}" for k, v in labels.items()] + ["service=api", "priority=P1"]
        p = run(tool("amtool"), "config", "routes", "test", f"--config.file={config}", *args)
        receivers = p.stdout.split()
        expected = "sla-contract" if name in contract else \
            {"page": "sla-page", "ticket": "sla-ticket", "info": "null"}[labels["severity"]]
        assert receivers == [expected], (name, p.stdout, p.stderr)
    p = run(tool("amtool"), "config", "routes", "test", f"--config.file={config}", "--verify.receivers=sla-page",
            "alertname=SLAAvailabilityBurnRateFast1h", "severity=page", "slo=availability", "service=api")
    assert p.returncode == 0, p.stdout + p.stderr


def test_contract_receiver_by_email_passes_amtool(tmp_path):
    cfg = parse_config("""
alerts: {contract_email: vendor-management@example.com, smtp_smarthost: "smtp.example.com:587",
         smtp_from: sla-agent@example.com}
targets: [{name: api, service: api, url: "http://127.0.0.1:9/"}]
""")
    write_all(cfg, tmp_path)
    config = tmp_path / "alertmanager" / "alertmanager.yml"
    p = run(tool("amtool"), "check-config", str(config))
    assert p.returncode == 0, p.stdout + p.stderr
    receiver = next(r for r in yaml.safe_load(config.read_text())["receivers"] if r["name"] == "sla-contract")
    assert receiver["email_configs"][0]["to"] == "vendor-management@example.com"


def test_systemd_unit_verifies_and_is_sandboxed(tmp_path, capsys):
    unit = (DEPLOY / "systemd" / "sla-agent.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    beside = Path(sys.executable).parent / "sla-agent"  # the environment running the tests
    exe = str(beside) if beside.exists() else shutil.which("sla-agent")
    assert exe, "sla-agent is not installed (pip install -e .)"
    installed = tmp_path / "sla-agent.service"
    installed.write_text(unit.replace("/opt/sla-agent/bin/sla-agent", exe))  # as installed on this machine
    p = run(tool("systemd-analyze"), "verify", str(installed))
    assert p.returncode == 0, p.stdout + p.stderr
    p = run(tool("systemd-analyze"), "security", "--offline=true", str(installed))
    m = re.search(r"Overall exposure level for sla-agent.service: ([0-9.]+) (\w+)", p.stdout)
    assert m, p.stdout + p.stderr
    with capsys.disabled():
        print(f"\n[systemd-analyze security] sla-agent.service exposure {m.group(1)} {m.group(2)}")
    assert float(m.group(1)) <= 2.0


def test_the_icmp_raw_drop_in_verifies_and_keeps_the_sandbox(tmp_path, capsys):
    """The unit with deploy/systemd/icmp-raw.conf merged in, as systemd reads a drop-in's [Service] lines."""
    unit = (DEPLOY / "systemd" / "sla-agent.service").read_text()
    drop_in = (DEPLOY / "systemd" / "icmp-raw.conf").read_text()
    assert "AmbientCapabilities=CAP_NET_RAW" in drop_in and "PrivateUsers=no" in drop_in
    exe = shutil.which("sla-agent") or str(Path(sys.executable).parent / "sla-agent")
    merged = tmp_path / "sla-agent.service"
    merged.write_text(unit.replace("/opt/sla-agent/bin/sla-agent", exe) + "\n" + drop_in)
    p = run(tool("systemd-analyze"), "verify", str(merged))
    assert p.returncode == 0, p.stdout + p.stderr
    p = run(tool("systemd-analyze"), "security", "--offline=true", str(merged))
    m = re.search(r"Overall exposure level for sla-agent.service: ([0-9.]+) (\w+)", p.stdout)
    assert m, p.stdout + p.stderr
    with capsys.disabled():
        print(f"\n[systemd-analyze security] sla-agent.service + icmp-raw.conf exposure {m.group(1)} {m.group(2)}")
    assert float(m.group(1)) <= 2.0


def _exposure(unit: Path) -> str:
    p = run(tool("systemd-analyze"), "security", "--offline=true", str(unit))
    m = re.search(r"Overall exposure level for sla-agent.service: ([0-9.]+ \w+)", p.stdout)
    assert m, p.stdout + p.stderr
    return m.group(1)


def test_the_signing_key_drop_in_verifies_and_keeps_the_score(tmp_path, capsys):
    """The unit with deploy/systemd/signing-key.conf merged in: it passes the key as a credential and
    changes nothing of the sandbox (both scored in the same run)."""
    unit = (DEPLOY / "systemd" / "sla-agent.service").read_text()
    drop_in = (DEPLOY / "systemd" / "signing-key.conf").read_text()
    assert "LoadCredential=" in drop_in and "LoadCredential=" not in unit  # a missing key must not stop the unit
    exe = shutil.which("sla-agent") or str(Path(sys.executable).parent / "sla-agent")
    alone, merged = tmp_path / "alone" / "sla-agent.service", tmp_path / "merged" / "sla-agent.service"
    for path, text in ((alone, unit), (merged, unit + "\n" + drop_in)):
        path.parent.mkdir()
        path.write_text(text.replace("/opt/sla-agent/bin/sla-agent", exe))
    p = run(tool("systemd-analyze"), "verify", str(merged))
    assert p.returncode == 0, p.stdout + p.stderr
    before, after = _exposure(alone), _exposure(merged)
    with capsys.disabled():
        print(f"\n[systemd-analyze security] sla-agent.service exposure {before}; + signing-key.conf {after}")
    assert after == before


def test_dashboard_covers_what_users_look_at():
    d = json.loads((DEPLOY / "grafana" / "dashboards" / "sla-agent.json").read_text())
    titles = " | ".join(p["title"] for p in d["panels"])
    for word in ("Availability", "budget", "below the thresholds", "quantiles", "phases", "Coverage", "Ticket"):
        assert word in titles
    assert d["annotations"]["list"][0]["expr"] == "max(sla_maintenance_active) > 0"


# -- a real Prometheus against a real agent ---------------------------------------------------------
def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as resp:  # nosec - loopback
        return json.loads(resp.read())


async def test_real_prometheus_agrees_with_the_agent(tmp_path):
    prometheus = tool("prometheus")
    sim = Simulator(SimSettings(api_median_ms=120, slow_share=0.3, slow_ms=700, error_rate=0.0, outage_every=0,
                                require_token=False, seed=1))
    port = await sim.start("127.0.0.1", 0)
    closed = free_port()
    cfg = parse_config(f"""
agent: {{listen: "127.0.0.1:0", flush_interval: 1s}}
contract: {{maintenance: []}}
targets:
  - {{name: api-health, service: api, url: "http://127.0.0.1:{port}/api/health", interval: 250ms, timeout: 2s, max_in_flight: 10}}
  - {{name: api-contacts, service: api, url: "http://127.0.0.1:{port}/api/v1/contacts", interval: 250ms, timeout: 2s, max_in_flight: 10}}
  - {{name: web-ui, service: web, url: "http://127.0.0.1:{closed}/", interval: 250ms, timeout: 1s, max_in_flight: 5}}
""")
    agent = Agent(cfg, state_dir=str(tmp_path / "state"))
    await agent.start()
    rules = tmp_path / "rules"
    write_all(cfg, rules)
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{rules / 'prometheus' / 'rules' / 'sla-agent.rules.yml'}"]
scrape_configs:
  - job_name: sla-agent
    static_configs: [{{targets: ["127.0.0.1:{agent.server.port}"]}}]
""")
    proc = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}",
                             "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        loop = asyncio.get_running_loop()
        # wait for the first closed one-minute slice of each service (real minutes: this is what is tested)
        deadline = loop.time() + 150
        while True:
            await asyncio.sleep(1)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "prometheus exited"
            try:
                # a decided slice: a loaded machine can leave the first minute unknown (stalled probes)
                res = await asyncio.to_thread(_query, base,
                                              'sum by (service) (sla_slices_total{state=~"up|down"})')
            except OSError:
                continue
            if len(res["data"]["result"]) == 2 and all(float(r["value"][1]) >= 1 for r in res["data"]["result"]):
                break
            assert loop.time() < deadline, "no closed slice seen by Prometheus"
        await asyncio.sleep(3)  # two more scrapes and rule evaluations of the latest data
        while True:  # a loaded machine may evaluate the recording rule later than the slices arrive (NaN)
            avail = await asyncio.to_thread(_query, base, "sla:availability:ratio30d")
            if len(avail["data"]["result"]) == 2 and all(r["value"][1] != "NaN" for r in avail["data"]["result"]):
                break
            assert loop.time() < deadline + 60, ("no availability ratio evaluated", avail)
            await asyncio.sleep(1)
        await agent.evaluate_now()
        status = agent.status()
        lat = await asyncio.to_thread(_query, base, 'sla:latency_below:ratio7d{service="api"}')
        slices = await asyncio.to_thread(_query, base, "sum by (service, state) (sla_slices_total)")
        # every PromQL expression of the Grafana dashboard is accepted by this Prometheus
        for expr in dashboard_exprs(dashboard(cfg)):
            e = expr.replace("$service", ".*").replace("$__rate_interval", "1m")
            if e.startswith("label_values("):
                continue
            r = await asyncio.to_thread(_query, base, e)
            assert r["status"] == "success", (expr, r)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        await agent.stop()
        await sim.stop()
    # latency fractions: Prometheus (from the le="0.5"/"1.0" buckets) vs the agent's exact counts
    api7d = status["services"]["api"]["latency"]["7d"]
    count = api7d["count"]
    assert count > 0, (status["services"]["api"], slices)
    tolerance = 8 * 3 / count + 0.005  # 8 probes/s, a few seconds between the two reads
    got = {r["metric"]["threshold"]: float(r["value"][1]) for r in lat["data"]["result"]}
    for th in ("0.5", "1"):
        want = api7d["below"][th]["fraction"]
        assert abs(got[th] - want) <= tolerance, (th, got[th], want, count)
    assert 0.5 < api7d["below"]["0.5"]["fraction"] < 0.95  # the slow tail is there: not a trivial 1.0
    # availability: slices counted by Prometheus vs the agent's month figures
    prom_slices = {(r["metric"]["service"], r["metric"]["state"]): float(r["value"][1]) for r in
                   slices["data"]["result"]}
    for svc, state in (("api", "up"), ("web", "down")):
        agent_n = status["services"][svc]["availability"]["month"]["slices"][state]
        assert abs(prom_slices[(svc, state)] - agent_n) <= 1, (svc, state, prom_slices, agent_n)
    ratios = {r["metric"]["service"]: float(r["value"][1]) for r in avail["data"]["result"]}
    assert ratios["api"] == status["services"]["api"]["availability"]["month"]["ratio"] == 1.0
    assert ratios["web"] == status["services"]["web"]["availability"]["month"]["ratio"] == 0.0
