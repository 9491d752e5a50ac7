"""One verdict from several vantage points, on loopback: three real agents (paris, frankfurt, london) each
probe one real target through a TCP proxy of its own that the test opens, refuses or closes; their real
ledgers make one report. Wall time is the test's (ManualClock); requests, proxies and ledgers are real."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import shutil
import sqlite3
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import yaml
from aiohttp import web

from agent.app import Agent
from agent.config import parse_config
from agent.export import server as server_mod
from agent.probes import Capture, make_probe
from agent.report import render
from agent.report.combined import report_over
from agent.rules import write_all

from .servers import closed_port
from .test_daemon import wait_for
from .test_deploy import tool
from .test_evidence import ManualClock

TZ = dt.timezone(dt.timedelta(hours=1))
T0 = dt.datetime(2026, 3, 10, 10, 0, tzinfo=TZ).timestamp()  # a Tuesday: no maintenance window
PLACES = ("paris", "frankfurt", "london")


class Proxy:
    """A TCP proxy to the target: forwarding, or refusing connections (nothing listens on its port)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        w.close()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w))

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def refuse(self) -> None:
        self.server.close()
        await self.server.wait_closed()


def _config(place: str, port: int, state: Path, web_yml: Path | None = None) -> str:
    web = f', web_config_file: "{web_yml}"' if web_yml else ""
    return f"""
agent: {{listen: "127.0.0.1:0", location: {place}, flush_interval: 1s{web}}}
contract: {{maintenance: [], locations: {{min_agree: 2}}}}
targets:
  - {{name: api-health, service: api, url: "http://127.0.0.1:{port}/health", interval: 10s, timeout: 2s}}
"""


REPORT_CONFIG = """
contract: {maintenance: [], locations: {min_agree: 2}}
targets:
  - {name: api-health, service: api, url: "http://127.0.0.1:9/health", interval: 10s, timeout: 2s}
"""


