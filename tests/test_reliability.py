"""Disk full and wall-clock jumps: probing goes on, nothing stored is lost, figures stay consistent, and
a minute once sealed never changes."""
from __future__ import annotations

import asyncio
import itertools
import os
import re
import sqlite3
import subprocess
import tracemalloc
import zlib

import numpy as np
import pytest
from aiohttp import ClientSession, web

from agent.app import Agent
from agent.calendar import Calendar
from agent.cli import main
from agent.clock import GRACE, SteadyClock, SystemClock
from agent.config import load_config, parse_config
from agent.config.model import Contract, Target
from agent.ledger import DTYPE, Ledger
from agent.ledger.journal import Journal
from agent.probes.http import HttpOptions
from agent.probes import Detail, ProbeResult, make_probe
from agent.scheduler import Scheduler
from agent.slo import evaluate, seal_delay_of
from agent.store import Flusher, Store

from .conftest import FakeClock
from .servers import http_server
from .test_evidence import T0, ManualClock
from .test_persistence import stored_total

DAY = 86400


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs for the disk-full test (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path) -> None:
    """Writes until the file system is full (unbuffered: nothing is left to fail at close)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)


async def until(predicate, what: str, limit: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_disk_full_probing_continues_and_writes_resume(small_fs):
    async def ok(request):
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_get("/", ok)
    async with http_server(app) as base:
        cfg = parse_config(f'agent: {{listen: "127.0.0.1:0", flush_interval: 200ms}}\ntargets:\n'
                           f'  - {{name: a, service: web, url: "{base}/", interval: 50ms, timeout: 40ms, max_in_flight: 2}}\n'
                           f'  - {{name: b, service: api, url: "{base}/", interval: 50ms, timeout: 1500ms, max_in_flight: 31}}\n')
        state = small_fs / "state"
        agent = Agent(cfg, state_dir=str(state))
        await agent.start()
        flushes = lambda: agent.metrics.flushes._value.get()  # noqa: E731
        errors = lambda: agent.metrics.write_errors._value.get()  # noqa: E731
        await until(lambda: flushes() >= 2, "first flushes")
        stored_before = stored_total(state)
        fill(small_fs / "filler")
        seen_at_full = agent.results_seen
        await until(lambda: errors() >= 3, "write errors while the disk is full")
        await until(lambda: agent.results_seen > seen_at_full + 50, "probing to go on while writes fail")
        assert errors() >= 3
        assert agent.status()["state"]["write_failing"] is True
        os.remove(small_fs / "filler")
        ok_flushes = flushes()
        await until(lambda: flushes() > ok_flushes + 1, "writes resuming")
        assert agent.status()["state"]["write_failing"] is False
        await agent.stop()
    assert stored_total(state) >= stored_before
    assert stored_total(state) == agent.results_seen  # nothing lost: what failed to write was kept and rewritten


BODY = ("maintenance in progress; " + "x" * 65536).encode()[:65536]  # one body: stored once, held per record


def _held_bodies(agent: Agent) -> int:
    """Bytes of bodies and files held in memory for the journal: waiting in the journal, or in what a failed
    write left (counted here, not by the agent's own figure)."""
    records = agent.journal.pending + agent.flusher._pending.records
    return sum(len(r.detail.body) + sum(len(a) for _, a in r.detail.artifacts) for r in records if r.detail)


async def _readyz(agent: Agent) -> tuple[int, str]:
    async with ClientSession() as s, s.get(agent.server.url + "/readyz") as resp:
        return resp.status, await resp.text()


async def test_disk_full_bounds_what_the_journal_holds_and_the_agent_is_not_ready(small_fs, caplog):
    """With 64 KiB bodies and the disk full, what waited for the disk grew without bound (RSS 139 -> 215 MB
    in 40 s) and /readyz said ready. Now the journal's records are held up to a bound (bodies dropped
    first, then whole records, counted and said once), /readyz is 503 while writes fail and 200 after, and
    the counts written when the disk comes back are exact."""
    async def down(request):
        return web.Response(status=503, body=BODY)
    app = web.Application()
    app.router.add_get("/", down)
    bound = 4 << 20  # above what two flushes apart carry while the disk is fine
    async with http_server(app) as base:
        targets = "".join(f'  - {{name: {n}, service: api, url: "{base}/", interval: 50ms, timeout: 2s}}\n'
                          for n in "ab")
        cfg = parse_config(f'agent: {{listen: "127.0.0.1:0", flush_interval: 300s}}\n'
                           f'evidence: {{body_bytes: 65536, failures_per_minute: 10000}}\ntargets:\n{targets}')
        state = small_fs / "state"
        agent = Agent(cfg, state_dir=str(state))
        agent.journal.held_bound = bound
        await agent.start()
        try:
            await until(lambda: agent.results_seen >= 10, "the first results")
            assert await agent.flush() and (await _readyz(agent))[0] == 200
            fill(small_fs / "filler")
            full = agent.results_seen
            while agent.results_seen < full + 300:  # 64 bodies fill the bound, then ~75 records without them
                seen = agent.results_seen
                assert not await agent.flush()  # the disk is full
                assert _held_bodies(agent) <= bound
                await until(lambda: agent.results_seen >= seen + 20, "probing to go on")
            assert agent.journal.held <= bound
            status, text = await _readyz(agent)
            assert status == 503 and "the ledger cannot be written" in text, text
            assert not await agent.flush()  # the metrics follow at each flush
            j, m = agent.journal, agent.metrics
            assert j.bodies_dropped > 0 and j.records_dropped > 0
            assert m.journal_dropped.labels("body")._value.get() == j.bodies_dropped
            assert m.journal_dropped.labels("record")._value.get() == j.records_dropped
            os.remove(small_fs / "filler")
            assert await agent.flush()
            status, text = await _readyz(agent)
            assert (status, text.strip()) == (200, "ready")
            await agent.scheduler.stop(5)
            assert await agent.flush()
        finally:
            await agent.stop()
    assert stored_total(state) == agent.results_seen  # every count, from before, during and after the full disk
    conn = sqlite3.connect(state / "ledger.db")
    try:
        kept, bodiless = conn.execute("SELECT COUNT(*), COUNT(*) - COUNT(body_id) FROM journal "
                                      "WHERE outcome != 'path'").fetchone()
        paths = conn.execute("SELECT COUNT(*) FROM journal WHERE outcome = 'path'").fetchone()[0]
    finally:
        conn.close()
    # the journal also held the paths traced to the failing targets, within the same bound
    assert kept + paths == agent.results_seen + agent.paths.traced - j.records_dropped
    assert bodiless == j.bodies_dropped
    said = [r.getMessage() for r in caplog.records if "journal records waiting to be written" in r.getMessage()]
    assert len(said) == 1 and "while the ledger cannot be written passed 4 MiB" in said[0], said


def test_the_journal_bound_covers_the_last_failures_of_minutes_it_holds():
    """Beyond failures_per_minute, each minute's latest failure waits, body and files included, until no
    result can land in the minute any more (the longest probe after it ends: 20 minutes for a long
    transaction). Those were outside the bound: 100 failing targets held 12.5 MiB beyond a 1 MiB one,
    without bound in the number of targets and minutes. Every failure is still kept or counted once."""
    bound = 1 << 20
    journal = Journal(per_minute=1, settle=1200.0, held_bound=bound)
    n = 0
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for minute, t, k in itertools.product(range(2), range(100), range(2)):
            body = os.urandom(65536)  # each its own: what the journal keeps of it stays allocated
            journal(ProbeResult(f"t{t}", "api", T0 + 60 * minute + k, 0.0, 0.1, "down", "http_status", status=503,
                                detail=Detail("127.0.0.1:1", body=body, body_bytes=65536)), False)
            n += 1
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held <= bound + (256 << 10), held  # the records without their bodies, a few hundred bytes each
    assert journal.held <= bound
    kept = journal.take()
    assert len(kept) + journal.dropped + journal.records_dropped == n
    assert journal.held == sum(r.size() for r in kept) <= bound


class JumpProbe:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.durations = itertools.cycle([0.05, 0.2, 0.7, 1.5])

    async def run(self) -> ProbeResult:
        wall, start = self.clock.time(), self.clock.monotonic()
        d = next(self.durations)
        await self.clock.sleep_until(start + d)
        return ProbeResult("api", "api", wall, start, self.clock.monotonic() - start, "up", latency_counted=True)

    async def close(self) -> None:
        pass


async def test_wall_clock_jumps_back_an_hour_and_forward_a_day(tmp_path):
    """Results are placed on the agent's clock: stepped back an hour, it goes on from where it was (the
    hour before is never written into again); stepped forward a day, it follows."""
    t0 = 1_795_507_200.0  # 2026-11-24T06:00:00+01:00, a Tuesday (no maintenance)
    clock = FakeClock(wall=t0)
    cfg = parse_config('targets: [{name: api, service: api, url: "http://127.0.0.1:9/", interval: 1s, timeout: 2s, '
                       'max_in_flight: 3}]')
    agent = Agent(cfg, state_dir=str(tmp_path), clock=clock)
    agent.ledger.anchor(t0)
    seen: list[ProbeResult] = []
    agent.listeners.append(seen.append)
    sched = Scheduler(agent.clock, agent.on_result, rate_limit=1_000_000)  # as the agent's own scheduler
    sched.set_targets([(cfg.targets[0], JumpProbe(agent.clock))])
    start = clock.monotonic()
    sched.start()
    await clock.advance_to(start + 600)
    clock.wall_offset -= 3600  # NTP steps the clock back an hour
    await clock.advance_to(start + 1200)
    clock.wall_offset += 86400 + 3600  # and then a day forward
    await clock.advance_to(start + 1800)
    await sched.stop(grace=5)
    durations = [r.duration_s for r in seen if r.outcome == "up"]
    assert durations and min(durations) >= 0.05 - 1e-9 and max(durations) <= 1.5 + 1e-9  # never negative or huge
    assert min(r.started_at for r in seen) >= t0  # nothing went back into the hour before
    for a, b in [(t0, t0 + 1200), (t0 + 1200 + 86400, t0 + 1800 + 86400)]:  # the step back is not followed
        assert sum(1 for r in seen if a - 1 <= r.started_at < b + 1) >= (b - a) - 10
    assert agent.metrics.clock_steps._value.get() == 1
    minutes = {int(r.started_at // 60) for r in seen}
    m0, m1 = min(minutes), max(minutes) + 1
    assert int(agent.ledger.matrix("api", m0, m1)[:, 0].sum(dtype="int64")) == len(seen)
    snap = evaluate(agent.ledger, cfg, agent.cal, clock.time() + 120)
    month = snap.of("availability", "api")["month"]
    assert month.up == len(minutes) and month.down == 0 and month.ratio == 1.0


def test_the_agents_clock_never_goes_back_and_follows_forward():
    base = FakeClock(wall=1_795_507_200.0)
    steps: list[int] = []
    clock = SteadyClock(base, on_step=lambda: steps.append(1))
    t = clock.time()
    base.wall_offset -= 0.05  # jitter back: held at the mark, not a step
    assert clock.time() == t and not steps
    base.mono += 1.0
    assert clock.time() == base.time()  # caught up: follows the system clock again
    t = clock.time()
    base.wall_offset -= 3600  # a step back: counted, and on from the mark at the monotonic clock's pace
    assert clock.time() == t and steps == [1] and clock.ahead == 3600
    base.mono += 5.0
    assert clock.time() == t + 5 and clock.ahead == 3600
    base.wall_offset += 7200  # a step forward, past the mark: followed
    assert clock.time() == base.time() == t + 5 + 3600 and clock.ahead == 0 and steps == [1]


def test_a_clock_that_ran_ahead_and_was_set_right_is_met():
    """A system clock that ran ten hours ahead (a hardware clock kept in local time) and was then set right
    left the agent's clock ten hours ahead for good: every result filed ten hours off, maintenance windows
    and month ends misplaced. It runs at the monotonic pace for GRACE (a clock set back by mistake is set
    right in that time, and no minute holds more than a minute of probes), then at half pace: met after
    GRACE + 2 x 10 h, and never going back meanwhile."""
    base = FakeClock(wall=1_795_507_200.0)
    clock = SteadyClock(base)
    clock.time()
    base.wall_offset -= 36000
    readings, ahead = [clock.time()], []
    for _ in range(int((GRACE + 2 * 36000) // 600)):
        base.mono += 600.0
        readings.append(clock.time())
        ahead.append(clock.ahead)
    grace = int(GRACE // 600)
    assert ahead[:grace] == [36000] * grace  # the grace: still at the monotonic pace
    assert ahead[grace:grace + 3] == [35700, 35400, 35100]  # then at half of it
    assert readings == sorted(readings)
    assert ahead[-2] > 0 and ahead[-1] == 0 and readings[-1] == base.time()  # met at the last step


def _hour(state, hour: int) -> tuple[list[int], bool]:
    """The stored results of each minute of an hour of target `api`, and whether the row is sealed."""
    conn = sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True)
    try:
        blob, link = conn.execute("SELECT counts, link FROM minutes WHERE hour=?", (hour,)).fetchone()
    finally:
        conn.close()
    counts = np.frombuffer(zlib.decompress(blob), dtype=DTYPE).reshape(60, -1)[:, :3].sum(axis=1)
    return counts.tolist(), link is not None


async def _play(agent: Agent, clock: ManualClock, walls) -> list[ProbeResult]:
    """The agent's own probe (on the agent's clock) at each of these readings of the system clock."""
    probe = agent.scheduler.timelines["api"].probe
    out = []
    for wall in walls:
        clock.wall = wall
        out.append(await probe.run())
        agent.on_result(out[-1])
    return out


def _ok_app() -> web.Application:
    async def ok(request):
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_get("/", ok)
    return app


async def test_a_clock_stepped_back_a_day_never_reopens_sealed_minutes(tmp_path, caplog, capsys):
    """Stepped back a day, the system clock used to file new probes into yesterday's sealed minutes (6 -> 12
    probes in a minute) and `evidence verify` called it a normal rewrite. Then the agent restarts with the
    clock still a day behind what the ledger holds."""
    caplog.set_level("INFO", logger="sla_agent")
    clock, state, hour = ManualClock(T0), tmp_path / "state", int(T0 // 3600)
    async with http_server(_ok_app()) as base:
        cfg_path = tmp_path / "cfg.yaml"
        cfg_path.write_text(f'agent: {{listen: "127.0.0.1:0"}}\ntargets:\n'
                            f'  - {{name: api, service: api, url: "{base}/", interval: 10s, timeout: 2s}}\n')
        agent = Agent(load_config(cfg_path), state_dir=str(state), clock=clock)
        await agent.start()
        await agent.scheduler.stop(0)  # the test plays the ticks
        await _play(agent, clock, [T0 + 10 * k for k in range(360)])  # yesterday 10:00-11:00, 6 probes a minute
        await _play(agent, clock, [T0 + DAY + 10 * k for k in range(30)])  # a day later: a step forward is followed
        assert await agent.flush()
        assert _hour(state, hour) == ([6] * 60, True)  # yesterday's hour is sealed
        stepped = await _play(agent, clock, [T0 + 300 + 10 * k for k in range(30)])  # back a day, and on from there
        await agent.stop()
        assert _hour(state, hour) == ([6] * 60, True)  # the sealed minutes are as they were
        assert agent.metrics.clock_steps._value.get() == 1
        assert agent.metrics.refused.labels("result")._value.get() == 0  # nothing reached a sealed minute
        lines = [r.getMessage() for r in caplog.records if "stepped back" in r.getMessage()]
        assert len(lines) == 1 and "the system clock stepped back 86390.000 s (0 d 23:59:50)" in lines[0], lines
        last = T0 + DAY + 290
        assert all(last <= r.started_at < last + 60 for r in stepped)  # on from the latest instant, never below

        clock.wall = T0 + 900  # restarted with the system clock still a day behind the ledger
        agent = Agent(load_config(cfg_path), state_dir=str(state), clock=clock)
        await agent.start()
        await agent.scheduler.stop(0)
        again = await _play(agent, clock, [T0 + 900 + 10 * k for k in range(12)])
        await agent.stop()
    assert agent.metrics.clock_steps._value.get() == 1
    behind = re.search(r"the system clock is ([0-9.]+) s \(.*\) behind the latest instant the ledger holds",
                       caplog.text)
    assert behind and DAY - 610 <= float(behind.group(1)) < DAY - 540, caplog.text
    assert min(r.started_at for r in again) >= max(r.started_at for r in stepped)
    assert _hour(state, hour) == ([6] * 60, True)  # the sealed minutes are as they were
    assert stored_total(state) == 360 + 30 + 30 + 12  # and every probe is counted, after them
    capsys.readouterr()
    assert main(["evidence", "verify", "--config", str(cfg_path), "--state-dir", str(state)]) == 0
    out = capsys.readouterr()
    assert "verified" in out.out and "MISMATCH" not in out.err


def _result(at: float, outcome: str = "up") -> ProbeResult:
    return ProbeResult("api", "api", at, 0.0, 0.1, outcome, "" if outcome == "up" else "http_status",
                       latency_counted=True)


async def test_a_result_or_a_row_for_a_sealed_minute_is_refused_and_counted(tmp_path, caplog):
    """Defence in depth, should anything hand them a time behind the agent's clock: the ledger refuses
    a result for a sealed minute and the store a row written over its seal; both are counted and said."""
    cal = Calendar(Contract())
    ledger = Ledger((0.5, 1.0), day_start=cal.day_start)
    ledger.anchor(T0)
    store = Store(tmp_path, thresholds=(0.5, 1.0))
    flusher = Flusher(store, clock=lambda: T0 + DAY)
    for k in range(60):
        ledger.add(_result(T0 + 60 * k))
    await flusher.flush(ledger)  # a day later: the hour is sealed
    hour = int(T0 // 3600)
    assert _hour(tmp_path, hour) == ([1] * 60, True)
    ledger.add(_result(T0 + 30, "down"))  # a result time-stamped in the sealed hour
    await flusher.flush(ledger)
    assert _hour(tmp_path, hour) == ([1] * 60, True)
    assert ledger.refused_final == 1
    assert "1 probe results refused: their minute was sealed already" in caplog.text
    blob, errors = ledger.hour_blob("api", hour)
    counts = np.frombuffer(blob, dtype=DTYPE).reshape(60, -1).copy()
    counts[0, 1] += 1  # as if the ledger had taken it
    assert store.write([("api", hour, counts.tobytes(), errors)], [], {"api": "api"}, now=T0 + DAY) == 1
    assert "1 rows of minute counts or digests were not written: their rows are sealed already" in caplog.text
    assert _hour(tmp_path, hour) == ([1] * 60, True)
    assert store.verify() == ([], {"links": 1, "minute rows": 1, "digests": 1, "journal records": 0,
                                   "tickets and windows": 0})  # the hour's digest is sealed with its counts
    store.close()


LONG_FLOW = """
agent: {flush_interval: 10s}
targets:
  - name: api
    service: api
    interval: 20m
    timeout: 5m
    steps:
""" + "".join(f"      - {{name: s{i}, url: 'http://127.0.0.1:9/{i}'}}\n" for i in range(4))


async def test_the_seal_waits_for_the_longest_probe(tmp_path):
    """A transaction of four steps of five minutes each files its result up to 20 minutes after it
    started: sealing an hour a quarter of an hour after it ends refused the slowest results of its last
    minutes, in the vendor's favour. The seal now waits for the longest probe."""
    cfg = parse_config(LONG_FLOW)
    delay = seal_delay_of(cfg)
    assert delay == 4 * 300 + 10 + 60
    cal = Calendar(Contract())
    ledger = Ledger((0.5, 1.0), day_start=cal.day_start)
    ledger.anchor(T0)
    store = Store(tmp_path, thresholds=(0.5, 1.0))
    store.seal_delay = delay
    now = [T0 + 3600 + 20 * 60]  # 20 minutes after the hour from T0 ends
    flusher = Flusher(store, clock=lambda: now[0])
    for k in range(59):
        ledger.add(_result(T0 + 60 * k))
    await flusher.flush(ledger)
    ledger.add(_result(T0 + 3599, "down"))  # started a second before the hour ended, answered now
    await flusher.flush(ledger)
    hour = int(T0 // 3600)
    assert ledger.refused_final == 0
    assert _hour(tmp_path, hour) == ([1] * 60, False)
    now[0] = T0 + 3600 + delay
    await flusher.flush(ledger)
    assert _hour(tmp_path, hour) == ([1] * 60, True)
    store.close()


async def test_http_probe_duration_ignores_the_wall_clock():
    class Jumpy(SystemClock):
        n = 0

        def time(self) -> float:  # a wall clock that jumps a day on every read
            self.n += 1
            return 1_795_000_000.0 + 86400 * self.n * (-1) ** self.n

    async def slow(request):
        await asyncio.sleep(0.05)
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_get("/", slow)
    async with http_server(app) as base:
        p = make_probe(Target(name="t", service="web", options=HttpOptions(base + "/"), timeout=2, interval=2),
                       clock=Jumpy())
        try:
            r = await p.run()
        finally:
            await p.close()
    assert r.outcome == "up" and 0.05 <= r.duration_s < 1.0
