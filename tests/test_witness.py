"""Witnessed checkpoints and key rotation: the chain's signed checkpoint served at /api/v1/checkpoint and
pushed to a real local webhook and a real local SMTP server (STARTTLS, login); a forger who holds the
agent's key and rebuilds the whole chain is caught by the checkpoint a witness kept; a chain signed by a
succession of keys verifies from the first pinned key, a key swapped without a rotation record does not."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import sqlite3
from email import message_from_bytes
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from agent.app import Agent
from agent.cli import main
from agent.config import ConfigError, load_config, parse_config
from agent.probes import Capture, make_probe
from agent.report import signing
from agent.store import chain

from .conftest import FakeClock
from .servers import Mailbox, closed_port, http_server, make_certs
from .test_daemon import wait_for

DOWN = web.AppKey("down", list)
T0 = dt.datetime(2026, 3, 10, 10, 0, tzinfo=dt.timezone.utc).timestamp()


class Witness:
    """A webhook witness: keeps every checkpoint POSTed to it; answers 503 to the first `fail` of them."""

    def __init__(self, fail: int = 0) -> None:
        self.kept: list[str] = []
        self.seen = 0
        self.fail = fail
        self.app = web.Application()
        self.app.router.add_post("/witness", self.post)

    async def post(self, request: web.Request) -> web.Response:
        self.seen += 1
        if self.seen <= self.fail:
            return web.Response(status=503)
        self.kept.append(await request.text())
        return web.Response(text="kept")


async def _vendor(request: web.Request) -> web.Response:
    return web.Response(status=503 if request.app[DOWN][0] else 200, text="crm")


def _config(tmp: Path, key: Path, witnesses: str, extra: str = "", url: str = "http://127.0.0.1:1") -> Path:
    path = tmp / "cfg.yaml"
    path.write_text(f'agent: {{location: paris, listen: "127.0.0.1:0"{extra}}}\n'
                    f'evidence: {{signing_key_file: "{key}", witnesses: {witnesses}}}\n'
                    f'targets:\n  - {{name: web-ui, service: web, url: "{url}/", interval: 10s}}\n')
    return path


@contextlib.asynccontextmanager
async def _agent(tmp: Path, cfg_path: Path, clock: FakeClock):
    """A started agent, over a real vendor server, whose probes the test drives (the scheduler is stopped)."""
    vendor = web.Application()
    vendor[DOWN] = [False]
    vendor.router.add_get("/", _vendor)
    async with http_server(vendor) as url:
        cfg_path.write_text(cfg_path.read_text().replace("http://127.0.0.1:1/", url + "/"))
        cfg = load_config(cfg_path)
        agent = Agent(cfg, state_dir=str(tmp / "state"), clock=clock)
        await agent.start()
        await agent.scheduler.stop(0)
        agent.probe = make_probe(cfg.targets[0], clock=clock, capture=Capture(cfg.evidence.headers, 64))
        agent.vendor_down = vendor[DOWN]
        try:
            yield agent
        finally:
            await agent.probe.close()
            await agent.stop()


async def _probe_an_hour(agent: Agent, clock: FakeClock) -> None:
    """An hour of results (ten minutes down), then three hours later: its minute rows are sealed."""
    for k in range(0, 3600, 30):
        clock.wall_offset = T0 + k - clock.wall0 - (clock.mono - clock.mono0)
        agent.vendor_down[0] = 600 <= k < 1200
        agent.on_result(await agent.probe.run())
    clock.wall_offset += 3 * 3600
    assert await agent.flush()


@pytest.fixture
def keys(tmp_path):
    out = {}
    for name in ("k1", "k2", "k3"):
        private, public = signing.keygen(tmp_path / name)
        out[name] = (private, public)
    return out


def _rebuild_chain(db: Path) -> None:
    """What a forger holding the ledger does: rewrite one sealed minute row, reseal it, and recompute
    every link from the first (the chain is unkeyed: nothing inside the ledger can tell)."""
    conn = sqlite3.connect(db)
    hour, counts = conn.execute("SELECT hour, counts FROM minutes WHERE link IS NOT NULL ORDER BY hour").fetchone()
    forged = bytes(len(counts))  # every minute of that hour: no probe at all, so nothing down
    conn.execute("UPDATE minutes SET counts = ?, errors = '' WHERE hour = ?", (forged, hour))
    conn.execute("UPDATE seals SET hash = ? WHERE key = ?", (chain.minute_hash("web-ui", hour, forged, ""),
                                                              f"m:web-ui:{hour}"))
    prev = ""
    for seq, at, rows in conn.execute("SELECT seq, at, rows FROM chain ORDER BY seq").fetchall():
        manifest = chain.manifest_hash(conn.execute("SELECT key, hash FROM seals WHERE seq = ?", (seq,)).fetchall())
        link = chain.link_hash(seq, at, prev, manifest, rows)
        conn.execute("UPDATE chain SET prev = ?, manifest = ?, link = ? WHERE seq = ?", (prev, manifest, link, seq))
        prev = link
    conn.commit()
    conn.close()


async def test_a_forger_with_the_key_is_caught_by_the_checkpoint_a_webhook_witness_kept(tmp_path, keys, capsys,
                                                                                       caplog):
    from agent.report import checkpoint
    from agent.report.witnessed import make_for_agent
    caplog.set_level(logging.INFO, logger="sla_agent")
    wit, clock = Witness(), FakeClock(wall=T0)
    async with http_server(wit.app) as wbase:
        cfg_path = _config(tmp_path, keys["k1"][0], f'{{webhooks: ["{wbase}/witness?token=s3cret-token"], every: 1h}}')
        async with _agent(tmp_path, cfg_path, clock) as agent:
            await _probe_an_hour(agent, clock)
            await clock.advance(3600)  # the witness loop's next push
            await wait_for(lambda: wit.kept, "the witness's copy of the checkpoint")
            async with aiohttp.ClientSession() as s, s.get(agent.server.url + "/api/v1/checkpoint") as r:
                served = checkpoint.parse(await r.text())
            pushes = agent.registry.get_sample_value("sla_witness_pushes_total",
                                                     {"kind": "webhook", "result": "ok", "location": "paris"})
    kept = checkpoint.parse(wit.kept[0])
    key = signing.load_private(keys["k1"][0]).public_key()
    assert kept.origin == "sla-agent/paris" and kept.size >= 1 and pushes == 1
    assert checkpoint.signer(kept, [key]) is not None and (served.size, served.head) == (kept.size, kept.head)
    assert "delivered to 1 of 1 witnesses" in caplog.text and "s3cret-token" not in caplog.text
    copy = tmp_path / "witness-copy.txt"
    copy.write_text(wit.kept[0])
    args = ["evidence", "verify", "--config", str(cfg_path), "--state-dir", str(tmp_path / "state")]
    assert main(args + ["--checkpoint", str(copy)]) == 0
    assert "checkpoints 1 checked" in capsys.readouterr().out

    _rebuild_chain(tmp_path / "state" / "ledger.db")
    assert main(args) == 0  # the forgery holds together by itself...
    capsys.readouterr()
    text, _ = make_for_agent(tmp_path / "state" / "ledger.db", str(keys["k1"][0]), "paris", T0 + 5 * 3600)
    resigned = tmp_path / "resigned.txt"
    resigned.write_text(text)
    assert main(args + ["--checkpoint", str(resigned), "--checkpoint", str(copy)]) == 1  # ...not with the witness
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert f"checkpoint {copy} (sla-agent/paris, length {kept.size}" in first, err
    assert f"the chain was rewritten at or before link {kept.size}" in first and str(resigned) not in err, err


async def test_a_mail_witness_gets_the_checkpoint_over_starttls_with_a_login(tmp_path, keys, monkeypatch):
    from agent.report import checkpoint
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))  # the default context trusts the test CA
    box = Mailbox(certs)
    box.controller.start()
    (tmp_path / "mail-pw").write_text("mail-pw-123\n")
    clock = FakeClock(wall=T0)
    witnesses = (f'{{emails: [legal@example.com], smtp: {{smarthost: "127.0.0.1:{box.port}", from: agent@example.com, '
                 f'username: agent, password_file: "{tmp_path / "mail-pw"}"}}}}')
    cfg_path = _config(tmp_path, keys["k1"][0], witnesses)
    try:
        async with _agent(tmp_path, cfg_path, clock) as agent:
            await _probe_an_hour(agent, clock)
            await clock.advance(3600)
            await wait_for(lambda: box.messages, "the checkpoint by mail")
    finally:
        box.controller.stop()
    mail = message_from_bytes(box.messages[0])
    assert mail["To"] == "legal@example.com" and mail["Subject"].startswith("sla-agent checkpoint sla-agent/paris")
    attached = next(p for p in mail.walk() if p.get_filename() == "checkpoint.txt").get_payload(decode=True).decode()
    cp = checkpoint.parse(attached)
    assert checkpoint.signer(cp, [signing.load_private(keys["k1"][0]).public_key()]) is not None and cp.size >= 1


async def test_a_webhook_that_fails_is_retried_with_backoff_and_never_holds_the_caller(tmp_path):
    from agent.report import checkpoint
    from agent.notify import witness as witness_mod
    wit, clock, seen = Witness(fail=2), FakeClock(wall=T0), []
    key = signing.load_private(signing.keygen(tmp_path / "k")[0])
    text = checkpoint.make("sla-agent", 3, "ab" * 32, T0, key)

    async def make():
        return text, ""

    async with http_server(wit.app) as base:
        settings = parse_config(f'targets: [{{name: a, service: s, url: "http://127.0.0.1:1/"}}]\nevidence: '
                                f'{{signing_key_file: "{tmp_path / "k" / signing.PRIVATE_NAME}", witnesses: '
                                f'{{webhooks: ["{base}/witness", "http://127.0.0.1:{closed_port()}/w"]}}}}').evidence.witnesses
        w = witness_mod.Witnesses(lambda: settings, make, clock, seen.append, lambda t: t)
        task = asyncio.create_task(w.push())
        await wait_for(lambda: wit.seen == 1, "the first attempt")
        assert not task.done()  # waiting out its backoff on the clock it was given
        await clock.advance(witness_mod.BACKOFF)
        await wait_for(lambda: wit.seen == 2, "the second attempt")
        await clock.advance(2 * witness_mod.BACKOFF)
        results = await asyncio.wait_for(task, 10)
        await w.close()
    assert wit.kept == [text] and wit.seen == 3
    assert [(r.kind, r.ok) for r in results] == [("webhook", True), ("webhook", False)] and results == seen
    assert "ClientConnectorError" in results[1].message or "Connect" in results[1].message


def test_witness_config_needs_a_signing_key_and_a_mail_server(tmp_path):
    base = 'targets: [{name: a, service: s, url: "http://127.0.0.1:1/"}]\n'
    with pytest.raises(ConfigError) as e:
        parse_config(base + "evidence:\n  witnesses: {webhooks: [ftp://x/], emails: [nobody]}\n", "c.yaml")
    text = str(e.value)
    assert "c.yaml:3: evidence.witnesses.webhooks" in text and "'nobody' is not an e-mail address" in text
    with pytest.raises(ConfigError) as e:
        parse_config(base + "evidence:\n  witnesses: {emails: [a@b.example]}\n", "c.yaml")
    assert "c.yaml:3: evidence.witnesses: needs evidence.signing_key_file" in str(e.value)
    assert "evidence.witnesses.emails: needs evidence.witnesses.smtp" in str(e.value)
    key = signing.keygen(tmp_path)[0]
    cfg = parse_config(base + f'alerts: {{smtp_smarthost: "mx.example:25", smtp_from: a@example.com}}\nevidence:\n'
                              f'  signing_key_file: "{key}"\n  witnesses: {{emails: [a@b.example], every: 2h}}\n')
    assert cfg.evidence.witnesses.every == 7200 and cfg.evidence.witnesses.smtp.smarthost == "mx.example:25"


# -- key rotation ---------------------------------------------------------------------------------------------
@pytest.fixture
def ledger(tmp_path, keys):
    """A ledger with sealed rows, made by an agent signing with k1; its checkpoint then."""
    clock = FakeClock(wall=T0)
    cfg_path = _config(tmp_path, keys["k1"][0], "{}")

    async def run():
        async with _agent(tmp_path, cfg_path, clock) as agent:
            await _probe_an_hour(agent, clock)

    asyncio.run(run())
    return cfg_path, tmp_path / "state"


def _checkpoint(tmp: Path, state: Path, key: Path, name: str) -> Path:
    from agent.report.witnessed import make_for_agent
    text, why = make_for_agent(state / "ledger.db", str(key), "paris", T0 + 6 * 3600)
    assert text is not None, why
    (tmp / name).write_text(text)
    return tmp / name


def _with_key(cfg_path: Path, key: Path) -> Path:
    out = cfg_path.with_name(f"cfg-{key.parent.name}.yaml")
    out.write_text(cfg_path.read_text().replace(str(cfg_path.parent / "k1" / signing.PRIVATE_NAME), str(key)))
    return out


def test_a_rotation_signed_by_the_old_key_carries_trust_from_the_pinned_first_key(tmp_path, keys, ledger, capsys):
    from agent.report import checkpoint
    from agent.report.witnessed import make_for_agent
    cfg_path, state = ledger
    cp1 = _checkpoint(tmp_path, state, keys["k1"][0], "cp1.txt")
    assert main(["evidence", "rotate-key", str(keys["k2"][0]), "--config", str(cfg_path), "--state-dir", str(state)]) == 0
    fingerprint = signing.key_id(signing.load_public(keys["k2"][1]))
    assert fingerprint in capsys.readouterr().out
    text, why = make_for_agent(state / "ledger.db", str(keys["k1"][0]), "paris", T0 + 7 * 3600)
    assert text is None and "point it at that key" in why  # the retired key signs nothing more
    cp2 = _checkpoint(tmp_path, state, keys["k2"][0], "cp2.txt")
    cfg2 = _with_key(cfg_path, keys["k2"][0])
    pinned = ["--key", str(keys["k1"][1])]
    verify = ["evidence", "verify", "--config", str(cfg2), "--state-dir", str(state)]
    assert main(verify + pinned + ["--checkpoint", str(cp1), "--checkpoint", str(cp2)]) == 0, capsys.readouterr().err
    assert main(verify + ["--key", fingerprint, "--checkpoint", str(cp1)]) == 1  # k1 is before the pin
    assert "not signed by any trusted key" in capsys.readouterr().err
    # the old key's checkpoint of a link after its rotation is refused, though its signature holds
    assert main(["maintenance", "add", "--config", str(cfg2), "--state-dir", str(state), "--start", "2026-03-11T01:00",
                 "--end", "2026-03-11T02:00", "--reason", "a sealed window: one more link"]) == 0
    conn = sqlite3.connect(state / "ledger.db")
    size, head = checkpoint.head(conn)
    conn.close()
    late = tmp_path / "late.txt"
    late.write_text(checkpoint.make("sla-agent/paris", size, head, T0 + 8 * 3600,
                                    signing.load_private(keys["k1"][0])))
    assert main(verify + pinned + ["--checkpoint", str(late)]) == 1
    assert "not in force at length" in capsys.readouterr().err


def test_a_key_swapped_without_a_rotation_record_is_refused(tmp_path, keys, ledger, capsys):
    from agent.report import checkpoint
    cfg_path, state = ledger
    cp1 = _checkpoint(tmp_path, state, keys["k1"][0], "cp1.txt")
    swapped = _checkpoint(tmp_path, state, keys["k3"][0], "swapped.txt")  # no record hands over to k3
    verify = ["evidence", "verify", "--config", str(_with_key(cfg_path, keys["k3"][0])), "--state-dir", str(state),
              "--key", str(keys["k1"][1])]
    assert main(verify + ["--checkpoint", str(cp1)]) == 0, capsys.readouterr().err
    assert main(verify + ["--checkpoint", str(cp1), "--checkpoint", str(swapped)]) == 1
    err = capsys.readouterr().err
    assert f"checkpoint {swapped}" in err and "no rotation record from the trusted key reaches" in err, err
    assert str(cp1) not in err
    # a rotation record to k3 signed by k3 itself (not by the key in force) is refused too
    main(["evidence", "rotate-key", str(keys["k2"][0]), "--config", str(cfg_path), "--state-dir", str(state)])
    conn = sqlite3.connect(state / "ledger.db")
    old, new = (base64.b64encode(checkpoint.raw(signing.load_private(keys[k][0]).public_key())).decode()
                for k in ("k3", "k1"))
    conn.execute("UPDATE key_rotations SET old_key = ?, new_key = ?", (old, new))
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(verify + ["--checkpoint", str(cp1)]) == 1
    assert "key rotation record 1" in capsys.readouterr().err


async def test_the_checkpoint_endpoint_is_behind_basic_auth(tmp_path, keys):
    from agent.report import checkpoint
    hashed = bcrypt.hashpw(b"witness-pw", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  auditor: '{hashed}'\n")
    cfg_path = _config(tmp_path, keys["k1"][0], "{}", f', web_config_file: "{tmp_path / "web.yml"}"')
    clock = FakeClock(wall=T0)
    async with _agent(tmp_path, cfg_path, clock) as agent:
        await _probe_an_hour(agent, clock)
        ok = {"Authorization": "Basic " + base64.b64encode(b"auditor:witness-pw").decode()}
        async with aiohttp.ClientSession() as s:
            async with s.get(agent.server.url + "/api/v1/checkpoint") as r:
                assert r.status == 401
            async with s.get(agent.server.url + "/api/v1/checkpoint", headers=ok) as r:
                assert r.status == 200 and r.content_type == "text/plain"
                cp = checkpoint.parse(await r.text())
    assert checkpoint.signer(cp, [signing.load_private(keys["k1"][0]).public_key()]) is not None


def test_a_bundle_is_checked_against_checkpoints_from_the_pinned_key(tmp_path, keys, ledger, capsys):
    cfg_path, state = ledger
    cp1 = _checkpoint(tmp_path, state, keys["k1"][0], "cp1.txt")
    main(["evidence", "rotate-key", str(keys["k2"][0]), "--config", str(cfg_path), "--state-dir", str(state)])
    cfg2 = _with_key(cfg_path, keys["k2"][0])
    cp2 = _checkpoint(tmp_path, state, keys["k2"][0], "cp2.txt")
    bundle = tmp_path / "march.tar.gz"
    assert main(["evidence", "export", "--config", str(cfg2), "--state-dir", str(state), "--month", "2026-03",
                 "--output", str(bundle)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    verify = ["evidence", "verify", str(bundle), "--checkpoint", str(cp1), "--checkpoint", str(cp2)]
    assert main(verify + ["--key", str(keys["k1"][1])]) == 0, capsys.readouterr().err
    assert "checkpoints 2 checked, signatures from the pinned key" in capsys.readouterr().out
    assert main(verify) == 0  # from the bundle's own key (k2): said plainly
    assert "the key was taken from the bundle itself" in capsys.readouterr().out
    assert main(verify + ["--key", str(keys["k3"][1])]) == 1
    assert "is not in the chain's succession of keys" in capsys.readouterr().err
