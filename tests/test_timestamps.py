"""Independent time: the chain's head time-stamped by a real local RFC 3161 authority (`openssl ts -reply`
behind an aiohttp server), the tokens stored, sealed, shipped in a bundle and checked offline against the
authority's certificate; an authority down or answering garbage, retried without holding the probes; a
forger holding the agent's key who rebuilds the chain, named by the tokens."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import subprocess  # nosec - promtool
import zlib
from pathlib import Path
from typing import AsyncIterator

import numpy as np
import yaml
from aiohttp import web

from agent.app import Agent
from agent.cli import main
from agent.config import load_config
from agent.config.model import Contract
from agent.report.signing import keygen
from agent.rules.prometheus_rules import rule_groups
from agent.store import Store, chain

from .conftest import FakeClock
from .servers import http_server
from .test_deploy import tool
from .test_daemon import wait_for
from .tsa import LocalTSA, make_ca

NOW = dt.datetime(2026, 11, 10, 10, 0, tzinfo=dt.timezone.utc).timestamp()


def _config(tmp_path: Path, tsa: str, target: str, extra: str = "", every: str = "1h", ca: Path | None = None) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(f"""
agent: {{listen: "127.0.0.1:0", state_dir: "{tmp_path / 'state'}", flush_interval: 60s}}
evidence:
  timestamping: {{tsa: ["{tsa}"], every: {every}, ca_file: "{ca or tmp_path / 'tsa' / 'ca.pem'}", timeout: 10s}}
{extra}targets: [{{name: api, service: api, url: "{target}/", interval: 60s, timeout: 2s}}]
""")
    return path


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@contextlib.asynccontextmanager
async def _setup(tmp_path: Path, extra: str = "", every: str = "1h",
                 ca: Path | None = None) -> AsyncIterator[tuple[LocalTSA, Path]]:
    """A local authority and a target server, and the agent's config naming both."""
    tsa = LocalTSA(tmp_path / "tsa")
    app = web.Application()
    app.router.add_get("/", _ok)
    async with tsa.serving() as url, http_server(app) as target:
        yield tsa, _config(tmp_path, url, target, extra, every, ca)


def _metric(agent: Agent, name: str, *labels: str) -> float:
    m = agent.stamping.metrics
    family = {"tokens": m.tokens, "failures": m.failures, "last": m.last_success}[name]
    return family.labels(*labels)._value.get()


