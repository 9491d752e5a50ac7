"""Ledger benchmark: ingest rate, 7-day evaluation, /metrics render and scrape with 100 targets, state
size per target-year at 1 probe/s, restore time for 20 targets x 400 days. Prints the figures and the
targets.

The /metrics render (the text, server side, median of 15) is measured three ways: with nothing changed
since the render before; after 20 results (as many as 100 targets every 5 s give in a second); after a
result of every target (a Prometheus that scrapes less often than the targets are probed). The scrape
over HTTP renders for each scrape (the reuse of a recent render is turned off) and gzips, as
Prometheus asks.

With --root PATH (repeatable) each tree is measured in its own process, one after the other, with the
same bench code: before and after a change (a worktree: git worktree add ../before <commit>).

    python bench/ledger.py [--quick] [--root ../before --root .]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fastdigest import TDigest

from _trees import in_tree, roots, worker_tree  # noqa: E402

sys.path.insert(0, worker_tree(sys.argv))

from agent.calendar import Calendar  # noqa: E402
from agent.config import parse_config  # noqa: E402
from agent.config.model import Contract  # noqa: E402
import agent.ledger  # noqa: E402
from agent.ledger import DAY, HOUR, Ledger  # noqa: E402
from agent.probes import ProbeResult  # noqa: E402
from agent.slo import evaluate, latency  # noqa: E402
from agent.store import Store  # noqa: E402

NOW = 1_795_000_000.0 - (1_795_000_000.0 % 3600)
SIZE = getattr(agent.ledger, "CENTROIDS", 1000)  # the centroids the measured tree's sketches keep


ROWS: list[list] = []


def line(name: str, value: str, target: str, ok: bool) -> None:
    ROWS.append([name, value, target, ok])
    show(name, value, target, ok)


def show(name: str, value: str, target: str, ok: bool) -> None:
    print(f"{name:<60} {value:>12}   target {target:<12} {'OK' if ok else 'MISSED'}", flush=True)


def bench_ingest(n: int) -> float:
    """20 targets at 1 probe/s each: the results of the last n / 20 seconds, in the order they land."""
    c = Calendar(Contract())
    led = Ledger((0.5, 1.0), day_start=c.day_start)
    led.anchor(NOW)
    rng = np.random.default_rng(1)
    durations = rng.lognormal(np.log(0.12), 0.45, n).tolist()
    results = [ProbeResult(f"t{i % 20}", "api", NOW - (n - i) / 20, 0.0, d, "up" if i % 97 else "down",
                           "" if i % 97 else "http_status", latency_counted=True) for i, d in enumerate(durations)]
    t0 = time.perf_counter()
    for r in results:
        led.add(r)
    return n / (time.perf_counter() - t0)


def week_ledger(targets: int, c: Calendar) -> Ledger:
    """A ledger holding 33 days at 1 probe/s per target, filled through the real add() path for the
    last 7 days and directly (same layout) before."""
    led = Ledger((0.5, 1.0), day_start=c.day_start)
    led.anchor(NOW)
    rng = np.random.default_rng(2)
    for t in range(targets):
        s = led.ensure(f"t{t:03d}", "api")
        hour = np.zeros((60, led.nf), dtype=np.uint16)
        hour[:, 0], hour[:, 3], hour[:, 4], hour[:, 5] = 60, 60, 59, 60
        for h in range((led.capacity - 1440) // 60):  # as a restore writes them
            led.load_hour(s.name, s.service, s.base // 60 + h, hour, {})
        for h in range(int(NOW // HOUR) - 7 * 24, int(NOW // HOUR)):
            s.hour_digests[h] = TDigest.from_values(rng.lognormal(np.log(0.12), 0.45, 3600).tolist(),
                                                    max_centroids=SIZE)
    return led


def bench_eval(c: Calendar) -> float:
    led = week_ledger(1, c)
    contract = Contract()
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        latency(led, ["t000"], c, contract, NOW - 7 * 86400, NOW, NOW)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _median(times: list[float]) -> float:
    return sorted(times)[len(times) // 2]


async def _renders(agent, results: list) -> dict[str, float]:
    """Server-side renders of the text: nothing changed, after 20 results, after one of every target."""
    from agent.export.exposition import generate

    out = {}
    for label, n in (("nothing changed", 0), ("after 20 results", 20), ("after a result of every target", len(results))):
        times = []
        for i in range(15):
            for r in results[:n]:
                agent.on_result(r)
            t0 = time.perf_counter()
            generate(agent.registry)
            times.append(time.perf_counter() - t0)
        out[label] = _median(times)
    return out


async def _scrapes(agent, results: list) -> tuple[float, int]:
    """GET /metrics, gzip'd, 15 times, each after 20 results and rendered for itself."""
    import aiohttp

    from agent.export import server

    server.REUSE_MAX = 0.0  # every scrape renders: what one costs, not what sharing a render saves
    times = []
    async with aiohttp.ClientSession() as s:
        for i in range(15):
            for r in results[:20]:
                agent.on_result(r)
            t0 = time.perf_counter()
            async with s.get(agent.server.url + "/metrics") as resp:
                body = await resp.read()
            times.append(time.perf_counter() - t0)
    return _median(times), len(body)