class World:
    """The target, three proxies, three agents, and the minutes the test plays."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.down, self.clock = tmp, False, ManualClock(T0)
        self.agents: dict[str, Agent | None] = {}
        self.probes: dict[str, object] = {}
        self.proxies: dict[str, Proxy] = {}

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=503 if self.down else 200, text="down" if self.down else "ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        for place in PLACES:
            self.proxies[place] = Proxy(port)
            await self.proxies[place].open()
            await self.start_agent(place)

    async def start_agent(self, place: str) -> None:
        cfg = parse_config(_config(place, self.proxies[place].port, self.tmp / place))
        agent = Agent(cfg, state_dir=str(self.tmp / place), clock=self.clock)
        await agent.start()
        await agent.scheduler.stop(0)  # the test plays the ticks
        self.agents[place] = agent
        ev = cfg.evidence  # the probe the agent would make: detail captured, so up records are journaled
        self.probes[place] = make_probe(cfg.targets[0], clock=self.clock,
                                        capture=Capture(ev.headers, ev.body_bytes, ev.sample_up_every))

    async def stop_agent(self, place: str) -> None:
        await self.probes.pop(place).close()
        await self.agents[place].stop()
        self.agents[place] = None

    async def play(self, minutes: range) -> None:
        for minute in minutes:
            for tick in range(6):
                self.clock.wall = T0 + minute * 60 + tick * 10
                for place, agent in self.agents.items():
                    if agent is not None:
                        agent.on_result(await self.probes[place].run())
        for agent in self.agents.values():
            if agent is not None:
                await agent.flush()

    async def close(self) -> None:
        for place in list(self.probes):
            await self.stop_agent(place)
        await self.runner.cleanup()


@pytest.fixture
def played(tmp_path):
    """45 minutes: 5-15 the target down everywhere; 20-30 paris' proxy refusing; 35-40 the target down
    with frankfurt and london stopped."""

    async def run() -> tuple[dict, dict]:
        w = World(tmp_path)
        await w.start()
        await w.play(range(0, 5))
        w.down = True
        await w.play(range(5, 15))
        w.down = False
        await w.play(range(15, 20))
        await w.proxies["paris"].refuse()
        await w.play(range(20, 30))
        await w.proxies["paris"].open()
        await w.play(range(30, 35))
        await w.stop_agent("frankfurt")
        await w.stop_agent("london")
        w.down = True
        await w.play(range(35, 40))
        w.down = False
        await w.start_agent("frankfurt")
        await w.start_agent("london")
        await w.play(range(40, 45))
        pulled, read = await _both_ways(w)
        await w.close()
        return pulled, read

    pulled, read = asyncio.run(run())
    return pulled, read, _minute_states(tmp_path)


def _minute_states(tmp: Path) -> tuple[dict[str, list[int]], list[int]]:
    """Each location's state of each played minute (what its agent's slice counter counted), and the
    minutes the report counts down."""
    from agent.calendar import Calendar
    from agent.ledger import nfields
    from agent.report.build import StoreView
    from agent.slo import S_DOWN, MonthContext, context
    from agent.slo.locations import LocationsMonth
    from agent.slo.slices import service_states
    from agent.store import Store

    cfg = parse_config(REPORT_CONFIG)
    cal = Calendar(cfg.contract)
    m0 = int(T0 // 60)
    per, months = {}, {}
    stores = [Store(tmp / p, thresholds=cfg.contract.thresholds, readonly=True) for p in PLACES]
    try:
        for place, store in zip(PLACES, stores):
            view = StoreView(store, nfields(cfg.contract.thresholds), T0 + 45 * 60)
            per[place] = service_states(view, ["api-health"], "any", cal, m0, m0 + 45, 0.5).tolist()
            months[place] = MonthContext(context(view, cfg, cal), 2026, 3, T0, T0 + 45 * 60, T0 + 47 * 60,
                                         T0 + 45 * 60)
        combined = LocationsMonth(months, (), cfg.contract.min_agree).service("api").states
        down = [m for m in range(45) if combined[m] == S_DOWN]
    finally:
        for store in stores:
            store.close()
    return per, down


async def _both_ways(w: World) -> tuple[dict, dict]:
    """The report from the running agents (pulled over HTTP) and from their ledger files."""
    cfg = parse_config(REPORT_CONFIG)
    now = T0 + 47 * 60
    urls = [f"{p}={w.agents[p].server.url}" for p in PLACES]
    files = [f"{p}={w.tmp / p / 'ledger.db'}" for p in PLACES]
    pulled, locs = await asyncio.to_thread(report_over, cfg, urls, None, "2026-03", now)
    read, _ = await asyncio.to_thread(report_over, cfg, files, None, "2026-03", now)
    assert all(loc.pulled["hash_matches"] and loc.pulled["location"] == loc.name for loc in locs)
    import sqlite3
    with contextlib.closing(sqlite3.connect(w.tmp / "paris" / "ledger.db")) as conn:  # what a pull leaves out
        assert conn.execute("SELECT COUNT(*) FROM journal WHERE outcome = 'up'").fetchone()[0] > 0
    return pulled, read


def _minute(iso: str) -> int:
    return round((dt.datetime.fromisoformat(iso).timestamp() - T0) / 60)


def test_three_locations_make_one_verdict(played):
    doc, _, _ = played
    row = next(r for r in doc["rows"] if r["measure"] == "availability" and r["service"] == "api")
    slices = row["details"]["slices"]
    # 5-15: down for all three -> 10 down slices; 20-30: paris alone (its proxy refusing) -> up
    assert slices["down"] == 10
    assert slices["up"] == 45 - 10 - 5
    by = doc["locations"]["by_location"]
    assert by["paris"]["availability"]["api"]["slices"]["down"] == 10 + 10 + 5
    assert by["frankfurt"]["availability"]["api"]["slices"]["down"] == 10
    # 35-40: paris alone saw it down, the two others were stopped -> unconfirmed
    assert [(_minute(u["start"]), _minute(u["end"]), u["locations"]) for u in doc["unconfirmed"]] == \
        [(35, 40, ["paris"])]
    assert slices["unknown"] >= 5  # unconfirmed minutes lower the coverage
    kinds = {i["start"]: i["error_kinds"] for i in doc["incidents"]}
    assert any(k == {"connect_refused": 60} for k in kinds.values())  # paris' refused minutes: 10 x 6 probes
    assert doc["locations"]["min_agree"] == 2 and doc["locations"]["names"] == list(PLACES)
    assert set(doc["evidence"]["locations"]) == set(PLACES)
    assert "2 of them saw it down" in doc["readings"]["locations"]


def test_pulling_and_reading_the_files_give_byte_identical_reports(played):
    pulled, read, _ = played
    for fmt in ("json", "html", "text"):
        assert render(pulled, fmt) == render(read, fmt)


async def test_the_ledger_endpoint_is_behind_basic_auth_and_checks_its_span(tmp_path):
    hashed = bcrypt.hashpw(b"report-pw", bcrypt.gensalt(rounds=4)).decode()
    web_yml = tmp_path / "web.yml"
    web_yml.write_text(f"basic_auth_users:\n  reporter: '{hashed}'\n")
    cfg = parse_config(_config("paris", 9, tmp_path, web_yml))
    agent = Agent(cfg, state_dir=str(tmp_path / "state"))
    await agent.start()
    url = agent.server.url + "/api/v1/ledger"
    ok = {"Authorization": "Basic " + base64.b64encode(b"reporter:report-pw").decode()}
    day = 86400
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url, params={"from": str(T0), "to": str(T0 + day)}) as resp:
                assert resp.status == 401
            async with s.get(url, params={"from": str(T0), "to": str(T0 + day)}, headers=ok) as resp:
                assert resp.status == 200 and resp.headers["X-Sla-Location"] == "paris"
                assert resp.headers["Content-Type"] == "application/gzip" and resp.headers["X-Sla-Ledger-Schema"]
            bad = [({"from": str(T0 + day), "to": str(T0)}, "from must be before to"),
                   ({"from": str(T0), "to": str(T0 + 401 * day)}, "at most 400 days"),
                   ({"from": "yesterday", "to": str(T0)}, "ISO 8601"),
                   ({"from": "nan", "to": str(T0)}, "ISO 8601"),
                   ({"from": "2026-03-01T00:00:00", "to": str(T0)}, "ISO 8601"),
                   ({"from": str(T0), "to": str(T0 + day), "journal": "some"}, "journal must be one of"),
                   ({"to": str(T0)}, "required")]
            for params, why in bad:
                async with s.get(url, params=params, headers=ok) as resp:
                    assert resp.status == 400 and why in (await resp.json())["error"], params
    finally:
        await agent.stop()


def test_the_alert_fires_for_exactly_the_minutes_the_report_counts_down(played, tmp_path):
    """The generated rules under `promtool test rules`, fed what each agent's slice counter counted in the
    same scenario (one sample every 15 s, a minute counted 5 s after it ends)."""
    _, _, (per, down) = played
    assert down == list(range(5, 15))
    write_all(parse_config(REPORT_CONFIG), tmp_path / "rules")
    series = []
    for place, states in per.items():
        closed = [sum(1 for m in range(45) if states[m] == 1 and (m + 1) * 60 + 5 <= t * 15) for t in range(47 * 4)]
        series.append({"series": f'sla_slices_total{{service="api",state="down",location="{place}",job="sla-agent"}}',
                       "values": " ".join(map(str, closed))})
        series.append({"series": f'sla_agent_build_info{{location="{place}",job="sla-agent"}}',
                       "values": " ".join("1" for _ in range(47 * 4))})
    rule = next(r for g in yaml.safe_load((tmp_path / "rules" / "prometheus" / "rules" / "sla-agent.rules.yml")
                                          .read_text())["groups"] for r in g["rules"]
                if r.get("alert") == "SLAServiceDownConfirmed")

    def fired(m: int) -> dict:
        seen = sum(1 for states in per.values() if states[m] == 1)
        return {"exp_labels": {"service": "api", **rule["labels"]},
                "exp_annotations": {"summary": rule["annotations"]["summary"].replace("{{ $labels.service }}", "api")
                                    .replace("{{ $value }}", str(seen)),
                                    "description": rule["annotations"]["description"]}}

    checks = [{"eval_time": f"{(m + 1) * 60 + 35}s", "alertname": "SLAServiceDownConfirmed",
               "exp_alerts": [fired(m)] if m in down else []} for m in range(44)]
    test = {"rule_files": [str(tmp_path / "rules" / "prometheus" / "rules" / "sla-agent.rules.yml")],
            "evaluation_interval": "15s",
            "tests": [{"interval": "15s", "input_series": series, "alert_rule_test": checks}]}
    (tmp_path / "scenario.test.yml").write_text(json.dumps(test))
    p = subprocess.run([tool("promtool"), "test", "rules", str(tmp_path / "scenario.test.yml")], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    # the minutes only paris saw down (its proxy refusing, 20-30; the others stopped, 35-40) never fire
    assert not set(range(20, 30)) & set(down) and not set(range(35, 40)) & set(down)


def test_an_evidence_bundle_over_three_locations_verifies_offline_and_catches_an_edited_ledger(played, tmp_path,
                                                                                               capsys):
    """`evidence export --location ...`: one ledger extract and journal per location; `evidence verify` walks
    each chain and builds the combined report again. Editing one location's counts (and the manifest, as a
    forger would) is found."""
    import hashlib
    import io
    import sqlite3
    import tarfile
    import zlib

    from agent.cli import main

    cfg_path = tmp_path / "report.yaml"
    cfg_path.write_text(REPORT_CONFIG)
    bundle = tmp_path / "march.tar.gz"
    args = ["evidence", "export", "--config", str(cfg_path), "--state-dir", str(tmp_path / "nowhere"),
            "--month", "2026-03", "--output", str(bundle)]
    assert main(args + [a for p in PLACES for a in ("--location", f"{p}={tmp_path / p}")]) == 0
    with tarfile.open(bundle) as tar:
        names = {m.name.rsplit("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}
    assert {f"ledger-{p}.db" for p in PLACES} <= set(names) and not any(n.endswith(".jsonl") for n in names)
    assert json.loads(names["report.json"])["locations"]["names"] == list(PLACES)
    capsys.readouterr()
    assert main(["evidence", "verify", str(bundle), "--allow-unsigned"]) == 0  # the report.yaml has no key
    assert "locations 3" in capsys.readouterr().out
    assert main(["evidence", "journal", str(bundle), "--output", str(tmp_path / "lines")]) == 0
    said = capsys.readouterr().out
    assert all(f"journal-{p}.jsonl: " in said for p in PLACES), said
    assert sorted(p.name for p in (tmp_path / "lines").iterdir()) == sorted(f"journal-{p}.jsonl" for p in PLACES)

    db = tmp_path / "forged.db"
    db.write_bytes(names["ledger-frankfurt.db"])
    with sqlite3.connect(db) as conn:  # frankfurt's minutes say "up" where they said "down"
        rows = conn.execute("SELECT target_id, hour, counts FROM minutes").fetchall()
        for tid, hour, counts in rows:
            conn.execute("UPDATE minutes SET counts=? WHERE target_id=? AND hour=?",
                         (zlib.compress(bytes(len(zlib.decompress(counts)))), tid, hour))
    names["ledger-frankfurt.db"] = db.read_bytes()
    manifest = json.loads(names["MANIFEST.json"])
    manifest["files"]["ledger-frankfurt.db"] = hashlib.sha256(names["ledger-frankfurt.db"]).hexdigest()
    names["MANIFEST.json"] = json.dumps(manifest).encode()
    forged = tmp_path / "forged.tar.gz"
    with tarfile.open(forged, "w:gz") as tar:
        for name, data in names.items():
            info = tarfile.TarInfo(f"b/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert main(["evidence", "verify", str(forged), "--allow-unsigned"]) == 1
    err = capsys.readouterr().err
    assert "location frankfurt: its ledger rows differ" in err and "location paris" not in err


class HeldExtracts:
    """The store's copy of a span (write_extract), held in its worker thread until the test lets it go;
    notes how many ran at once, the cancel each was handed and how each ended."""

    def __init__(self, monkeypatch) -> None:
        from agent.store import journal_tables

        self.real = journal_tables.write_extract
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.cancels: list = []
        self.outcomes: list[str] = []
        monkeypatch.setattr(journal_tables, "write_extract", self)

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.cancels.append(kwargs.get("cancel", args[6] if len(args) > 6 else None))
        try:
            self.gate.wait(20)
            self.real(*args, **kwargs)
            self.outcomes.append("completed")
        except Exception as exc:
            self.outcomes.append(type(exc).__name__)
            raise
        finally:
            with self.lock:
                self.running -= 1


@contextlib.asynccontextmanager
async def agent_with_a_ledger(tmp_path):
    """A real agent (wall time the test's) whose ledger holds a minute of real probes of a closed port."""
    cfg = parse_config(_config("paris", closed_port(), tmp_path))
    clock = ManualClock(T0)
    agent = Agent(cfg, state_dir=str(tmp_path / "state"), clock=clock)
    await agent.start()
    await agent.scheduler.stop(0)  # the test plays the probes
    probe = make_probe(cfg.targets[0], clock=clock)
    try:
        for tick in range(6):
            clock.wall = T0 + tick * 10
            agent.on_result(await probe.run())
        assert await agent.flush()
        yield agent, probe
    finally:
        await probe.close()
        await agent.stop()


def _stored_probes(state: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT COUNT(*) FROM journal WHERE outcome != 'path'").fetchone()[0]  # no paths traced


async def test_ledger_extracts_run_two_at_a_time_off_the_flushes_threads(tmp_path, monkeypatch):
    """Twenty full-range extracts at once took every worker thread and the store's lock: flushes stopped
    for over a minute and /metrics failed. Here ten at once: two run, the others get a 503 with
    Retry-After, and a flush and a scrape go through while the two are held."""
    held = HeldExtracts(monkeypatch)
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))  # as many as extracts may run
    async with agent_with_a_ledger(tmp_path) as (agent, probe):
        url = agent.server.url + "/api/v1/ledger"
        span = {"from": str(T0 - 86400), "to": str(T0 + 86400)}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

            async def pull() -> tuple[int, str | None, int]:
                async with s.get(url, params=span) as resp:
                    return resp.status, resp.headers.get("Retry-After"), len(await resp.read())

            pulls = [asyncio.create_task(pull()) for _ in range(10)]
            try:
                async def flush() -> tuple[bool | str, int]:
                    before = _stored_probes(tmp_path / "state")
                    agent.on_result(await probe.run())
                    try:
                        flushed = await asyncio.wait_for(agent.flush(), 20)  # bounded: it waited for the extracts
                    except asyncio.TimeoutError:
                        flushed = "no flush in 20 s"
                    return flushed, _stored_probes(tmp_path / "state") - before

                await wait_for(lambda: held.running >= 1, "an extract held")
                flushes = [await flush()]  # the store's lock is free
                await wait_for(lambda: held.running >= 2 and sum(t.done() for t in pulls) >= 8 or held.most > 2,
                               f"two extracts held, the others answered (flushes so far: {flushes})")
                flushes.append(await flush())  # and so are the threads the flushes use
                async with s.get(agent.server.url + "/metrics") as resp:
                    scraped = resp.status
            finally:
                held.gate.set()
            answers = await asyncio.gather(*pulls)
    assert (flushes, scraped) == ([(True, 1)] * 2, 200)
    assert held.most == 2, f"{held.most} extracts ran at once"
    assert sorted((status, retry) for status, retry, _ in answers) == [(200, None)] * 2 + [(503, "10")] * 8
    assert all(size > 0 for status, _, size in answers if status == 200)


