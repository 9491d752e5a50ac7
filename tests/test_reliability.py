"""Disk full and wall-clock jumps: probing goes on, nothing stored is lost, figures stay consistent."""
from __future__ import annotations

import asyncio
import itertools
import os
import subprocess

import pytest
from aiohttp import web

from agent.app import Agent
from agent.clock import SystemClock
from agent.config import parse_config
from agent.config.model import Target
from agent.probes.http import HttpOptions
from agent.probes import ProbeResult, make_probe
from agent.scheduler import Scheduler
from agent.slo import evaluate

from .conftest import FakeClock
from .servers import http_server
from .test_persistence import stored_total


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
    t0 = 1_795_507_200.0  # 2026-11-24T06:00:00+01:00, a Tuesday (no maintenance)
    clock = FakeClock(wall=t0)
    cfg = parse_config('targets: [{name: api, service: api, url: "http://127.0.0.1:9/", interval: 1s, timeout: 2s, '
                       'max_in_flight: 3}]')
    agent = Agent(cfg, state_dir=str(tmp_path), clock=clock)
    agent.ledger.anchor(t0)
    seen: list[ProbeResult] = []
    agent.listeners.append(seen.append)
    sched = Scheduler(clock, agent.on_result, rate_limit=1_000_000)
    sched.set_targets([(cfg.targets[0], JumpProbe(clock))])
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
    minutes = {int(r.started_at // 60) for r in seen}
    segments = [(t0, t0 + 600), (t0 + 600 - 3600, t0 + 1200 - 3600), (t0 + 1200 + 86400, t0 + 1800 + 86400)]
    for a, b in segments:  # every sample lands in the minute of its own wall time
        assert sum(1 for r in seen if a - 1 <= r.started_at < b + 1) >= 590
    m0, m1 = min(minutes), max(minutes) + 1
    assert int(agent.ledger.matrix("api", m0, m1)[:, 0].sum(dtype="int64")) == len(seen)
    snap = evaluate(agent.ledger, cfg, agent.cal, clock.time() + 120)
    month = snap.of("availability", "api")["month"]
    assert month.up == len(minutes) and month.down == 0 and month.ratio == 1.0


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
