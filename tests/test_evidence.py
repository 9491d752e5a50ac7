"""Evidence that holds in a dispute: the failure journal against a real server, failure episodes with
exact error counts, the hash chain and its tamper checks, signed reports that verify field by field, a
report of the month in progress that still verifies later, and the offline bundle."""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import shutil
import sqlite3
import tarfile
from pathlib import Path

import pytest
from aiohttp import web

from agent.app import Agent
from agent.cli import main
from agent.config import load_config
from agent.probes import ProbeResult, make_probe
from agent.report import build_report, report_hash, verify_report
from agent.report.unbundle import verify_bundle
from agent.report.signing import keygen
from agent.scheduler import Scheduler
from agent.store import Store

from .conftest import FakeClock
from .month_fixture import CONFIG as MONTH_CONFIG, NOW as MONTH_NOW, build as build_month
from .servers import http_server

TZ = dt.timezone(dt.timedelta(hours=1))
T0 = dt.datetime(2026, 3, 10, 10, 0, tzinfo=TZ).timestamp()  # a Tuesday: no maintenance window


class ManualClock:
    """Wall time set by the test; durations stay real (the probe measures them on the monotonic clock)."""

    def __init__(self, wall: float) -> None:
        self.wall = wall

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        import time
        return time.monotonic()


def _outage(t: float) -> bool:
    return T0 + 180 <= t < T0 + 360 or T0 + 490 <= t < T0 + 510  # 3 whole minutes; then 20 s of one minute


@pytest.fixture
def scenario(tmp_path):
    """Ten minutes of a web target probed every 2 s (simulated wall time) against a real server that
    answers 503, with telling headers and body, during the outages."""
    sent: list[tuple[float, str]] = []
    clock = ManualClock(T0)

    async def handler(request: web.Request) -> web.Response:
        if _outage(clock.wall):
            rid = f"req-{len(sent)}"
            sent.append((clock.wall, rid))
            return web.Response(status=503, text="maintenance in progress; " + "x" * 200,
                                headers={"Server": "vendor-edge/1.2", "X-Request-Id": rid, "Via": "1.1 cdn"})
        return web.Response(text="<html>CRM360</html>")

    async def run() -> Path:
        app = web.Application()
        app.router.add_get("/", handler)
        async with http_server(app) as base:
            cfg_path = tmp_path / "cfg.yaml"
            cfg_path.write_text(f'agent: {{location: paris, listen: "127.0.0.1:0"}}\nevidence: {{body_bytes: 64}}\ntargets:\n'
                                f'  - {{name: web-ui, service: web, url: "{base}/", interval: 2s, timeout: 1s}}\n')
            cfg = load_config(cfg_path)
            agent = Agent(cfg, state_dir=str(tmp_path / "state"), clock=clock)
            await agent.start()
            await agent.scheduler.stop(0)  # the test drives the probe and the wall clock itself
            probe = make_probe(cfg.targets[0], clock=clock, capture=agent_capture(cfg))
            for k in range(300):
                clock.wall = T0 + 2 * k
                agent.on_result(await probe.run())
                if k % 30 == 29:
                    await agent.flush()
            await probe.close()
            clock.wall = T0 + 7200  # the hour is final: its counts are sealed at this last flush
            await agent.stop()
            return cfg_path

    cfg_path = asyncio.run(run())
    return cfg_path, tmp_path / "state", sent


def agent_capture(cfg):
    from agent.probes import Capture
    return Capture(cfg.evidence.headers, cfg.evidence.body_bytes)


