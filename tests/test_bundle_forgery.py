"""The forgeries an audit of a signed month bundle found accepted by `evidence verify BUNDLE`, each made
as the auditor made it, with the project's own code and a real bundle, and each named now: a bundle
re-signed with another key, minute counts rewritten and the chain recomputed, an edited report.html, a
journal record whose content no longer matches its hash, an archive cut short."""
from __future__ import annotations

import asyncio
import hashlib
import platform
import ssl
import json
import shutil
import sqlite3
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from agent.app import Agent
from agent.cli import main
from agent.config import load_config
from agent.ledger import DOWN_I, UP_I
from agent.probes import Capture, make_probe
from agent.report import render
from agent.report import signing
from agent.report.build import build
from agent.report.bundle import export_bundle
from agent.report.evidence import unsigned
from agent.store import Store, chain

from .servers import http_server
from .test_evidence import T0, ManualClock

MONTH = "2026-03"
HOURS = 3600.0
CONTROL_FAILS = (T0 + 40 * 60, T0 + 50 * 60)  # the agent's own network: api-health's failures are inconclusive
CONFIG = """agent: {{location: paris, listen: "127.0.0.1:0"}}
contract:
  timezone: "+01:00"
  maintenance:
    - weekly: {{day: tuesday, start: "10:30", end: "10:45", reason: "weekly maintenance"}}
evidence: {{body_bytes: 64, failures_per_minute: 2, signing_key_file: {key}}}
targets:
  - {{name: web-ui, service: web, url: "{base}/web", interval: 20s, timeout: 2s}}
  - {{name: api-health, service: api, url: "{base}/api", interval: 10s, timeout: 2s}}
controls:
  - {{name: own-net, url: "{base}/ctl", interval: 20s, timeout: 2s}}
"""


@pytest.fixture(scope="module")
def owned(tmp_path_factory):
    """90 minutes of a web target that answers (probed every 20 s) and an API that answers 503 throughout
    (every 10 s: availability 0.0), against a real server (simulated wall time), through a maintenance
    window and ten minutes of the agent's own network failing; written, sealed and exported as a signed
    bundle. Two failure records a minute are kept, and the minute's last: three of its six."""
    tmp = tmp_path_factory.mktemp("owned")
    private, _ = signing.keygen(tmp / "keys")
    clock = ManualClock(T0)
    sent = [0]

    async def api(request: web.Request) -> web.Response:
        sent[0] += 1
        return web.Response(status=503, text="upstream unavailable", headers={"X-Request-Id": f"r{sent[0]}"})

    async def ctl(request: web.Request) -> web.Response:
        return web.Response(status=503 if CONTROL_FAILS[0] <= clock.wall < CONTROL_FAILS[1] else 200)

    async def run() -> Path:
        app = web.Application()
        async def page(request: web.Request) -> web.Response:
            return web.Response(text="<html>CRM360</html>")

        app.router.add_get("/web", page)
        app.router.add_get("/api", api)
        app.router.add_get("/ctl", ctl)
        async with http_server(app) as base:
            cfg_path = tmp / "cfg.yaml"
            cfg_path.write_text(CONFIG.format(base=base, key=private))
            cfg = load_config(cfg_path)
            agent = Agent(cfg, state_dir=str(tmp / "state"), clock=clock)
            await agent.start()
            await agent.scheduler.stop(0)  # the test drives the probes and the wall clock itself
            capture = Capture(cfg.evidence.headers, cfg.evidence.body_bytes)
            probes = [make_probe(t, clock=clock, capture=capture) for t in (*cfg.controls, *cfg.targets)]
            for k in range(540):
                for i, probe in enumerate(probes if k % 2 == 0 else probes[-1:]):  # the control first: the
                    clock.wall = T0 + 10 * k + i  # pipeline judges a failure by the control's latest result
                    agent.on_result(await probe.run())
                if k % 30 == 29:
                    await agent.flush()
            for probe in probes:
                await probe.close()
            clock.wall = T0 + 4 * HOURS  # every hour is final: sealed at this last flush
            await agent.stop()
            return cfg_path

    cfg_path = asyncio.run(run())
    bundle = tmp / "march.tar.gz"
    doc = export_bundle(load_config(cfg_path), str(tmp / "state"), MONTH, T0 + 4 * HOURS, bundle)
    return cfg_path, tmp / "state", bundle, doc, tmp