def _verify(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["evidence", "verify", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _add_link(state: Path, n: int = 1) -> None:
    """Rows written meanwhile (declared windows: each write is a link of its own)."""
    store = Store(state, thresholds=Contract().thresholds, clock=lambda: NOW - 3600)  # the configs' contract
    try:
        for i in range(n):
            store.add_window("exclusion", NOW - 7200 + i, NOW - 7100 + i, f"declared {i}")
    finally:
        store.close()


async def test_a_token_is_stored_sealed_and_proves_its_link_offline(tmp_path, capsys):
    async with _setup(tmp_path, every="1m") as (tsa, cfg_path):
        state = tmp_path / "state"
        _add_link(state)
        clock = FakeClock(wall=NOW)
        agent = Agent(load_config(cfg_path), clock=clock)
        await agent.start()
        await agent.scheduler.stop(0)  # no probe: the chain holds the one link and the tokens' own
        try:
            await wait_for(lambda: _metric(agent, "tokens", tsa_label(tsa)) == 1, "the token of the head at start")
            stored = agent.store.timestamps()
            assert [(t["seq"], t["link"]) for t in stored] == [(1, 2)]  # link 1 stamped, sealed in link 2
            assert _metric(agent, "last", tsa_label(tsa)) == NOW
            await clock.advance(60)  # the next round stamps the head then: the link sealing the first token
            await wait_for(lambda: _metric(agent, "tokens", tsa_label(tsa)) == 2, "the next round's token")
        finally:
            await agent.stop()
    code, out, err = _verify(capsys, "-c", str(cfg_path), "--tsa-ca", str(tsa.ca))
    assert code == 0, err
    assert "time-stamps: 2 tokens match the chain (signatures checked against --tsa-ca)" in out
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    assert f"links 1 to 1: existed by {today}" in out and f"links 2 to 2: existed by {today}" in out
    assert "links 3 to 3: not time-stamped yet" in out

    other = make_ca(tmp_path / "other", "someone else's TSA root")
    code, out, err = _verify(capsys, "-c", str(cfg_path), "--tsa-ca", str(other))
    assert code == 1 and "time-stamp 1 of link 1 by http://127.0.0.1" in err
    assert "not signed by a time-stamping authority you trust" in err and "existed by" not in out

    with sqlite3.connect(state / "ledger.db") as db:  # a crafted token: the parser reads its inside only when asked
        token = bytearray(db.execute("SELECT token FROM timestamps WHERE id = 2").fetchone()[0])
        token[56] = 0
        db.execute("UPDATE timestamps SET token = ? WHERE id = 2", (bytes(token),))
    code, out, err = _verify(capsys, "-c", str(cfg_path), "--tsa-ca", str(tsa.ca))
    assert code == 1 and "time-stamp 2 (sealed in link 3): differs from what was sealed" in err
    assert "time-stamp 2 of link 2 by http://127.0.0.1" in err and ": not a time-stamp response: " in err, err

    with sqlite3.connect(state / "ledger.db") as db:  # a token taken away is named by its seal
        db.execute("DELETE FROM timestamps WHERE id = 1")
    code, out, err = _verify(capsys, "-c", str(cfg_path), "--tsa-ca", str(tsa.ca))
    assert code == 1 and "time-stamp 1 (sealed in link 2): missing" in err


def tsa_label(tsa: LocalTSA) -> str:
    return tsa.url


async def test_an_answer_signed_by_an_authority_the_config_does_not_trust_is_refused_as_it_arrives(tmp_path):
    other = make_ca(tmp_path / "other", "someone else's TSA root")
    async with _setup(tmp_path, ca=other) as (tsa, cfg_path):
        _add_link(tmp_path / "state")
        agent = Agent(load_config(cfg_path), clock=FakeClock(wall=NOW))
        await agent.start()
        try:
            await wait_for(lambda: _metric(agent, "failures", tsa_label(tsa), "invalid") == 1, "a refused answer")
            assert tsa.tokens == 1 and agent.store.timestamps() == []  # answered, checked, not kept
        finally:
            await agent.stop()


async def test_an_authority_down_or_answering_garbage_never_holds_probing_and_the_next_token_covers_the_gap(
        tmp_path, capsys):
    async with _setup(tmp_path) as (tsa, cfg_path):
        state = tmp_path / "state"
        _add_link(state)
        tsa.mode = "garbage"
        clock = FakeClock(wall=NOW)
        agent = Agent(load_config(cfg_path), clock=clock)
        await agent.start()
        try:
            label = tsa_label(tsa)
            await wait_for(lambda: _metric(agent, "failures", label, "invalid") == 1, "a garbage answer")
            for minute in range(1, 31):  # half an hour of garbage, then of 503: retried with backoff meanwhile
                if minute == 15:
                    tsa.mode = "down"
                    await asyncio.to_thread(agent.store.add_window, "exclusion", NOW - 600, NOW - 500, "meanwhile")
                seen = agent.results_seen
                await clock.advance(60)
                await wait_for(lambda: agent.results_seen > seen, f"the probe of minute {minute}")
                assert await agent.flush()  # flushing goes on too
            assert _metric(agent, "failures", label, "invalid") >= 2 and _metric(agent, "failures", label, "http") >= 2
            assert _metric(agent, "tokens", label) == 0 and _metric(agent, "last", label) == NOW
            assert agent.results_seen >= 31  # a probe every minute, none skipped
            head = agent.store.chain_head()["seq"]
            tsa.mode = "good"
            await clock.advance(300)  # the backoff's cap: the next retry comes within it
            await wait_for(lambda: _metric(agent, "tokens", label) == 1, "the token after the outage")
            assert _metric(agent, "last", label) > NOW
            (token,) = agent.store.timestamps()
            assert token["seq"] >= head  # it stamps the head as it was then: every link of the outage
        finally:
            await agent.stop()
    code, out, err = _verify(capsys, "-c", str(cfg_path), "--tsa-ca", str(tsa.ca))
    assert code == 0, err
    assert f"links 1 to {token['seq']}: existed by" in out


def test_the_generated_alert_fires_after_twice_the_interval_without_a_token(tmp_path):
    """Under `promtool test rules`: an authority whose last token is from time 0 (every: 1h)."""
    cfg_path = _config(tmp_path, "https://tsa.example.com/tsr", "http://127.0.0.1:9")
    make_ca(tmp_path / "tsa")
    rules = [r for g in rule_groups(load_config(cfg_path)) for r in g["rules"]]
    (alert,) = [r for r in rules if r.get("alert") == "SLAEvidenceTimestampsMissing"]
    (tmp_path / "ts.rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "health", "rules": [alert]}]}))
    labels = {"tsa": "https://tsa.example.com/tsr", "severity": "ticket", "slo": "agent"}
    late = {"summary": "sla-agent : no time-stamp from https://tsa.example.com/tsr for 2h 1m 0s",
            "description": alert["annotations"]["description"]}
    doc = {"rule_files": [str(tmp_path / "ts.rules.yml")], "evaluation_interval": "1m",
           "tests": [{"interval": "1m",
                      "input_series": [{"series": 'sla_evidence_timestamp_last_success_timestamp_seconds'
                                                  '{tsa="https://tsa.example.com/tsr"}', "values": "0x200"}],
                      "alert_rule_test": [
                          {"eval_time": "119m", "alertname": alert["alert"], "exp_alerts": []},
                          {"eval_time": "121m", "alertname": alert["alert"],
                           "exp_alerts": [{"exp_labels": labels, "exp_annotations": late}]}]}]}
    (tmp_path / "ts.test.yml").write_text(yaml.safe_dump(doc, sort_keys=False, width=10_000))
    p = subprocess.run([tool("promtool"), "test", "rules", str(tmp_path / "ts.test.yml")], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]


def _forge(db_path: Path) -> str:
    """What a forger holding the agent's key does: one sealed minute row of the past rewritten (a down
    minute made up), its seal made to match, every link from there on computed again."""
    db = sqlite3.connect(db_path)
    with db:
        tid, hour, blob, errors, link = db.execute(
            "SELECT target_id, hour, counts, errors, link FROM minutes WHERE link IS NOT NULL ORDER BY hour LIMIT 1"
        ).fetchone()
        name = db.execute("SELECT name FROM targets WHERE id = ?", (tid,)).fetchone()[0]
        counts = np.frombuffer(zlib.decompress(blob), dtype=np.uint16).copy()
        counts[0] += 1
        blob = zlib.compress(counts.tobytes())
        db.execute("UPDATE minutes SET counts = ? WHERE target_id = ? AND hour = ?", (blob, tid, hour))
        db.execute("UPDATE seals SET hash = ? WHERE key = ? AND seq = ?",
                   (chain.minute_hash(name, hour, blob, errors), f"m:{name}:{hour}", link))
        prev = ""
        for seq, at, rows in db.execute("SELECT seq, at, rows FROM chain ORDER BY seq").fetchall():
            manifest = chain.manifest_hash(db.execute("SELECT key, hash FROM seals WHERE seq = ?", (seq,)).fetchall())
            new = chain.link_hash(seq, at, prev, manifest, rows)
            db.execute("UPDATE chain SET prev = ?, manifest = ?, link = ? WHERE seq = ?", (prev, manifest, new, seq))
            prev = new
    db.close()
    return f"m:{name}:{hour}"


async def test_a_forger_holding_the_key_who_rebuilds_the_chain_is_named_by_the_time_stamps(tmp_path, capsys):
    """Acceptance: a ledger whose head was time-stamped; a sealed minute row of the past rewritten, the whole
    chain rebuilt and the bundle signed again with the agent's own key. The chain walk alone passes; the
    stored tokens say that the head at the time-stamped time was another."""
    private, _ = keygen(str(tmp_path / "keys"))
    async with _setup(tmp_path, f'  signing_key_file: "{private}"\n') as (tsa, cfg_path):
        clock = FakeClock(wall=NOW + 45 * 60)
        agent = Agent(load_config(cfg_path), clock=clock)
        await agent.start()
        try:
            for minute in range(1, 32):  # from 10:45 to 11:16: the rows of hour 10 are final, then sealed
                seen = agent.results_seen
                await clock.advance(60)
                await wait_for(lambda: agent.results_seen > seen, f"the probe of minute {minute}")
            assert await agent.flush()
            results = await agent.stamping.stamp_now()  # the hook a month's close calls
            assert [r.ok for r in results] == [True], results
        finally:
            await agent.stop()
    state, month = tmp_path / "state", "2026-11"
    assert main(["evidence", "export", "-c", str(cfg_path), "--month", month, "-o", str(tmp_path / "b1.tar.gz")]) == 0
    code, out, err = _verify(capsys, str(tmp_path / "b1.tar.gz"), "--tsa-ca", str(tsa.ca))
    assert code == 0, err
    assert "tokens match the chain (signatures checked against --tsa-ca)" in out and "existed by" in out

    key = _forge(state / "ledger.db")
    store = Store(state, thresholds=load_config(cfg_path).contract.thresholds, readonly=True)
    try:
        problems, stats = store.verify()
    finally:
        store.close()
    assert problems == [] and stats["minute rows"] >= 1  # the forgery is complete: the chain walk passes

    code, out, err = _verify(capsys, "-c", str(cfg_path), "--tsa-ca", str(tsa.ca))
    assert code == 1
    assert "is not the chain's head that http://127.0.0.1" in err and "the chain was rewritten after that time" in err
    assert "no time-stamp proves them (see the mismatches)" in out and "existed by" not in out
    assert key.startswith("m:api:")

    assert main(["evidence", "export", "-c", str(cfg_path), "--month", month, "-o", str(tmp_path / "b2.tar.gz")]) == 0
    code, out, err = _verify(capsys, str(tmp_path / "b2.tar.gz"), "--tsa-ca", str(tsa.ca))
    assert code == 1 and "the chain was rewritten after that time" in err


async def test_credentials_in_an_authority_url_stay_out_of_the_ledger_metrics_and_log(tmp_path, caplog):
    secret = "tsa-pass-5531"
    async with _setup(tmp_path, every="1m") as (tsa, cfg_path):
        cfg_path.write_text(cfg_path.read_text().replace(f'"{tsa.url}"', f'"http://sla:${{TSA_PW}}@{tsa.url[7:]}"'))
        _add_link(tmp_path / "state")
        clock = FakeClock(wall=NOW)
        agent = Agent(load_config(cfg_path, environ={"TSA_PW": secret}), clock=clock)
        await agent.start()
        try:
            await wait_for(lambda: _metric(agent, "tokens", tsa.url) == 1, "a token, the label without credentials")
            tsa.mode = "down"
            await clock.advance(60)
            await wait_for(lambda: _metric(agent, "failures", tsa.url, "http") == 1, "a failure")
            assert [t["tsa"] for t in agent.store.timestamps()] == [tsa.url]
        finally:
            await agent.stop()
    assert "no time-stamp from" in caplog.text and secret not in caplog.text
    assert secret.encode() not in (tmp_path / "state" / "ledger.db").read_bytes()


async def test_a_reload_that_drops_an_authority_drops_its_series(tmp_path):
    async with _setup(tmp_path) as (tsa, cfg_path):
        _add_link(tmp_path / "state")
        agent = Agent(load_config(cfg_path), clock=FakeClock(wall=NOW), config_path=str(cfg_path))
        await agent.start()
        try:
            await wait_for(lambda: _metric(agent, "tokens", tsa.url) == 1, "a token")
            cfg_path.write_text(cfg_path.read_text().replace(tsa.url, tsa.url + "?second"))
            assert await agent.reload()
            await wait_for(lambda: _metric(agent, "tokens", tsa.url + "?second") == 1, "a token at the new URL")
            labels = {s.labels["tsa"] for f in agent.stamping.metrics.last_success.collect() for s in f.samples}
            assert labels == {tsa.url + "?second"}
            cfg_path.write_text(cfg_path.read_text().replace("  timestamping:", "  journal: true\n  #timestamping:"))
            assert await agent.reload()
            assert agent.stamping.metrics is None and agent.stamping.stamper is None
        finally:
            await agent.stop()