def test_journal_records_match_what_the_server_sent(scenario):
    cfg_path, state, sent = scenario
    cfg = load_config(cfg_path)
    doc = build_report(cfg, str(state), "2026-03", T0 + 3600)
    first, second = doc["incidents"]
    # three whole minutes down: 90 failed probes, exact, although the journal keeps 20 a minute and the last
    assert (first["start"], first["end"]) == ("2026-03-10T10:03:00+01:00", "2026-03-10T10:06:00+01:00")
    assert (first["down_minutes"], first["degraded_minutes"], first["counted_minutes"]) == (3, 0, 3)
    assert first["error_kinds"] == {"http_status": 90} and first["journal"]["records"] == 63
    assert first["locations"] == ["paris"]
    # 20 s of one minute: 10 of 30 probes down, below the 50 % rule: degraded, shown, not counted
    assert (second["down_minutes"], second["degraded_minutes"], second["counted_minutes"]) == (0, 1, 0)
    assert second["error_kinds"] == {"http_status": 10}
    records = json.loads(json.dumps(first["journal"]))
    assert records["first"]["at"] == "2026-03-10T10:03:00+01:00" and records["first"]["status"] == 503
    from agent.store import Store
    store = Store(state, thresholds=cfg.contract.thresholds, readonly=True)
    try:
        failed = store.journal(["web-ui"], T0, T0 + 600, outcomes=("down",))
        ups = store.journal(["web-ui"], T0, T0 + 600, outcomes=("up",))
    finally:
        store.close()
    by_time = dict(sent)
    for r in failed:
        headers = dict(r["headers"])
        assert headers["X-Request-Id"] == by_time[r["at"]]  # the very request the server answered
        assert headers["Server"] == "vendor-edge/1.2" and headers["Via"] == "1.1 cdn"
        assert r["body"] == ("maintenance in progress; " + "x" * 200)[:64] and r["status"] == 503
        assert r["address"].startswith("127.0.0.1:") and r["error_kind"] == "http_status"
    assert len(failed) == 63 + 10
    assert len(ups) == 10 - 3  # one up record per minute with an up result: proof of health
    assert all(u["body"] == "<html>CRM360</html>" for u in ups)


def test_text_markdown_and_html_show_the_episodes(scenario):
    cfg_path, state, _ = scenario
    cfg = load_config(cfg_path)
    doc = build_report(cfg, str(state), "2026-03", T0 + 3600)
    from agent.report import render
    text, md, html = (render(doc, f) for f in ("text", "markdown", "html"))
    assert "3 min: 3 down, 0 degraded; counted 3 min" in text
    assert "1 min: 0 down, 1 degraded; counted no (below the slice rule)" in text
    assert "| 1 min: 0 down, 1 degraded |" in md
    first_id = doc["incidents"][0]["journal"]["first"]["id"]
    assert html.count('href="api/v1/journal?service=web') == 2 and f"first #{first_id} 10:03:00 web-ui" in html


def test_the_last_failed_probe_of_each_minute_is_kept_beyond_the_cap(scenario):
    """30 failed probes a minute, 20 kept a minute (evidence.failures_per_minute): the journal also keeps
    the minute's last failure, so the episode's last record is when the outage was last seen, the probe
    the vendor can match in their own logs (its X-Request-Id)."""
    cfg_path, state, sent = scenario
    doc = build_report(load_config(cfg_path), str(state), "2026-03", T0 + 3600)
    episode = doc["incidents"][0]
    assert episode["journal"]["last"]["at"] == "2026-03-10T10:05:58+01:00"  # the outage ends before 10:06:00
    last = _rows(state / "ledger.db", "SELECT headers FROM journal WHERE id = %d" % episode["journal"]["last"]["id"])
    assert dict(json.loads(last[0][0]))["X-Request-Id"] == [rid for t, rid in sent if t < T0 + 360][-1]
    per_minute = _rows(state / "ledger.db", "SELECT at_us / 60000000, COUNT(*), MAX(at_us) FROM journal WHERE outcome = "
                                            "'down' GROUP BY 1 ORDER BY 1")
    full = [(n, last_us) for m, n, last_us in per_minute if m * 60 in (T0 + 180, T0 + 240, T0 + 300)]
    assert [n for n, _ in full] == [21, 21, 21]  # the first 20, and the last one
    assert [last_us / 1e6 % 60 for _, last_us in full] == [58, 58, 58]


def _rows(path: Path, sql: str) -> list:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _tampered(state: Path, tmp: Path, name: str, *statements: str) -> Path:
    copy = tmp / name
    shutil.copytree(state, copy)
    conn = sqlite3.connect(copy / "ledger.db")
    for s in statements:
        conn.execute(s)
    conn.commit()
    conn.close()
    return copy