def _verify(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["evidence", "verify", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _unpack(bundle: Path, dest: Path) -> Path:
    with tarfile.open(bundle) as tar:
        tar.extractall(dest, filter="data")
    (inner,) = dest.iterdir()
    return inner


def _repack(inner: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(inner.iterdir()):
            tar.add(path, arcname=f"{inner.name}/{path.name}")
    return out


def _resign(inner: Path, key) -> None:
    """The manifest made again over the files as they are, signed with `key` (with its public key in
    the bundle), or unsigned (key None)."""
    if key is None:
        (inner / "public_key.pem").unlink(missing_ok=True)
    else:
        (inner / "public_key.pem").write_bytes(signing.public_pem(key))
    manifest = json.loads((inner / "MANIFEST.json").read_text())
    manifest.pop("signature", None)
    manifest["files"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(inner.iterdir())
                         if p.name != "MANIFEST.json"}
    if key is not None:
        manifest["signature"] = signing.sign(signing.canonical(manifest), key)
    (inner / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _write_report(inner: Path, doc: dict, key) -> None:
    doc["evidence"].pop("signature", None)
    if key is not None:
        doc["evidence"]["signature"] = signing.sign(signing.canonical(unsigned(doc)), key)
    (inner / "report.json").write_text(render(doc, "json"))
    (inner / "report.html").write_text(render(doc, "html"))


def _rechain(db: Path) -> None:
    """Every seal of the extract made again from the rows as they are, and every link after them: the
    chain is not keyed, anyone holding the file can do this."""
    conn = sqlite3.connect(db)
    names = dict(conn.execute("SELECT id, name FROM targets"))
    for tid, hour, counts, errors in conn.execute("SELECT target_id, hour, counts, errors FROM minutes "
                                                  "WHERE link IS NOT NULL").fetchall():
        conn.execute("UPDATE seals SET hash=? WHERE key=?", (chain.minute_hash(names[tid], hour, counts, errors),
                                                          f"m:{names[tid]}:{hour}"))
    for (key,) in conn.execute("SELECT key FROM seals WHERE key LIKE 'j:%'").fetchall():
        a, b = (int(x) for x in key.split(":")[1:])
        conn.execute("UPDATE seals SET hash=? WHERE key=?",
                     (chain.run_hash(__import__("agent.store.journal", fromlist=["x"]).run_texts(conn, a, b)), key))
    prev = None
    for seq, at, first_prev, rows in conn.execute("SELECT seq, at, prev, rows FROM chain ORDER BY seq").fetchall():
        prev = first_prev if prev is None else prev
        manifest = chain.manifest_hash(conn.execute("SELECT key, hash FROM seals WHERE seq=?", (seq,)).fetchall())
        link = chain.link_hash(seq, at, prev, manifest, rows)
        conn.execute("UPDATE chain SET prev=?, manifest=?, link=? WHERE seq=?", (prev, manifest, link, seq))
        prev = link
    conn.commit()
    conn.close()


def _rebuild(inner: Path, cfg_path: Path, doc: dict) -> dict:
    """report.json built again, with the project's own builder, from the extract as it now is."""
    place = inner.parent / "as-store"
    place.mkdir()
    (place / "ledger.db").symlink_to(inner / "ledger.db")
    cfg = load_config(cfg_path)
    store = Store(place, thresholds=cfg.contract.thresholds, readonly=True)
    try:
        return build(cfg, store, doc["month"], float(doc["evidence"]["generated_epoch"]), sign=False)
    finally:
        store.close()


def _api_up_all_month(db: Path) -> int:
    """api-health's minute counts rewritten: every down probe an up one. Returns the hours rewritten."""
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT m.target_id, m.hour, m.counts FROM minutes m JOIN targets t ON t.id = m.target_id "
                        "WHERE t.name = 'api-health'").fetchall()
    for tid, hour, blob in rows:
        counts = np.frombuffer(zlib.decompress(blob), dtype=np.uint16).reshape(60, -1).copy()
        counts[:, UP_I] += counts[:, DOWN_I]
        counts[:, DOWN_I] = 0
        conn.execute("UPDATE minutes SET counts=?, errors='' WHERE target_id=? AND hour=?",
                     (zlib.compress(counts.tobytes()), tid, hour))
    conn.commit()
    conn.close()
    return len(rows)


def test_the_genuine_bundle_verifies(owned, capsys):
    _, _, bundle, doc, _ = owned
    api = next(r for r in doc["rows"] if r["service"] == "api" and r["measure"] == "availability")
    assert api["value"] == 0.0
    code, out, err = _verify(capsys, bundle)
    assert code == 0, err
    assert "verified" in out


def _owner(cfg_path: Path):
    return signing.load_private(load_config(cfg_path).evidence.signing_key_file)


def test_a_bundle_re_signed_with_another_key_is_refused_with_the_owners_key(owned, tmp_path, capsys):
    """Forgery 1: public_key.pem replaced and everything signed again with the forger's key. With the
    fingerprint the owner gave (or the owner's public key file) it is refused; without, it is accepted
    with a warning that the key is the bundle's own, and its fingerprint."""
    cfg_path, _, bundle, _, tmp = owned
    owner = signing.key_id(_owner(cfg_path).public_key())
    forger = signing.Ed25519PrivateKey.generate()
    inner = _unpack(bundle, tmp_path / "u")
    _write_report(inner, json.loads((inner / "report.json").read_text()), forger)
    _resign(inner, forger)
    forged = _repack(inner, tmp_path / "forged.tar.gz")
    for pin in (owner, f"SHA256:{owner.upper()}", tmp / "keys" / signing.PUBLIC_NAME):
        code, out, err = _verify(capsys, forged, "--key", pin)
        assert code == 1, (pin, out, err)
        assert f"MANIFEST.json signature: signed with key {signing.key_id(forger.public_key())[:16]}..., not with " \
               f"the key given with --key ({owner[:16]}...)" in err, err
    code, out, err = _verify(capsys, forged)
    assert code == 0, err
    assert f"WARNING: the key was taken from the bundle itself (fingerprint {signing.key_id(forger.public_key())})" \
        in err, err
    code, out, err = _verify(capsys, bundle, "--key", owner)
    assert code == 0 and "WARNING" not in err, err
    assert f"signatures checked against the key given with --key (fingerprint {owner})" in out, out


def test_keygen_prints_the_fingerprint_that_verify_and_report_verify_pin(owned, tmp_path, capsys):
    """The fingerprint `evidence keygen` prints is the one `--key` takes: a report signed by the owner's
    key passes `report --verify --key` with it and is refused with another key's."""
    cfg_path, state, _, _, _ = owned
    capsys.readouterr()
    assert main(["evidence", "keygen", "--output", str(tmp_path / "other")]) == 0
    out = capsys.readouterr().out
    other = signing.key_id(signing.load_public(tmp_path / "other" / signing.PUBLIC_NAME))
    assert f"fingerprint {other}\n" in out and "send it once to whoever checks your bundles" in out, out
    from agent.report import build_report
    report = tmp_path / "r.json"
    report.write_text(render(build_report(load_config(cfg_path), str(state), MONTH, T0 + 4 * HOURS), "json"))
    owner = signing.key_id(_owner(cfg_path).public_key())
    verify = ["report", "--config", str(cfg_path), "--state-dir", str(state), "--verify", str(report)]
    assert main(verify) == 0
    assert f"signature checked against the configuration's key (fingerprint {owner})" in capsys.readouterr().out
    assert main([*verify, "--key", owner]) == 0
    assert f"signature checked against the key given with --key (fingerprint {owner})" in capsys.readouterr().out
    for pin in (other, str(tmp_path / "other" / signing.PUBLIC_NAME)):
        assert main([*verify, "--key", pin]) == 1
        assert f"signature: signed with key {owner[:16]}..., not with the key given with --key ({other[:16]}...)" \
            in capsys.readouterr().err
    assert main([*verify, "--key", "0123"]) == 2
    assert "--key 0123: neither a key file nor a fingerprint" in capsys.readouterr().err


def test_an_unsigned_bundle_fails_unless_allowed(owned, tmp_path, capsys):
    _, _, bundle, _, _ = owned
    inner = _unpack(bundle, tmp_path / "u")
    _write_report(inner, json.loads((inner / "report.json").read_text()), None)
    _resign(inner, None)
    plain = _repack(inner, tmp_path / "plain.tar.gz")
    code, out, err = _verify(capsys, plain)
    assert code == 1 and "the bundle is not signed: anyone could have made it (--allow-unsigned to check it anyway)" \
        in err, (out, err)
    code, out, err = _verify(capsys, plain, "--allow-unsigned")
    assert code == 0 and "WARNING: the bundle is not signed" in err, (out, err)
    code, out, err = _verify(capsys, plain, "--allow-unsigned", "--key", "ab" * 32)
    assert code == 1 and "not signed, and a key was given with --key" in err, (out, err)


def test_an_edited_report_html_is_named(owned, tmp_path, capsys):
    """Forgery 3: the figure shown to people changed, the manifest signed again (by the owner's own key)."""
    cfg_path, _, bundle, _, _ = owned
    inner = _unpack(bundle, tmp_path / "u")
    html = (inner / "report.html").read_text()
    assert "0.000 %" in html
    (inner / "report.html").write_text(html.replace("0.000 %", "99.950 %"))
    _resign(inner, _owner(cfg_path))
    code, out, err = _verify(capsys, _repack(inner, tmp_path / "html.tar.gz"))
    assert code == 1, (out, err)
    assert "report.html: differs from report.json rendered again (first at line" in err, err


def test_a_bundle_an_older_version_laid_out_otherwise_verifies_and_its_figures_are_still_held(owned, tmp_path, capsys,
                                                                                               monkeypatch):
    """An archived bundle must verify under a later version whose HTML differs in layout, wording and charts;
    within one version the bytes must match, and across versions every word of its tables must."""
    from agent.report import unbundle
    cfg_path, _, bundle, _, _ = owned
    inner = _unpack(bundle, tmp_path / "u")
    html = (inner / "report.html").read_text()
    assert "</style>" in html
    (inner / "report.html").write_text(html.replace("</style>", "td { padding: 9px }</style>", 1))
    _resign(inner, _owner(cfg_path))
    restyled = _repack(inner, tmp_path / "restyled.tar.gz")
    assert _verify(capsys, restyled)[0] == 1  # the same version renders it byte for byte
    monkeypatch.setattr(unbundle, "__version__", "99.0")  # a later agent checks the archived bundle
    code, out, err = _verify(capsys, restyled)
    assert code == 0, err
    reworded = html.replace("</h1>", " (archived)</h1>", 1).replace("</svg>", "<text>an axis of old</text></svg>", 1)
    assert reworded.count("(archived)") == 1 and "an axis of old" in reworded
    (inner / "report.html").write_text(reworded)  # another version's words and charts around the same tables
    _resign(inner, _owner(cfg_path))
    code, out, err = _verify(capsys, _repack(inner, tmp_path / "reworded.tar.gz"))
    assert code == 0, err
    (inner / "report.html").write_text(html.replace("0.000 %", "99.950 %"))
    _resign(inner, _owner(cfg_path))
    code, out, err = _verify(capsys, _repack(inner, tmp_path / "figure.tar.gz"))
    assert code == 1 and "report.html: differs from report.json rendered again" in err, err


def _late_record(state: Path, cfg_path: Path, at: float, request_id: str) -> None:
    """A down result of api-health at `at` written as a flush writes it (counts and journal record),
    not sealed yet."""
    from agent.calendar import Calendar
    from agent.ledger import Ledger
    from agent.ledger.journal import Journal
    from agent.probes import Detail, ProbeResult

    cfg = load_config(cfg_path)
    ledger = Ledger(cfg.contract.thresholds, day_start=Calendar(cfg.contract).day_start)
    ledger.anchor(at)
    journal = Journal(cfg.evidence.failures_per_minute)
    r = ProbeResult("api-health", "api", at, 0.0, 0.05, "down", "http_status", status=503, error="HTTP 503",
                    latency_counted=True, detail=Detail("127.0.0.1:1", (("X-Request-Id", request_id),),
                                                        b"upstream unavailable", "", 64))
    ledger.add(r)
    journal(r, False)
    hours, digests = ledger.take_dirty()
    store = Store(state, thresholds=cfg.contract.thresholds)
    try:
        store.write(hours, digests, {"api-health": "api"}, records=journal.take(), now=at + 60, location="paris")
    finally:
        store.close()


def test_a_journal_record_edited_before_its_seal_is_named_at_report_verify_and_export(owned, tmp_path, capsys):
    """Forgery 4, in the agent's ledger: a record edited between its write and its seal keeps the hash
    written with it, and the seal covers the edited content; the report's evidence hash used the stored
    hash, so `report --verify` passed and a bundle shipped a `hash` that is not the record's."""
    cfg_path, state, _, _, _ = owned
    copy = tmp_path / "state"
    shutil.copytree(state, copy)
    _late_record(copy, cfg_path, T0 + 5 * HOURS, "r-vendor-log-line")
    conn = sqlite3.connect(copy / "ledger.db")
    rid = conn.execute("SELECT MAX(id) FROM journal").fetchone()[0]
    conn.execute("UPDATE journal SET headers = replace(headers, 'r-vendor-log-line', 'r-nothing-there') WHERE id=?",
                 (rid,))
    conn.commit()
    conn.close()
    store = Store(copy, thresholds=load_config(cfg_path).contract.thresholds)
    store.write([], [], {}, now=T0 + 7 * HOURS)  # a later flush seals the run as it now is
    assert store.verify()[0] == []
    store.close()
    said = f"journal record {rid} (api-health, 2026-03-10T15:00:00+01:00): its content differs from the hash " \
           f"written with it"
    from agent.report import build_report
    report = tmp_path / "r.json"
    report.write_text(render(build_report(load_config(cfg_path), str(copy), MONTH, T0 + 7 * HOURS), "json"))
    capsys.readouterr()
    code = main(["report", "--config", str(cfg_path), "--state-dir", str(copy), "--verify", str(report)])
    err = capsys.readouterr().err
    assert code == 1 and said in err, err
    code = main(["evidence", "export", "--config", str(cfg_path), "--state-dir", str(copy), "--month", MONTH,
                 "--output", str(tmp_path / "b.tar.gz")])
    err = capsys.readouterr().err
    assert code == 1 and said in err and not (tmp_path / "b.tar.gz").exists(), err


def test_a_journal_record_edited_in_a_bundle_with_its_seal_made_again_is_named(owned, tmp_path, capsys):
    """Forgery 4, in a bundle: a record's content edited in ledger.db, its run sealed again and the chain
    recomputed, journal.jsonl written again from it, report.json rebuilt and signed by the owner's key."""
    cfg_path, _, bundle, doc, _ = owned
    inner = _unpack(bundle, tmp_path / "u")
    conn = sqlite3.connect(inner / "ledger.db")
    rid, headers = conn.execute("SELECT id, headers FROM journal WHERE outcome='down' ORDER BY id LIMIT 1").fetchone()
    assert "X-Request-Id" in headers
    conn.execute("UPDATE journal SET headers='[]' WHERE id=?", (rid,))
    conn.commit()
    conn.close()
    _rechain(inner / "ledger.db")
    place = tmp_path / "lines"
    place.mkdir()
    (place / "ledger.db").symlink_to(inner / "ledger.db")
    store = Store(place, thresholds=load_config(cfg_path).contract.thresholds, readonly=True)
    scope = store.extract_scope()
    store.journal_lines(inner / "journal.jsonl", scope["journal_from"], scope["until"], tuple(scope["journal_ids"]))
    store.close()
    _write_report(inner, _rebuild(inner, cfg_path, doc), _owner(cfg_path))
    _resign(inner, _owner(cfg_path))
    code, out, err = _verify(capsys, _repack(inner, tmp_path / "j.tar.gz"))
    assert code == 1, (out, err)
    assert f"ledger.db: journal record {rid} (api-health, " in err and "its content differs from the hash written " \
        "with it" in err, err


def test_an_archive_cut_short_is_named(owned, tmp_path, capsys):
    """Forgery 5: tarfile stops at the end-of-archive blocks, before the gzip trailer (its CRC and length)."""
    _, _, bundle, _, _ = owned
    raw = bundle.read_bytes()
    for cut in range(1, 64):
        (tmp_path / "cut.tar.gz").write_bytes(raw[:-cut])
        code, out, err = _verify(capsys, tmp_path / "cut.tar.gz")
        assert code != 0 and "not a whole .tar.gz" in err and "verified" not in out, (cut, out, err)


def _counts_rewritten(owned, tmp_path: Path, key) -> tuple[Path, dict]:
    """Forgery 2 as the auditor made it: api-health's down probes counted as up in ledger.db (errors too),
    the chain recomputed, report.json built again with the project's builder, signed with `key` (None:
    unsigned) and the manifest with it."""
    cfg_path, _, bundle, doc, _ = owned
    inner = _unpack(bundle, tmp_path / "u")
    assert _api_up_all_month(inner / "ledger.db") > 0
    _rechain(inner / "ledger.db")
    forged = _rebuild(inner, cfg_path, doc)
    api = next(r for r in forged["rows"] if r["service"] == "api" and r["measure"] == "availability")
    assert api["value"] == 1.0  # the forgery does what it was made for
    _write_report(inner, forged, key)
    _resign(inner, key)
    return _repack(inner, tmp_path / "counts.tar.gz"), forged


def test_minute_counts_rewritten_with_the_chain_and_report_rebuilt_are_named(owned, tmp_path, capsys):
    """Forgery 2, signed by the owner's key (the forger holds it), by a forger's key, and unsigned: the
    chain and the report agree with the rewritten counts, the journal's down records do not."""
    cfg_path, _, _, _, tmp = owned
    owner = signing.key_id(_owner(cfg_path).public_key())
    for who, key in (("owner", _owner(cfg_path)), ("forger", signing.Ed25519PrivateKey.generate()), ("none", None)):
        forged, _ = _counts_rewritten(owned, tmp_path / who, key)
        for extra in ((), ("--allow-unsigned",)) if key is None else ((), ("--key", owner)):
            code, out, err = _verify(capsys, forged, *extra)
            assert code == 1 and "verified" not in out, (who, extra, out, err)
            if who == "forger" and extra:  # refused on the key: the files are not checked further
                assert "MANIFEST.json signature: signed with key" in err, err
                continue
            assert "ledger.db: api-health, 2026-03-10T" in err and " down records in the journal, but the minute " \
                "counts 0 down probes" in err, (who, extra, err)
            assert "more disagreements of the minute counts with the journal" in err, err
            assert "web-ui" not in err, err


def test_down_probes_counted_without_their_journal_records_are_named(owned, tmp_path, capsys):
    """The other side's forgery: web-ui's up probes counted as down (downtime made up), the chain and the
    report rebuilt and signed by the owner's key; no journal record backs a single one of those failures."""
    cfg_path, _, bundle, doc, _ = owned
    inner = _unpack(bundle, tmp_path / "u")
    conn = sqlite3.connect(inner / "ledger.db")
    tid, hour, blob = conn.execute("SELECT m.target_id, m.hour, m.counts FROM minutes m JOIN targets t ON "
                                   "t.id = m.target_id WHERE t.name = 'web-ui' ORDER BY m.hour LIMIT 1").fetchone()
    counts = np.frombuffer(zlib.decompress(blob), dtype=np.uint16).reshape(60, -1).copy()
    minute = int(np.flatnonzero(counts[:, UP_I] > 0)[0])
    counts[minute, DOWN_I], counts[minute, UP_I] = counts[minute, UP_I], 0
    conn.execute("UPDATE minutes SET counts=? WHERE target_id=? AND hour=?",
                 (zlib.compress(counts.tobytes()), tid, hour))
    conn.commit()
    conn.close()
    _rechain(inner / "ledger.db")
    _write_report(inner, _rebuild(inner, cfg_path, doc), _owner(cfg_path))
    _resign(inner, _owner(cfg_path))
    code, out, err = _verify(capsys, _repack(inner, tmp_path / "made-up.tar.gz"))
    assert code == 1, (out, err)
    up = counts[minute, DOWN_I]
    assert "ledger.db: web-ui, " in err and f": the minute counts {up} failed probes, but the journal holds 0 " \
        f"failure records (at least {min(up, 2)}: evidence.failures_per_minute 2)" in err, err
    assert "up records in the journal, but the minute counts 0 up probes" in err, err


def test_the_bundle_states_its_method_and_verify_prints_it(owned, tmp_path, capsys):
    """method.json: the agent's version, the config's hash, the contract's readings, what the report was
    built from, Python, OpenSSL, the probes' TLS groups and the clocks; printed by `evidence verify`, and
    named when it no longer agrees with the bundle's other files."""
    cfg_path, _, bundle, doc, _ = owned
    inner = _unpack(bundle, tmp_path / "u")
    stated = json.loads((inner / "method.json").read_text())
    assert stated["agent_version"] == doc["agent_version"] and stated["readings"] == doc["readings"]
    assert stated["config_sha256"] == hashlib.sha256((inner / "config.yaml").read_bytes()).hexdigest()
    assert stated["built_from"]["ledgers"] == {"paris": doc["evidence"]["chain"]}
    assert stated["runtime"]["openssl"] == ssl.OPENSSL_VERSION
    assert platform.python_version() in stated["runtime"]["python"]
    assert stated["tls"]["key_share"] and set(stated["tls"]["key_share"]) <= set(stated["tls"]["groups_offered"])
    assert stated["time"]["timestamps"] == [] and "steady clock" in stated["time"]["wall"]
    code, out, err = _verify(capsys, bundle, "--key", signing.key_id(_owner(cfg_path).public_key()))
    assert code == 0, err
    assert f"agent {doc['agent_version']}, config.yaml sha256 {stated['config_sha256']}" in out, out
    assert f"runtime: CPython {platform.python_version()}, {ssl.OPENSSL_VERSION}" in out, out
    assert f"TLS of the probes: key share {stated['tls']['key_share'][0]}" in out and "RFC 3161 authorities: none" in out
    stated["config_sha256"] = "0" * 64
    stated["built_from"]["rows_hashed"] += 1
    (inner / "method.json").write_text(json.dumps(stated))
    _resign(inner, _owner(cfg_path))
    code, out, err = _verify(capsys, _repack(inner, tmp_path / "m.tar.gz"))
    assert code == 1 and "method.json: config_sha256 is not the bundle's" in err and \
        "method.json: built_from.rows_hashed is not report.json's" in err and "TLS of the probes" not in out, err


def test_the_groups_stated_are_those_a_probe_sends(tmp_path):
    """The ClientHello read in memory is the one a probe's TLS sends: a local server takes it off the wire."""
    import socket
    import threading

    from agent.probes.tls import TLSOptions, _hello_groups, client_context, offered_groups

    srv = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = srv.accept()
        conn.settimeout(5)
        with conn:
            data = b""
            while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            got.append(data)

    thread = threading.Thread(target=serve)
    thread.start()
    with socket.create_connection(srv.getsockname(), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, OSError)):  # the server hangs up after the hello
            client_context(TLSOptions()).wrap_socket(raw, server_hostname="localhost").close()
    thread.join(5)
    srv.close()
    offered, shares = offered_groups()
    assert offered and shares and _hello_groups(got[0]) == (offered, shares)


def test_a_probe_started_in_a_minutes_last_half_microsecond_is_no_disagreement(owned, tmp_path, capsys):
    """A record's start is stored to the microsecond: a probe started less than half a microsecond before a
    minute ends is counted in that minute, and its record lies on the next minute's first microsecond."""
    cfg_path, state, _, _, _ = owned
    copy = tmp_path / "state"
    shutil.copytree(state, copy)
    edge = T0 + 5 * HOURS
    at = np.nextafter(edge, 0.0)  # the float just before the minute: counted in the minute before
    assert int(at // 60) == int(edge // 60) - 1 and round(at * 1e6) == round(edge * 1e6)
    _late_record(copy, cfg_path, float(at), "r-edge")
    store = Store(copy, thresholds=load_config(cfg_path).contract.thresholds)
    try:
        store.seal_now(T0 + 7 * HOURS)  # as a stop seals it: a bundle with a row outside the chain fails
    finally:
        store.close()
    bundle = tmp_path / "b.tar.gz"
    export_bundle(load_config(cfg_path), str(copy), MONTH, T0 + 7 * HOURS, bundle)
    code, out, err = _verify(capsys, bundle)
    assert code == 0 and "disagree" not in err and "records in the journal" not in err, (out, err)
