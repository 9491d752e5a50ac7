"""Nothing unsealed passes in silence: a clean stop seals every row it wrote (the agent probing two failing
targets, stopped as SIGTERM stops it, in its own process and as a real daemon), a row sealed before it was final is reopened and sealed again only
as the chain allows, `evidence verify` lists what lies outside the chain and never reads as success where
rows are uncovered, and a closed month's bundle is made from sealed rows only."""
from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import signal
import sqlite3
import tarfile
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from agent.app import Agent
from agent.calendar import Calendar
from agent.cli import main
from agent.config import load_config
from agent.ledger import DTYPE, Ledger, nfields
from agent.probes import ProbeResult, make_probe
from agent.store import Flusher, Store, chain
from agent.store.lock import StateLock

from .conftest import free_port, thread_server
from .servers import http_server
from .test_evidence import ManualClock
from .test_daemon import _run_daemon

TARGETS = ("web-ui", "api")


def _config(path: Path, listen: int, target: int) -> Path:
    path.write_text(f"""
agent: {{listen: "127.0.0.1:{listen}", flush_interval: 500ms, shutdown_grace: 2s}}
targets:
  - {{name: web-ui, service: web, url: "http://127.0.0.1:{target}/", interval: 250ms, timeout: 1s}}
  - {{name: api, service: api, url: "http://127.0.0.1:{target}/health", interval: 250ms, timeout: 2s}}
""")
    return path


