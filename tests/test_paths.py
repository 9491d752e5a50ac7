"""The path to a failing target: the traceroute itself (against 127.0.0.1, and across a routed network of
namespaces made here), the sink that decides when to trace, and, end to end, an agent whose HTTP target
goes behind a broken link: its journal holds the path that stops at hop 2, and its report shows it."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.calendar import Calendar
from agent.config import load_config, parse_config
from agent.config.model import PathOwner, PathSettings
from agent.paths import PATH, PathCapture, trace
from agent.paths.capture import follow, summary
from agent.probes.base import Detail, ProbeResult
from agent.report.build import build_report
from agent.report.formats import render
from agent.report.paths import owner_of

from . import netns
from .servers import ipv6_loopback

REPO = Path(__file__).resolve().parent.parent
NO_NETNS = netns.unavailable()


def test_a_trace_to_the_loopback_reaches_it_in_one_hop():
    path = trace("127.0.0.1", wait=2)
    assert path["reached"] and path["stopped_at"] is None
    assert [(h["hop"], h["address"], h["reply"]) for h in path["hops"]] == [(1, "127.0.0.1", "port_unreachable")]
    assert path["hops"][0]["rtt_ms"] and path["hops"][0]["rtt_ms"][0] > 0


@pytest.fixture(scope="module")
def topo():
    if NO_NETNS:
        pytest.skip(NO_NETNS)
    t = netns.topology()
    try:
        yield t
    finally:
        t.remove()


def _trace_from_client(t: netns.Topology, wait: float = 1.0) -> dict:
    code = f"import json; from agent.paths import trace; print(json.dumps(trace({netns.SERVER!r}, wait={wait})))"
    done = subprocess.run(t.exec("client", sys.executable, "-c", code), cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


def test_across_three_hops_then_a_link_broken_after_hop_2(topo):
    whole = _trace_from_client(topo)
    assert whole["reached"] and [h["address"] for h in whole["hops"]] == [netns.R1, netns.R2, netns.SERVER]
    topo.server_link(up=False)
    try:
        silent = _trace_from_client(topo)  # r2 forwards into a dead link: nothing after it answers
    finally:
        topo.server_link(up=True)
    assert not silent["reached"] and silent["stopped_at"] == 2
    assert [(h["hop"], h["address"]) for h in silent["hops"]] == [(1, netns.R1), (2, netns.R2), (3, None)]


def _result(target: str, outcome: str, at: float, address: str = "127.0.0.1:9", service: str = "api"):
    return ProbeResult(target, service, at, at, 0.1, outcome, "connect_refused" if outcome == "down" else "",
                       detail=Detail(address))


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


async def test_traced_at_an_episodes_first_failure_then_at_most_every_period():
    cfg = parse_config('targets: [{name: api, service: api, url: "http://user:s3cret@127.0.0.1:9/x?token=t0k3n"}]\n'
                       "evidence: {path: {every: 5m}}")
    added, clock = [], _Clock()
    cap = PathCapture(cfg.evidence.path, {t.name: t for t in cfg.targets}, added.append, clock)
    t0 = clock.now
    # failures 30 s apart are one episode: traced at 0 and 301; a minute without failure ends it: 420 starts one
    for at, outcome in ((0, "down"), (30, "down"), (60, "up"), (80, "down"), (130, "down"), (180, "down"),
                        (230, "down"), (280, "down"), (301, "down"), (330, "down"), (360, "down"), (420, "down"),
                        (450, "down")):
        cap(_result("api", outcome, t0 + at), False)
        await asyncio.gather(*cap._running.values())
    cap(ProbeResult("gw", "_control", t0, t0, 0.1, "down", "connect_refused"), False)  # a control: never
    await cap.stop()
    assert [r.outcome for r in added] == [PATH] * 3 and cap.traced == 3
    assert [json.loads(r.detail.artifacts[0][1])["failure_at"] - t0 for r in added] == [0, 301, 420]
    rec = added[0]
    assert rec.error == "reached 127.0.0.1 in 1 hop" and rec.detail.address == "127.0.0.1"
    (name, data), = rec.detail.artifacts
    doc = json.loads(data)
    assert name == "path.json" and doc["dns"] == {"name": "127.0.0.1", "addresses": ["127.0.0.1"]}
    assert doc["path"]["reached"] and doc["failure_at"] == t0
    assert b"s3cret" not in data and b"t0k3n" not in data and b"/x" not in data  # nothing of the request


async def test_off_by_config_and_a_name_that_does_not_resolve():
    cfg = parse_config('targets: [{name: api, service: api, url: "http://127.0.0.1:9/"}]\n'
                       "evidence: {path: {enabled: false}}")
    added = []
    cap = PathCapture(cfg.evidence.path, {t.name: t for t in cfg.targets}, added.append, _Clock())
    cap(_result("api", "down", 0.0), False)
    assert not cap._running and not added
    doc = follow("http://no-such-name.invalid/", "", 0.0, PathSettings())
    assert doc["path"] is None and doc["dns"]["error"]
    assert summary(doc).startswith("not traced: no-such-name.invalid did not resolve")


def test_owners_are_the_most_specific_network_of_the_users_table():
    owners = (PathOwner("10.0.0.0/8", "Corporate"), PathOwner("10.77.2.0/24", "Transit AS64500"),
              PathOwner("2001:db8::/32", "Vendor v6"))
    assert owner_of("10.77.2.2", owners) == "Transit AS64500"
    assert owner_of("10.1.2.3", owners) == "Corporate"
    assert owner_of("2001:db8::1", owners) == "Vendor v6"
    assert owner_of("192.0.2.1", owners) is None and owner_of("not-an-ip", owners) is None


def _config(path: Path, state: Path) -> Path:
    path.write_text(f"""