def bench_scrape(targets: int) -> tuple[dict[str, float], float, int]:
    from agent.app import Agent

    body = "\n".join(f'  - {{name: t{t:03d}, service: {"api" if t % 2 else "web"}, url: "https://127.0.0.1:9/", '
                     f'interval: 5s, timeout: 2s}}' for t in range(targets))
    cfg = parse_config(f'agent: {{listen: "127.0.0.1:0"}}\ntargets:\n{body}\n')
    state = tempfile.mkdtemp()

    async def run() -> tuple[dict[str, float], float, int]:
        agent = Agent(cfg, state_dir=state)
        agent.ledger = week_ledger(targets, agent.cal)
        await agent.start()
        await agent.scheduler.stop(0)
        results = [ProbeResult(t.name, t.service, NOW, 0.0, 0.1, "up", status=200,
                               phases=(0.0, 0.001, 0.0, 0.098, 0.001), latency_counted=True) for t in cfg.targets]
        for r in results:  # every series present: 1 probe of each target
            agent.on_result(r)
        while agent.snapshot is None:  # the agent's own first (cold) evaluation: let it finish
            await asyncio.sleep(0.05)
        from agent.daemon import tune_gc

        tune_gc()  # as the daemon does
        agent.snapshot = await asyncio.to_thread(evaluate, agent.ledger, cfg, agent.cal, NOW)
        for task in agent._tasks:  # its flushes and evaluations in threads would take the GIL at random
            task.cancel()
        await asyncio.gather(*agent._tasks, return_exceptions=True)
        await agent.flush()  # waits for a write in flight
        renders = await _renders(agent, results)
        http, size = await _scrapes(agent, results)
        await agent.stop()
        return renders, http, size

    try:
        return asyncio.run(run())
    finally:
        shutil.rmtree(state, ignore_errors=True)