async def test_an_extract_stops_when_its_client_goes_and_leaves_no_file(tmp_path, monkeypatch, caplog):
    held = HeldExtracts(monkeypatch)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    caplog.set_level(logging.INFO, logger="sla_agent.http")
    async with agent_with_a_ledger(tmp_path) as (agent, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.server.port)
        writer.write(f"GET /api/v1/ledger?from={T0 - 86400:.0f}&to={T0 + 86400:.0f} HTTP/1.1\r\n"
                     f"Host: 127.0.0.1\r\n\r\n".encode())
        await wait_for(lambda: held.running == 1, "the extract running")
        assert list((tmp_path / "tmp").iterdir())  # its temporary folder
        writer.transport.abort()  # the client goes
        try:
            await wait_for(lambda: getattr(held.cancels[0], "is_set", lambda: False)(), "the extract told to stop")
        finally:
            held.gate.set()
        await wait_for(lambda: held.outcomes, "the extract's end")
        extracts = agent.server.app[server_mod.EXTRACTS]
        await wait_for(lambda: extracts.running == 0, "the request's end")
    assert held.outcomes == ["Cancelled"]
    assert (extracts.abandoned, extracts.served) == (1, 0)
    assert not list((tmp_path / "tmp").iterdir()), "temporary files left behind"
    assert "its client went away" in caplog.text


async def test_an_extract_is_refused_when_temporary_space_is_short(tmp_path, monkeypatch):
    held = HeldExtracts(monkeypatch)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=1 << 20))
    async with agent_with_a_ledger(tmp_path) as (agent, _):
        async with aiohttp.ClientSession() as s:
            async with s.get(agent.server.url + "/api/v1/ledger",
                             params={"from": str(T0 - 86400), "to": str(T0 + 86400)}) as resp:
                status, error = resp.status, (await resp.json()).get("error", "") if resp.status != 200 else ""
    assert status == 507 and "1 MiB free for temporary files" in error, (status, error)
    assert held.cancels == [], "the extract started all the same"