def _down_probes(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:  # nosec - loopback
        text = resp.read().decode()
    found = {}
    for line in text.splitlines():
        m = re.match(r'sla_probes_total\{.*target="([^"]+)".*\} (\S+)', line)
        if m and 'outcome="down"' in line:
            found[m.group(1)] = float(m.group(2))
    return found


def _wait_down(port: int, proc, at_least: float, limit: float = 30.0) -> None:
    """Until the daemon (another process) has counted `at_least` down probes of each target; bounded."""
    deadline = time.monotonic() + limit
    while True:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            counts = _down_probes(port)
        except OSError:
            counts = {}
        if all(counts.get(t, 0) >= at_least for t in TARGETS):
            return
        assert time.monotonic() < deadline, f"the daemon never counted {at_least} down probes each: {counts}"
        time.sleep(0.05)


def _stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def _sql(db: Path, query: str, *args) -> list:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def _verify(capsys, cfg: Path, state: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["evidence", "verify", "--config", str(cfg), "--state-dir", str(state), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _edited(state: Path, tmp: Path, name: str, sql: str) -> Path:
    copy = tmp / name
    shutil.copytree(state, copy, ignore=shutil.ignore_patterns("agent.lock"))
    conn = sqlite3.connect(copy / "ledger.db")
    assert conn.execute(sql).rowcount == 1, sql
    conn.commit()
    conn.close()
    return copy


async def _seventy_five_seconds(tmp_path: Path, capsys) -> tuple[Path, Path, dict]:
    """The issue's scenario in the agent's own process: two targets answering 503 probed every 2 s for 75 s of
    injected wall time, flushed every 10 s; `evidence verify` (and --month) asked while it runs; stopped as
    SIGTERM stops it (Agent.stop)."""
    start = float(int(time.time()))  # near the real time: `verify` judges which rows are due by the real clock
    clock = ManualClock(start)
    running = {}

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503, text="down for maintenance")

    app = web.Application()
    app.router.add_get("/{tail:.*}", down)
    async with http_server(app) as base:
        cfg = tmp_path / "agent.yaml"
        cfg.write_text(f'agent: {{listen: "127.0.0.1:0"}}\ntargets:\n'
                       f'  - {{name: web-ui, service: web, url: "{base}/", interval: 2s, timeout: 2s}}\n'
                       f'  - {{name: api, service: api, url: "{base}/health", interval: 2s, timeout: 2s}}\n')
        config = load_config(cfg)
        agent = Agent(config, state_dir=str(tmp_path / "state"), clock=clock)
        await agent.start()
        await agent.scheduler.stop(0)  # the test drives the probes and the wall clock itself
        probes = [make_probe(t, clock=clock) for t in config.targets]
        for k in range(38):
            clock.wall = start + 2 * k
            for probe in probes:
                agent.on_result(await probe.run())
            if k % 5 == 4:
                await agent.flush()
        for probe in probes:
            await probe.close()
        month = "{:04d}-{:02d}".format(*Calendar(config.contract).month_of(start))
        running["plain"] = _verify(capsys, cfg, tmp_path / "state")
        running["month"] = _verify(capsys, cfg, tmp_path / "state", "--month", month)
        await agent.stop()
    return cfg, tmp_path / "state", running


def test_a_clean_stop_seals_every_row_and_an_edit_of_any_is_named(tmp_path, capsys):
    """The stop used to seal nothing (journal runs are sealed every 10 minutes, an hour's counts 15 minutes
    after the hour), and `evidence verify` printed `verified: links 0, minute rows 0, digests 0, journal
    records 0` with exit 0, and said the same of a ledger whose records and counts had been edited."""
    cfg, state, running = asyncio.run(_seventy_five_seconds(tmp_path, capsys))
    db = state / "ledger.db"
    (records,), (minute_rows,), (digests,) = (_sql(db, f"SELECT COUNT(*) FROM {t}")[0] for t in
                                              ("journal", "minutes", "digests"))
    assert records >= 40 and minute_rows >= 2 and digests >= 2  # 20 down records a target-minute at most
    code, out, err = running["plain"]  # while it ran: the tail listed as not covered, what was checked sound
    assert code == 1 and "NOTHING VERIFIED" in err and "verified:" not in out  # no seal was due yet
    assert "NOT COVERED YET:" in out and "journal records" in out and "minute rows" in out
    code, out, err = running["month"]
    assert code == 1 and "NOT SEALED:" in err and "minute rows" in err and "verified" not in out

    code, out, err = _verify(capsys, cfg, state)
    assert code == 0, err
    assert (f"minute rows {minute_rows}, digests {digests}, journal records {records}," in out
            and "every row asked about is sealed" in out and "NOT" not in out + err), out

    rows = _sql(db, "SELECT t.name, m.hour FROM minutes m JOIN targets t ON t.id = m.target_id")
    for name, hour in rows:
        edited = _edited(state, tmp_path, f"minute-{name}-{hour}",
                         f"UPDATE minutes SET counts = zeroblob(length(counts)) WHERE hour = {hour} AND "
                         f"target_id = (SELECT id FROM targets WHERE name = '{name}')")
        code, out, err = _verify(capsys, cfg, edited)
        assert code == 1 and "MISMATCH" in err and f"minute counts of {name}, hour from" in err, (out, err)
        assert "verified" not in out
    ids = [i for (i,) in _sql(db, "SELECT id FROM journal ORDER BY id")]
    for i in ids:  # each record edited in a copy of its own (one edit hides no other)
        edited = _edited(state, tmp_path, f"journal-{i}", f"UPDATE journal SET status = 200 WHERE id = {i}")
        store = Store(edited, thresholds=load_config(cfg).contract.thresholds, readonly=True)
        try:
            problems = store.verify()[0]
        finally:
            store.close()
        assert [p for p in problems if p.startswith(f"journal record {i} ")], (i, problems)


def test_a_running_agent_lists_its_unsealed_tail_and_its_month_is_not_verified(tmp_path, capsys):
    """Restarted within the hour, the agent reopens the rows its stop sealed provisionally (new results
    land in them): `evidence verify` lists them as not covered yet (exit 0: the recent past, which the agent
    seals once final), `--month` of this month exits 1 naming them, and after the next clean stop every
    row is sealed again, the reopening recorded in the chain."""
    state = tmp_path / "state"
    with thread_server(503, b"down") as target:
        port = free_port()
        cfg = _config(tmp_path / "agent.yaml", port, target)
        hours = []
        for run in range(2):
            proc = _run_daemon(cfg, state)
            try:
                _wait_down(port, proc, 4)
                if run == 1:
                    running = _sql(state / "ledger.db", "SELECT COUNT(*) FROM minutes WHERE link IS NULL")[0][0]
                    code, out, err = _verify(capsys, cfg, state)
                    month = "{:04d}-{:02d}".format(*Calendar(load_config(cfg).contract).month_of(time.time()))
                    month_code, _, month_err = _verify(capsys, cfg, state, "--month", month)
                _stop(proc)
            finally:
                if proc.poll() is None:
                    proc.kill()
            hours.append(_sql(state / "ledger.db", "SELECT MAX(hour) FROM minutes")[0][0])
    assert running >= 2  # the hour's rows, reopened by the second run's results (or a new hour's)
    assert code == 0, err
    assert "NOT COVERED YET:" in out and "minute rows" in out.split("NOT COVERED YET:")[1]
    assert "the recent rows listed above are NOT covered yet" in out and "NOT SEALED" not in err
    assert month_code == 1 and "NOT SEALED:" in month_err and "minute rows" in month_err
    code, out, err = _verify(capsys, cfg, state)
    assert code == 0 and "every row asked about is sealed" in out, err
    history = [v for (v,) in _sql(state / "ledger.db", "SELECT hash FROM seals WHERE key = ? ORDER BY seq",
                                  f"m:api:{hours[0]}")]
    assert history[0].startswith(chain.PROVISIONAL) or len(history) == 1  # sealed at the first stop
    if hours[0] == hours[1]:  # the second run wrote in the same hour (it did unless an hour began between)
        assert chain.REOPENED in history and len(history) >= 3


# -- the rules of a provisional seal, on a real ledger file with the agent's write path ------------------------
H0 = 1_795_000_000 // 3600 * 3600 + 7200  # an hour's start
HOUR = H0 // 3600


def _counts(value: int) -> bytes:
    return np.full((60, nfields((0.5,))), value, dtype=DTYPE).tobytes()


def _write(store: Store, value: int, now: float, seal_all: bool = False) -> int:
    return store.write([("api", HOUR, _counts(value), "")], [], {"api": "api"}, now=now, seal_all=seal_all)


def _append(store: Store, value: str, at: float) -> int:
    c = store.conn
    c.execute("BEGIN")
    seq = chain.append_link(c, [chain.Seal(f"m:api:{HOUR}", H0, value)], at)
    c.execute("COMMIT")
    return seq


def _stored_hash(store: Store) -> str:
    counts, errors = store.conn.execute("SELECT counts, errors FROM minutes WHERE hour = ?", (HOUR,)).fetchone()
    return chain.minute_hash("api", HOUR, counts, errors)


def test_a_row_sealed_at_a_stop_is_reopened_before_it_is_final_and_sealed_final_after(tmp_path):
    store = Store(tmp_path, thresholds=(0.5,))
    try:
        _write(store, 1, H0 + 600, seal_all=True)  # a clean stop ten minutes into the hour
        assert _write(store, 1, H0 + 660) == 0  # restarted: the same row as sealed is not written again
        assert _write(store, 2, H0 + 700) == 0  # a new result lands in the hour: reopened, written
        assert _write(store, 3, H0 + 3600 + store.seal_delay) == 0  # final: sealed final at this flush
        seals = [v for (v,) in store.conn.execute("SELECT hash FROM seals WHERE key = ? ORDER BY seq", (f"m:api:{HOUR}",))]
        assert seals[0].startswith(chain.PROVISIONAL) and seals[1] == chain.REOPENED and seals[2] == _stored_hash(store)
        assert store.verify(delay=store.seal_delay) == ([], {"links": 3, "minute rows": 1, "digests": 0,
                                                             "journal records": 0, "tickets and windows": 0})
        assert _write(store, 4, H0 + 3600 + store.seal_delay + 10) == 1  # a final row is never written again
        assert store.verify()[0] == []
    finally:
        store.close()


def test_a_final_row_is_sealed_final_even_when_the_agent_was_stopped_past_its_finality(tmp_path):
    """Stopped within the hour, started again a day later: the provisional seal is made final at the first
    flush, and the row is not reopened (a late result for it is refused)."""
    store = Store(tmp_path, thresholds=(0.5,))
    try:
        _write(store, 1, H0 + 600, seal_all=True)
        assert _write(store, 2, H0 + 86400) == 1
        assert [r[0] for r in store.conn.execute("SELECT hash FROM seals ORDER BY seq")][-1] == _stored_hash(store)
        assert store.conn.execute("SELECT provisional FROM minutes").fetchone() == (0,)
        assert store.verify()[0] == []
    finally:
        store.close()


@pytest.mark.parametrize("forgery, named", [
    # the row sealed final, then rewritten by someone who reopens it as the agent would and seals it again
    ("final-then-reopened", "(sealed final in link 2): reopened in link 3 (a final row never changes)"),
    # rewritten while the agent was stopped, without a reopening: the agent's next start seals it final
    ("edited-while-stopped", "(sealed at a stop in link 1): sealed again in link 2 with other content, though "
                             "never reopened"),
    # rewritten under its provisional seal
    ("edited-under-its-seal", "the stored counts differ from what was sealed"),
    # reopened as the agent would, but a day later, when the row was final, and sealed again
    ("reopened-once-final", "(sealed at a stop in link 1): reopened in link 2, 2026-11-19T13:00:00+00:00, after it "
                            "was final at 2026-11-18T14:15:00+00:00"),
])
def test_the_provisional_seal_is_no_loophole_to_rewrite_a_row(tmp_path, forgery, named):
    store = Store(tmp_path, thresholds=(0.5,))
    try:
        _write(store, 1, H0 + 600, seal_all=True)
        forged = zlib_counts(9)
        if forgery == "final-then-reopened":
            _write(store, 1, H0 + 86400)  # restarted a day later: sealed final (link 2)
            store.conn.execute("UPDATE minutes SET counts = ?, link = NULL WHERE hour = ?", (forged, HOUR))
            _append(store, chain.REOPENED, H0 + 86400 + 180)
            _append(store, chain.minute_hash("api", HOUR, forged, ""), H0 + 86400 + 240)
        elif forgery == "edited-while-stopped":
            store.conn.execute("UPDATE minutes SET counts = ? WHERE hour = ?", (forged, HOUR))
            _write(store, 1, H0 + 86400)  # the next start: final, sealed final as it is now
        elif forgery == "reopened-once-final":
            store.conn.execute("UPDATE minutes SET counts = ?, link = NULL, provisional = 0 WHERE hour = ?",
                               (forged, HOUR))
            _append(store, chain.REOPENED, H0 + 86400)
            _append(store, chain.minute_hash("api", HOUR, forged, ""), H0 + 86400 + 60)
        else:
            store.conn.execute("UPDATE minutes SET counts = ? WHERE hour = ?", (forged, HOUR))
        problems, _ = store.verify(delay=store.seal_delay)
        assert any("minute counts of api, hour from" in p and named in p for p in problems), problems
    finally:
        store.close()


def zlib_counts(value: int) -> bytes:
    return zlib.compress(_counts(value), 6)


def test_hour_digests_are_sealed_when_final_and_sealed_deleted_when_merged_into_their_day(tmp_path):
    """A running agent seals an hour's latency digest with its counts; the day's compaction deletes it (its
    samples go into the day's digest), which the chain records: a sealed digest missing is named, and one
    brought back after its removal too."""
    day = 1_795_132_800  # a UTC midnight
    ledger = Ledger((0.5,), day_start=lambda t: t // 86400 * 86400)
    ledger.anchor(day)
    store = Store(tmp_path, thresholds=(0.5,))
    now = [float(day)]
    flusher = Flusher(store, clock=lambda: now[0])

    async def run() -> None:
        for k in range(48):
            now[0] = day + 1800 * k
            ledger.add(ProbeResult("api", "api", now[0], 0.0, 0.1, "up", latency_counted=True))
            await flusher.flush(ledger, ledger.compact(now[0]))
        now[0] = day + 86400 + 7200
        await flusher.flush(ledger, ledger.compact(now[0]))

    asyncio.run(run())
    try:
        deleted = store.conn.execute("SELECT COUNT(*) FROM seals WHERE key LIKE 'd:api:%:3600' AND hash = ?",
                                     (chain.DELETED,)).fetchone()[0]
        assert deleted == 23  # the day's last hour was merged before it was final: never sealed
        assert store.conn.execute("SELECT COUNT(*) FROM digests WHERE span = 3600 AND start < ?",
                                  (day + 86400,)).fetchone()[0] == 0
        assert store.verify()[0] == []
        store.conn.execute("INSERT INTO digests (target_id, start, span, data, link) VALUES (1, ?, 3600, x'00', 1)",
                           (day + 3600,))  # a removed hour digest brought back
        assert any("latency digest of api, 1 h from" in p and "present again" in p for p in store.verify()[0])
        store.conn.execute("DELETE FROM digests WHERE start = ? AND span = 3600", (day + 3600,))
        store.conn.execute("DELETE FROM digests WHERE span = 86400")  # the day's, sealed final
        assert any("latency digest of api, 24 h from" in p and "missing" in p for p in store.verify()[0])
    finally:
        store.close()


# -- what `evidence verify` says of rows outside the chain -------------------------------------------------
CFG = """
contract: {timezone: UTC}
targets:
  - {name: api, service: api, url: "http://127.0.0.1:9/", interval: 30s, timeout: 5s}
"""


ROW = np.ones((60, nfields((0.5, 1.0))), dtype=DTYPE).tobytes()


def _killed_agent(state: Path) -> None:
    """A ledger as an agent killed mid-hour left it: rows of this hour written, none sealed."""
    now = time.time()
    store = Store(state, thresholds=(0.5, 1.0))
    try:
        store.write([("api", int(now // 3600) - 1, ROW, "")], [], {"api": "api"},
                    now=now - 3600)
    finally:
        store.close()


def test_a_check_that_checked_nothing_does_not_read_as_success(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CFG)
    Store(tmp_path / "state", thresholds=(0.5, 1.0)).close()
    code, out, err = _verify(capsys, cfg, tmp_path / "state")
    assert code == 1 and "NOTHING VERIFIED" in err and "verified:" not in out


def test_rows_a_killed_agent_left_unsealed_fail_the_check_until_sealed(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CFG)
    state = tmp_path / "state"
    _killed_agent(state)
    code, out, err = _verify(capsys, cfg, state)
    assert code == 1 and "NOT SEALED: 1 minute rows" in err and "evidence seal" in err
    lock = StateLock(state)
    lock.acquire()  # as the agent does while it runs: the seal is refused, the rows are the agent's to seal
    try:
        assert main(["evidence", "seal", "--config", str(cfg), "--state-dir", str(state)]) == 1
        assert "seals its rows itself" in capsys.readouterr().err
    finally:
        lock.release()
    assert main(["evidence", "seal", "--config", str(cfg), "--state-dir", str(state)]) == 0
    assert "sealed now: 1 minute rows" in capsys.readouterr().out
    code, out, err = _verify(capsys, cfg, state)
    assert code == 0 and "every row asked about is sealed" in out, err


def _closed_month_state(tmp_path: Path) -> tuple[Path, Path, str]:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CFG)
    state = tmp_path / "state"
    start = dt.datetime(2026, 1, 31, 22, 0, tzinfo=dt.timezone.utc).timestamp()
    store = Store(state, thresholds=(0.5, 1.0))
    try:
        store.write([("api", int(start // 3600) - 1, ROW, "")], [], {}, now=start + 7200)  # sealed: final
        store.write([("api", int(start // 3600) + 1, ROW, "")], [], {},
                    now=start + 7200)  # the month's last hour, written by an agent killed then
    finally:
        store.close()
    return cfg, state, "2026-01"


def test_a_closed_month_s_bundle_is_made_from_sealed_rows_only(tmp_path, capsys):
    """`evidence export` and `report` of a closed month whose last hour is not sealed: with the agent running
    they stop, naming the rows (exit 1), or with --allow-unsealed the export makes a bundle whose check names
    them; on a stopped agent's state directory they seal them first. Both used to go on with exit 0 (the
    bundle's check too)."""
    cfg, state, month = _closed_month_state(tmp_path)
    lock = StateLock(state)
    lock.acquire()  # the agent runs
    try:
        out = tmp_path / "b.tar.gz"
        assert main(["evidence", "export", "--config", str(cfg), "--state-dir", str(state), "--month", month,
                     "-o", str(out)]) == 1
        err = capsys.readouterr().err
        assert "NOT SEALED: 1 minute rows, 2026-01-31T23:00:00+00:00 to 2026-02-01T00:00:00+00:00" in err
        assert "--allow-unsealed" in err and not out.exists()
        assert main(["evidence", "export", "--config", str(cfg), "--state-dir", str(state), "--month", month,
                     "-o", str(out), "--allow-unsealed"]) == 0
        capsys.readouterr()
        assert main(["evidence", "verify", str(out), "--allow-unsigned"]) == 1
        err = capsys.readouterr().err
        assert "1 minute rows, 2026-01-31T23:00:00+00:00 to 2026-02-01T00:00:00+00:00: not sealed" in err
        assert main(["report", "--config", str(cfg), "--state-dir", str(state), "--month", month,
                     "--format", "json"]) == 1
        err = capsys.readouterr().err
        assert "NOT SEALED: 1 minute rows" in err and "2026-01 is closed, and its report is made from rows sealed" in err
        assert _verify(capsys, cfg, state, "--month", month)[0] == 1
    finally:
        lock.release()
    sealed = tmp_path / "sealed.tar.gz"
    assert main(["evidence", "export", "--config", str(cfg), "--state-dir", str(state), "--month", month,
                 "-o", str(sealed)]) == 0
    capsys.readouterr()
    assert main(["evidence", "verify", str(sealed), "--allow-unsigned"]) == 0, capsys.readouterr().err
    with tarfile.open(sealed) as tar:
        assert any(m.name.endswith("ledger.db") for m in tar)
    assert _verify(capsys, cfg, state, "--month", month)[0] == 0
    assert main(["report", "--config", str(cfg), "--state-dir", str(state), "--month", month,
                 "--format", "json"]) == 0