def fill_store(store: Store, targets: int, days: int, c: Calendar, rng: np.random.Generator,
               skip: tuple[float, float] = (0.0, 0.0)) -> None:
    """Writes `days` of 1 probe/s per target as the agent does: minute rows per hour, a digest per day
    (hourly digests for the last 9 days). The minute rows of the hours starting in `skip` are left out:
    the caller writes them with their journal, from the same probes."""
    nf = 6
    first_hour = int(NOW // HOUR) - days * 24
    digest_cache = [TDigest.from_values(rng.lognormal(np.log(0.12), 0.45, 86400).tolist(),
                                        max_centroids=SIZE).to_bytes() for _ in range(8)]
    hour_cache = [TDigest.from_values(rng.lognormal(np.log(0.12), 0.45, 3600).tolist(),
                                      max_centroids=SIZE).to_bytes() for _ in range(8)]
    services = {f"t{t:03d}": "api" for t in range(targets)}
    for t in range(targets):
        name = f"t{t:03d}"
        hours = []
        for h in range(first_hour, int(NOW // HOUR)):
            arr = np.zeros((60, nf), dtype=np.uint16)
            arr[:, 0] = 60
            arr[:, 3] = 60
            arr[:, 4] = 60 - (rng.random(60) < 0.02)
            arr[:, 5] = 60 - (rng.random(60) < 0.005)
            if rng.random() < 0.01:  # an incident now and then
                arr[:5, 0], arr[:5, 1] = 0, 60
            if not skip[0] <= h * HOUR < skip[1]:
                hours.append((name, h, arr.tobytes(), '{"http_status": 300}' if arr[0, 1] else ""))
        digests = []
        day = int(c.day_start(first_hour * HOUR))
        while day < NOW - 9 * DAY:
            digests.append((name, day, DAY, digest_cache[day % 8]))
            day += DAY
        for h in range(int((NOW - 9 * DAY) // HOUR), int(NOW // HOUR)):
            digests.append((name, h * HOUR, HOUR, hour_cache[h % 8]))
        store.write(hours, digests, services)


def bench_state_size(c: Calendar) -> float:
    folder = Path(tempfile.mkdtemp())
    try:
        store = Store(folder, thresholds=(0.5, 1.0))
        fill_store(store, 1, 365, c, np.random.default_rng(3))
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.conn.execute("VACUUM")
        store.close()
        return sum(p.stat().st_size for p in folder.iterdir())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_restore(c: Calendar, targets: int, days: int) -> tuple[float, float, int]:
    folder = Path(tempfile.mkdtemp())
    try:
        store = Store(folder, thresholds=(0.5, 1.0))
        fill_store(store, targets, days, c, np.random.default_rng(4))
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        size = (folder / "ledger.db").stat().st_size
        t0 = time.perf_counter()
        store = Store(folder, thresholds=(0.5, 1.0))  # opens with integrity_check
        t_open = time.perf_counter() - t0
        led = Ledger((0.5, 1.0), day_start=c.day_start)
        led.anchor(NOW)
        store.restore(led, NOW - (led.capacity - 1440) * 60)
        led.compact(NOW)
        total = time.perf_counter() - t0
        store.close()
        return total, t_open, size
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(quick: bool) -> None:
    c = Calendar(Contract())
    rate = bench_ingest(200_000 if quick else 1_000_000)
    line("ingest into the ledger (counts + t-digest)", f"{rate:,.0f}/s", ">= 200,000/s", rate >= 200_000)
    ev = bench_eval(c)
    line("7-day window evaluation per target", f"{ev * 1000:.2f} ms", "<= 20 ms", ev <= 0.020)
    n = 20 if quick else 100
    renders, http, size = bench_scrape(n)
    for label, took in renders.items():
        line(f"/metrics render, {n} targets, {label}", f"{took * 1000:.1f} ms", "<= 3 ms", took <= 0.003)
    line(f"/metrics scrape over HTTP, gzip'd ({size / 1e3:.0f} kB)", f"{http * 1000:.1f} ms", "<= 50 ms", http <= 0.050)
    size = bench_state_size(c)
    line("state size per target-year at 1 probe/s", f"{size / 1e6:.2f} MB", "<= 10 MB", size <= 10e6)
    targets, days = (4, 60) if quick else (20, 400)
    total, t_open, db = bench_restore(c, targets, days)
    line(f"restore {targets} targets x {days} days ({db / 1e6:.0f} MB db)", f"{total:.2f} s", "<= 2 s", total <= 2.0)
    print(f"  of which opening with PRAGMA integrity_check: {t_open:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller inputs (a smoke run)")
    ap.add_argument("--root", action="append", help="a tree to import the agent from (repeatable)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.root:
        measure(args.quick)
        return
    if args.worker:
        import agent

        if not agent.__file__.startswith(worker_tree(sys.argv)):
            sys.exit(f"the agent came from {agent.__file__}, not {args.root[-1]}")
        sys.stdout = sys.stderr  # the figures go back as JSON on the real stdout
        measure(args.quick)
        sys.__stdout__.write(json.dumps(ROWS))
        return
    for root in roots(args.root):
        print(f"\n{root}:", flush=True)
        for row in in_tree(__file__, root, ["--quick"] if args.quick else [], 3600):
            show(*row)


if __name__ == "__main__":
    main()