def test_tampering_is_found_and_named(scenario, tmp_path, capsys):
    cfg_path, state, _ = scenario
    assert main(["evidence", "verify", "--config", str(cfg_path), "--state-dir", str(state)]) == 0
    assert "verified" in capsys.readouterr().out
    hour = _rows(state / "ledger.db", "SELECT hour FROM minutes WHERE link IS NOT NULL")[0][0]
    cases = {
        "count": ("UPDATE minutes SET counts = zeroblob(length(counts)) WHERE hour = %d" % hour,
                  "minute counts of web-ui, hour from"),
        "journal byte": ("UPDATE journal SET error = error || '!' WHERE id = 5", "journal record 5 "),
        "journal row deleted": ("DELETE FROM journal WHERE id = 7", "journal record 7 (sealed in link"),
    }
    for name, (sql, place) in cases.items():
        copy = _tampered(state, tmp_path, name.replace(" ", "-"), sql)
        assert main(["evidence", "verify", "--config", str(cfg_path), "--state-dir", str(copy)]) == 1, name
        err = capsys.readouterr().err
        assert "MISMATCH" in err and place in err, (name, err)


def test_a_sealed_row_written_again_is_a_mismatch_not_a_normal_rewrite(scenario, tmp_path, capsys):
    """`evidence verify` used to count a sealed hour written again as "rewritten, to be sealed again" (exit
    0), and said nothing once the next flush had sealed it again: a sealed minute never changes."""
    from agent.store import chain
    cfg_path, state, _ = scenario
    hour = _rows(state / "ledger.db", "SELECT hour FROM minutes WHERE link IS NOT NULL")[0][0]
    copy = _tampered(state, tmp_path, "again", "UPDATE minutes SET counts = zeroblob(length(counts)), link = NULL "
                     f"WHERE hour = {hour}")
    assert main(["evidence", "verify", "--config", str(cfg_path), "--state-dir", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "minute counts of web-ui, hour from" in err and "written again after it was sealed" in err, err
    copy = _tampered(state, tmp_path, "resealed")  # as a flush after the rewrite did: sealed again, chain intact
    conn = sqlite3.connect(copy / "ledger.db", isolation_level=None)
    counts = conn.execute("SELECT zeroblob(length(counts)) FROM minutes WHERE hour = ?", (hour,)).fetchone()[0]
    conn.execute("BEGIN")
    seq = chain.append_link(conn, [chain.Seal(f"m:web-ui:{hour}", hour * 3600.0,
                                              chain.minute_hash("web-ui", hour, counts, ""))], T0 + 86400)
    conn.execute("UPDATE minutes SET counts = ?, errors = '', link = ? WHERE hour = ?", (counts, seq, hour))
    conn.execute("COMMIT")
    conn.close()
    assert main(["evidence", "verify", "--config", str(cfg_path), "--state-dir", str(copy)]) == 1
    err = capsys.readouterr().err
    assert f"written again after it was sealed (a sealed row never changes), and sealed again in link {seq}" in err


def test_a_changed_digest_and_reordered_links_are_found(tmp_path, capsys):
    state = tmp_path / "state"
    build_month(state)  # a month written day by day: a link a day
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(MONTH_CONFIG)
    assert main(["evidence", "verify", "--config", str(cfg_path), "--state-dir", str(state)]) == 0
    start = _rows(state / "ledger.db", "SELECT start FROM digests WHERE link IS NOT NULL ORDER BY start")[3][0]
    copy = _tampered(state, tmp_path, "digest", f"UPDATE digests SET data = data || x'00' WHERE start = {start}")
    assert main(["evidence", "verify", "--config", str(cfg_path), "--state-dir", str(copy)]) == 1
    assert "latency digest of" in capsys.readouterr().err
    copy = _tampered(state, tmp_path, "reorder", "UPDATE chain SET seq = -seq WHERE seq IN (5, 6)",
                     "UPDATE chain SET seq = 6 WHERE seq = -5", "UPDATE chain SET seq = 5 WHERE seq = -6")
    assert main(["evidence", "verify", "--config", str(cfg_path), "--state-dir", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "link 5 (" in err and "link 6 (" in err


@pytest.fixture(scope="module")
def signed_month(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("signed")
    state = tmp / "state"
    build_month(state)
    private, public = keygen(tmp / "keys")
    cfg_path = tmp / "cfg.yaml"
    cfg_path.write_text(MONTH_CONFIG + f"evidence: {{signing_key_file: {private}}}\n")
    cfg = load_config(cfg_path)
    return cfg, cfg_path, state, build_report(cfg, str(state), "2026-02", MONTH_NOW), tmp


def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))
    else:
        yield prefix


def test_any_edited_field_fails_verify_and_the_signature(signed_month):
    cfg, _, state, doc, _ = signed_month
    assert doc["evidence"]["signature"]["algorithm"] == "ed25519"
    assert verify_report(cfg, str(state), doc) == []
    leaves = [p for p in _paths(doc) if p[0] != "evidence" or p[1] in ("ledger_sha256", "cutoff", "range")]
    for path in leaves[::max(1, len(leaves) // 60)]:  # sixty fields spread over the whole document
        edited = json.loads(json.dumps(doc))
        node = edited
        for key in path[:-1]:
            node = node[key]
        value = node[path[-1]]
        node[path[-1]] = (value + 1) if isinstance(value, (int, float)) and not isinstance(value, bool) else \
            (not value if isinstance(value, bool) else f"{value}x")
        for rehash in (False, True):
            if rehash:
                edited["evidence"]["report_sha256"] = report_hash(edited)
            problems = verify_report(cfg, str(state), edited)
            assert any(p.startswith("signature:") for p in problems), (path, problems)
            assert len(problems) >= 2, (path, problems)  # and the field, or the hash, is named


def test_the_month_in_progress_still_verifies_five_minutes_later(tmp_path):
    """The report stops at the last closed minute; the daemon goes on writing after it."""
    clock = FakeClock(wall=T0)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text('agent: {flush_interval: 5s, listen: "127.0.0.1:0"}\ntargets:\n'
                        '  - {name: api, service: api, url: "http://127.0.0.1:9/", interval: 1s, timeout: 2s, '
                        'max_in_flight: 3}\n')
    cfg = load_config(cfg_path)

    class Slowish:
        """Up or down, 50 ms to 1.8 s: results keep landing in the minute before the one under way."""

        def __init__(self) -> None:
            self.k = itertools.count()

        async def run(self) -> ProbeResult:
            k = next(self.k)
            start, wall = clock.monotonic(), clock.time()
            d = (0.05, 0.3, 0.7, 1.8)[k % 4]
            await clock.sleep_until(start + d)
            down = k % 7 == 0
            return ProbeResult("api", "api", wall, start, d, "down" if down else "up", "http_status" if down else "",
                               status=503 if down else 200, latency_counted=True)

        async def close(self) -> None:
            pass

    async def run() -> tuple[dict, list[str]]:
        agent = Agent(cfg, state_dir=str(tmp_path / "state"), clock=clock)
        agent.ledger.anchor(T0)
        await agent.start()
        await agent.scheduler.stop(0)
        sched = Scheduler(clock, agent.on_result, rate_limit=1_000_000)
        sched.set_targets([(cfg.targets[0], Slowish())])
        start = clock.monotonic()
        sched.start()

        async def advance(seconds: float) -> None:
            end = clock.monotonic() + seconds
            while clock.monotonic() < end:
                await clock.advance(5)
                await agent.flush()

        await advance(600 + 17)  # mid-minute
        doc = build_report(cfg, str(tmp_path / "state"), "2026-03", clock.time())
        await advance(300)
        problems = verify_report(cfg, str(tmp_path / "state"), doc)
        await sched.stop(0)
        await agent.stop()
        assert start
        return doc, problems

    doc, problems = asyncio.run(run())
    assert not doc["complete"] and doc["evidence"]["cutoff"] == "2026-03-10T10:10:00+01:00"
    week = next(p for p in doc["periods"] if p["start"].startswith("2026-03-09"))
    assert week["count"] > 500 and not week["complete"]
    assert problems == []


def test_bundle_round_trip_offline_and_one_edited_byte(signed_month, tmp_path, capsys):
    cfg, cfg_path, state, _, _ = signed_month
    bundle = tmp_path / "feb.tar.gz"
    assert main(["evidence", "export", "--config", str(cfg_path), "--state-dir", str(state), "--month", "2026-02",
                 "--output", str(bundle)]) == 0
    assert "signed by key" in capsys.readouterr().out
    elsewhere = tmp_path / "arbitrator"
    elsewhere.mkdir()
    shutil.copy(bundle, elsewhere / "feb.tar.gz")  # no ledger, no config, no key there: only the bundle
    assert main(["evidence", "verify", str(elsewhere / "feb.tar.gz")]) == 0
    assert "verified" in capsys.readouterr().out
    with tarfile.open(bundle) as tar:
        names = [m.name.rsplit("/", 1)[1] for m in tar.getmembers()]
    assert sorted(names) == sorted(["report.json", "report.html", "ledger.db", "config.yaml",
                                    "method.json", "README.txt", "public_key.pem", "MANIFEST.json"])
    for member in ("report.json", "ledger.db", "config.yaml"):  # one byte changed inside a file of the bundle
        _edit_member(bundle, tmp_path / f"edited-{member}.tar.gz", member)
        problems = verify_bundle(tmp_path / f"edited-{member}.tar.gz").problems
        assert any(p.startswith(f"{member}: changed") for p in problems), problems
    raw = bytearray(bundle.read_bytes())  # one byte of the archive itself
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "flipped.tar.gz").write_bytes(bytes(raw))
    assert main(["evidence", "verify", str(tmp_path / "flipped.tar.gz")]) in (1, 2)


def test_the_journal_written_out_of_a_bundle_is_the_ledgers_byte_for_byte(scenario, tmp_path, capsys):
    """`evidence journal` writes the lines bundles used to carry as journal.jsonl: the month's journal of the
    agent's own ledger, over the same span and runs."""
    cfg_path, state, _ = scenario
    cfg = load_config(cfg_path)
    bundle = tmp_path / "mar.tar.gz"
    assert main(["evidence", "export", "--config", str(cfg_path), "--state-dir", str(state), "--month", "2026-03",
                 "--output", str(bundle), "--allow-unsealed"]) == 0
    assert main(["evidence", "journal", str(bundle), "--output", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    got = (tmp_path / "out" / "journal.jsonl").read_bytes()
    with tarfile.open(bundle) as tar:
        (tmp_path / "x").mkdir()
        (tmp_path / "x" / "ledger.db").write_bytes(tar.extractfile(next(m for m in tar.getmembers()
                                                                        if m.name.endswith("ledger.db"))).read())
    scope = Store(tmp_path / "x", thresholds=cfg.contract.thresholds, readonly=True).extract_scope()
    store = Store(state, thresholds=cfg.contract.thresholds, readonly=True)
    n = store.journal_lines(tmp_path / "want.jsonl", scope["journal_from"], scope["until"], tuple(scope["journal_ids"]))
    store.close()
    assert got == (tmp_path / "want.jsonl").read_bytes() and n > 20 and f"journal.jsonl: {n} records" in said
    carried = tmp_path / "lines.tar.gz"  # --journal-lines: the same lines inside the bundle, and checked there
    assert main(["evidence", "export", "--config", str(cfg_path), "--state-dir", str(state), "--month", "2026-03",
                 "--output", str(carried), "--allow-unsealed", "--journal-lines"]) == 0
    with tarfile.open(carried) as tar:
        inside = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("/journal.jsonl"))).read()
    assert inside == got and verify_bundle(carried, allow_unsigned=True).problems == []
    _edit_member(carried, tmp_path / "edited.tar.gz", "journal.jsonl")
    assert any(p.startswith("journal.jsonl: changed") for p in verify_bundle(tmp_path / "edited.tar.gz").problems)


def _edit_member(src: Path, dest: Path, name: str) -> None:
    import io
    with tarfile.open(src) as tin, tarfile.open(dest, "w:gz") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            if m.name.endswith("/" + name):
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            m.size = len(data)
            tout.addfile(m, io.BytesIO(data))


def test_a_ticket_edited_in_an_unsigned_bundle_with_its_manifest_redone_is_named(tmp_path, capsys):
    """Without a signature the manifest can be made again: the chain in the extract still names the ticket."""
    import hashlib
    state = tmp_path / "state"
    build_month(state)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(MONTH_CONFIG)
    bundle = tmp_path / "feb.tar.gz"
    assert main(["evidence", "export", "--config", str(cfg_path), "--state-dir", str(state), "--month", "2026-02",
                 "--output", str(bundle)]) == 0
    folder = tmp_path / "unpacked"
    with tarfile.open(bundle) as tar:
        tar.extractall(folder, filter="data")
    (inner,) = folder.iterdir()
    conn = sqlite3.connect(inner / "ledger.db")
    conn.execute("UPDATE tickets SET responded_at = responded_at - 86400 WHERE id = 'T-1'")  # answered in time
    conn.commit()
    conn.close()
    manifest = json.loads((inner / "MANIFEST.json").read_text())
    manifest["files"] = {n: hashlib.sha256((inner / n).read_bytes()).hexdigest() for n in manifest["files"]}
    (inner / "MANIFEST.json").write_text(json.dumps(manifest))
    with tarfile.open(tmp_path / "edited.tar.gz", "w:gz") as tar:
        tar.add(inner, arcname=inner.name)
    problems = verify_bundle(tmp_path / "edited.tar.gz", allow_unsigned=True).problems
    assert any(p.startswith("ledger.db: ticket T-1 (sealed in link") and p.endswith("differs from what was sealed")
               for p in problems), problems
    assert not any("T-2" in p for p in problems), problems


def test_a_body_is_redacted_before_it_is_cut(tmp_path):
    """A secret across the end of the kept excerpt must not survive in part."""
    from agent.ledger.journal import Record
    from agent.probes import Detail
    from agent.redact import Redactor
    from agent.store import Store
    secret = "tok-9f8e7d6c5b4a3210"
    body = ("A" * 60 + secret + "B" * 100).encode()
    store = Store(tmp_path, thresholds=(0.5, 1.0))
    rec = Record("t", T0, "down", "http_status", 500, "", 0.1, None, Detail("127.0.0.1:1", body=body, body_bytes=64),
                 False)
    store.write([], [], {"t": "web"}, records=[rec], now=T0, redact=Redactor([secret]))
    kept = store.journal(["t"], T0 - 1, T0 + 1)[0]["body"]
    store.close()
    assert kept == "A" * 60 + "<red" and "tok-" not in kept



async def test_the_journal_endpoint_checks_its_span(tmp_path):
    import aiohttp

    from agent.config import parse_config
    cfg = parse_config('agent: {listen: "127.0.0.1:0"}\ntargets: [{name: a, service: web, url: "http://127.0.0.1:9/"}]')
    agent = Agent(cfg, state_dir=str(tmp_path))
    await agent.start()
    try:
        async with aiohttp.ClientSession() as s:
            async def get(query: str) -> tuple[int, dict]:
                async with s.get(f"{agent.server.url}/api/v1/journal{query}") as resp:
                    return resp.status, await resp.json()

            assert (await get("?from=2026-03-10T10:00:00%2B01:00&to=2026-03-10T11:00:00Z"))[0] == 200
            for bad in ("?from=yesterday", "?from=100&to=50", "?limit=0", "?from=2026-03-10T10:00:00"):
                status, body = await get(bad)
                assert status == 400 and "error" in body, bad
            # past the years a month may name: a 400 that says so, never a 500 (datetime's years end at 9999)
            for bad, said in (("?period=9999-12-31", "between 2000-01-01 and 2199-12-31"),
                              ("?period=9999-12-25", "between 2000-01-01 and 2199-12-31"),
                              ("?period=0001-01-01", "between 2000-01-01 and 2199-12-31"),
                              ("?period=2026-02-30", "must be a day YYYY-MM-DD"),
                              ("?month=9999-12", "between 2000-01 and 2199-12"),
                              ("?from=9999-12-01T00:00:00Z&to=9999-12-31T00:00:00Z", "after the year 5137"),
                              ("?from=1969-12-31T00:00:00Z", "before 1970")):
                status, body = await get(bad)
                assert status == 400 and said in body["error"], (bad, body)
            async with s.get(f"{agent.server.url}/api/v1/ledger?from=9999-12-01T00:00:00Z&to=9999-12-31T00:00:00Z") \
                    as resp:
                assert resp.status == 400 and "after the year 5137" in (await resp.json())["error"]
    finally:
        await agent.stop()