agent: {{state_dir: "{state}", listen: "127.0.0.1:0", flush_interval: 500ms}}
targets:
  - {{name: api, service: api, url: "http://{netns.SERVER}:8080/", interval: 1s, timeout: 2s}}
evidence:
  path:
    every: 1m
    wait: 1s
    owners: [{{network: 10.77.2.0/24, owner: "Transit AS64500"}}, {{network: 10.77.3.0/24, owner: "Vendor"}}]
""")
    return path


def _journal(state: Path, outcome: str) -> list[tuple]:
    db = state / "ledger.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT at_us, error, address FROM journal WHERE outcome = ?", (outcome,)).fetchall()
    except sqlite3.OperationalError:  # the schema is being made
        return []
    finally:
        conn.close()


def _until(predicate, what: str, agent: subprocess.Popen, log: Path, limit: float = 40.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            raise AssertionError(f"the agent stopped ({agent.returncode}): {log.read_text()[-2000:]}")
        found = predicate()
        if found:
            return found
        time.sleep(0.2)  # waiting for the agent in the namespace to write, not for time to pass
    raise AssertionError(f"not within {limit:g}s: {what}")


def test_an_agent_behind_a_link_broken_after_hop_2_keeps_the_path_and_its_report_shows_it(topo, tmp_path):
    state, cfg = tmp_path / "state", _config(tmp_path / "agent.yaml", tmp_path / "state")
    log = tmp_path / "agent.log"
    server = subprocess.Popen(topo.exec("server", sys.executable, "-m", "http.server", "--bind", netns.SERVER, "8080"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = subprocess.Popen(topo.exec("client", sys.executable, "-m", "agent", "run", "--config", str(cfg)),
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        _until(lambda: _journal(state, "up"), "the target probed up through the three hops", agent, log)
        topo.break_after_hop_2()
        found = _until(lambda: _journal(state, PATH), "a path record in the journal", agent, log)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        server.kill()
        server.wait(10)
    (at_us, line, address), = found
    assert address == netns.SERVER and line.startswith(f"stopped at hop 2 ({netns.R2}")
    config = load_config(cfg)
    at = at_us / 1e6
    month = dt.datetime.fromtimestamp(at, Calendar(config.contract).tz).strftime("%Y-%m")
    doc = build_report(config, str(state), month, now=at + 180)  # once the failing minutes have closed
    (incident,) = doc["incidents"]
    (path,) = incident["paths"]
    assert (path["target"], path["stopped_at"], path["reached"], path["stop_owner"]) == ("api", 2, False,
                                                                                         "Transit AS64500")
    assert [h["address"] for h in path["hops"]] == [netns.R1, netns.R2]
    line = f"api: stopped at hop 2 ({netns.R2}, Transit AS64500: net unreachable); {netns.SERVER} not reached"
    for fmt in ("text", "markdown", "html"):
        assert line in render(doc, fmt), fmt


def test_the_name_resolved_again_is_the_host_each_type_probes():
    from agent.paths.capture import _host

    assert _host("https://user:pw@api.example.com:8443/x?token=t") == "api.example.com"
    assert _host("tcp://smtp.example.com:25") == "smtp.example.com" and _host("icmp://[2001:db8::1]") == "2001:db8::1"
    assert _host("dns://192.0.2.53/api.example.com?type=A") == "192.0.2.53"
    assert _host("dns:api.example.com?type=A") == ""  # the system's resolver: its address is the probe's


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_an_address_with_a_scope_id_is_reached_as_without():
    path = trace("::1%1", wait=2)  # the scope a link-local peer's address carries (fe80::1%eth0)
    assert path["reached"] and path["stopped_at"] is None and path["hops"][0]["reply"] == "port_unreachable"


def test_an_ipv4_mapped_address_is_traced_as_its_ipv4_address():
    path = trace("::ffff:127.0.0.1", wait=2)
    assert path["reached"] and path["address"] == "127.0.0.1"
    assert [(h["address"], h["reply"]) for h in path["hops"]] == [("127.0.0.1", "port_unreachable")]


async def test_what_is_kept_per_target_is_bounded_by_the_targets_configured():
    cfg = parse_config('targets: [{name: api, service: api, url: "http://127.0.0.1:9/"},'
                       '{name: web, service: web, url: "http://127.0.0.1:9/"}]')
    cap = PathCapture(cfg.evidence.path, {t.name: t for t in cfg.targets}, [].append, _Clock())
    for k in range(50):  # results of targets no longer configured (in flight at a reload) leave nothing
        cap(_result(f"gone-{k}", "down", 1000.0 + k), False)
    for name, at in (("api", 1000.0), ("web", 1003.0)):  # one trace at a time, two seconds apart
        cap(_result(name, "down", at), False)
        await asyncio.gather(*cap._running.values())
    assert set(cap._down) == set(cap._last) == {"api", "web"}
    cap.apply(cfg.evidence.path, {t.name: t for t in cfg.targets if t.name == "web"})  # api removed
    assert set(cap._down) == set(cap._last) == {"web"}
    await cap.stop()


async def test_a_host_named_by_a_secret_of_the_config_stays_out_of_the_path_record():
    from agent.redact import Redactor

    cfg = parse_config('targets: [{name: api, service: api, url: "http://${VENDOR_HOST}:9/"}]',
                       environ={"VENDOR_HOST": "tenant-7f3k.invalid"})
    added = []
    cap = PathCapture(cfg.evidence.path, {t.name: t for t in cfg.targets}, added.append, _Clock(),
                      Redactor(cfg.secrets))
    cap(_result("api", "down", 1000.0, address=""), False)  # the name did not resolve: no address used
    await asyncio.gather(*cap._running.values())
    await cap.stop()
    (rec,) = added
    (_, data), = rec.detail.artifacts
    assert b"tenant-7f3k" not in data and "tenant-7f3k" not in rec.error
    assert json.loads(data)["dns"]["name"] == "<redacted>" and rec.error.startswith("not traced: <redacted> did not")


async def test_one_trace_at_a_time_two_seconds_apart_over_all_targets():
    """Routers answer a few datagrams a second: traces close together would silence hops for each other."""
    names = [f"t{i}" for i in range(6)]
    cfg = parse_config("targets: [" + ", ".join(f'{{name: {n}, service: api, url: "http://127.0.0.1:9/"}}'
                                               for n in names) + "]")
    added, clock = [], _Clock()
    cap = PathCapture(cfg.evidence.path, {t.name: t for t in cfg.targets}, added.append, clock)
    t0 = clock.now
    for n in names:  # the vendor's whole network fails: every target at once
        cap(_result(n, "down", t0), False)
    assert len(cap._running) == 1 and cap.busy == 5
    await asyncio.gather(*cap._running.values())
    cap(_result("t4", "down", t0 + 1.9), False)  # the first trace is over, but began under 2 s ago
    cap(_result("t5", "down", t0 + 2), False)
    await asyncio.gather(*cap._running.values())
    await cap.stop()
    assert [r.target for r in added] == ["t0", "t5"] and cap.busy == 6


def test_a_path_that_goes_silent_is_said_to_get_no_answer_after_its_last_hop_not_to_stop_there():
    doc = {"dns": {"name": "api.example.com"}, "address": "10.77.3.2",
           "path": {"address": "10.77.3.2", "reached": False, "stopped_at": 2, "error": "",
                    "hops": [{"hop": 1, "address": "10.77.1.1", "reply": "time_exceeded"},
                             {"hop": 2, "address": "10.77.2.2", "reply": "time_exceeded"},
                             {"hop": 3, "address": None, "reply": None}]}}
    assert summary(doc) == "no answer after hop 2 (10.77.2.2); 10.77.3.2 not reached"
    doc["path"]["hops"][1]["reply"] = "host_unreachable"
    assert summary(doc) == "stopped at hop 2 (10.77.2.2, which answered host unreachable); 10.77.3.2 not reached"


async def test_the_agent_counts_the_paths_it_traced_in_its_metrics(tmp_path):
    import aiohttp

    from agent.app import Agent

    from .servers import closed_port
    from .test_daemon import wait_for

    cfg = parse_config(f'agent: {{listen: "127.0.0.1:0"}}\ntargets: [{{name: api, service: api, '
                       f'url: "http://127.0.0.1:{closed_port()}/", interval: 1s, timeout: 2s}}]')
    agent = Agent(cfg, state_dir=str(tmp_path))
    await agent.start()
    try:
        await wait_for(lambda: agent.paths.traced >= 1, "a path traced to the refused target")
        assert await agent.flush()
        async with aiohttp.ClientSession() as s, s.get(agent.server.url + "/metrics") as resp:
            text = await resp.text()
    finally:
        await agent.stop()
    assert 'sla_agent_paths_total{result="traced"} 1.0' in text
    assert 'sla_agent_paths_total{result="not_traced"} 0.0' in text
