"""Memory over a month: a real agent (ledger, compaction, store flushes, live evaluation, the exporter's
collectors) on simulated time, 1 probe/s for N targets over D days, no network and no waiting.

Each simulated minute, every target gets its 60 results from a deterministic model (lognormal latency
with a slow tail, an outage now and then) written the way Ledger.add writes them: the minute's counts
in its row, the latency population into the hour's t-digest, the error kinds of down probes. The agent
flushes to its SQLite store every simulated 5 minutes (compacting finished days, as it does every 10
minutes), evaluates and renders /metrics every simulated hour. RSS is read at each
simulated midnight, with where the bytes go.

    python bench/memory.py [--targets 200] [--days 35] [--root ../before --root .]
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from collections import Counter

from _trees import enter, in_tree, roots

START = 1_788_217_200.0  # 2026-09-01T00:00:00+01:00


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def pymalloc() -> int:
    """Bytes in Python's small-object arenas (sys._debugmallocstats writes them to the C stderr)."""
    import os
    import re

    with tempfile.TemporaryFile(mode="w+") as tmp:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        m = re.search(r"^(\d+) arenas \* (\d+) bytes/arena", tmp.read(), re.M)
    return int(m.group(1)) * int(m.group(2)) if m else 0


def breakdown(agent) -> dict[str, int]:
    """Bytes held, by kind (what the structures say they hold; RSS also has the allocators' slack)."""
    led = agent.ledger
    out = {"minute counts": 0, "hour digests": 0, "day digests": 0, "merged windows": 0, "error kinds": 0}
    for s in led.series.values():
        out["minute counts"] += _minutes(s)
        out["hour digests"] += sum(_digest(d) for d in s.hour_digests.values())
        out["day digests"] += sum(_digest(d) for d in s.day_digests.values())
        out["merged windows"] += sum(_digest(d) for d in s.merged.values())
        out["error kinds"] += 200 * (len(s.errors) + len(s.hour_errors))
    out["day cache"] = sum(a.nbytes + 200 for a in agent.day_cache._days.values())
    out["held digests"] = sum(len(s.hour_digests) + len(s.day_digests) for s in led.series.values())
    return out


def _minutes(s) -> int:
    store = getattr(s, "minutes", None)  # a tree from before the compact minute store has one dense array
    return store.nbytes if store is not None else s.data.nbytes


def _digest(d) -> int:
    if isinstance(d, (bytes, bytearray)):
        return len(d)
    return 16 * d.n_centroids + 200


def simulate(targets: int, days: int) -> list[dict]:
    import numpy as np

    from agent.app import Agent
    from agent.config import parse_config
    from agent.export.exposition import generate
    from agent.ledger.series import BELOW0_I, DOWN_I, LAT_I, UP_I

    body = "\n".join(f'  - {{name: t{t:03d}, service: {"api" if t % 2 else "web"}, url: "http://127.0.0.1:9/", '
                     f'interval: 1s, timeout: 2s}}' for t in range(targets))
    cfg = parse_config(f'agent: {{listen: "127.0.0.1:0"}}\ntargets:\n{body}\n')

    class SimClock:
        def __init__(self) -> None:
            self.now = START

        def time(self) -> float:
            return self.now

        def monotonic(self) -> float:
            return self.now

        async def sleep_until(self, deadline: float) -> None:
            await asyncio.Event().wait()  # the agent's own loops stay parked: the bench drives it

    clock = SimClock()
    rng = np.random.default_rng(16)
    state = tempfile.mkdtemp(prefix="sla-memory-")
    rows: list[dict] = []

    async def run() -> None:
        agent = Agent(cfg, state_dir=state, clock=clock)
        agent.ledger.anchor(START)
        await agent.start()
        await agent.scheduler.stop(0)
        for task in agent._tasks:
            task.cancel()
        led, cal = agent.ledger, agent.cal
        thresholds = led.thresholds
        series = [led.ensure(t.name, t.service) for t in cfg.targets]
        gc.collect()
        rows.append({"day": 0, "rss": rss(), "python": pymalloc(), **breakdown(agent), "elapsed_s": 0.0})  # the agent, no data yet
        t0 = time.perf_counter()
        for minute in range(int(START // 60), int((START + days * 86400) // 60)):
            clock.now = minute * 60.0 + 59.0
            masked = cal.active(minute * 60.0) is not None
            lat = rng.lognormal(np.log(0.12), 0.45, (targets, 60))
            lat[rng.random((targets, 60)) < 0.008] = 0.75  # the slow tail
            down = np.zeros((targets, 60), dtype=bool)
            if minute % 1440 == 600:  # an outage of one target a day, a minute long
                down[minute // 1440 % targets] = True
            ok = ~down
            counts = [ok.sum(axis=1), down.sum(axis=1)] + [((lat < th) & ok).sum(axis=1) for th in thresholds]
            for i, s in enumerate(series):
                _minute(led, s, minute, [int(c[i]) for c in counts], lat[i][ok[i]], masked)
            if minute % 30 == 29:
                await agent.flush()
            if minute % 60 == 29:
                await agent.evaluate_now()
            if minute % 360 == 359:
                generate(agent.registry)
            if (minute + 1) % 1440 == int(START // 60) % 1440:
                day = (minute + 1 - int(START // 60)) // 1440
                gc.collect()
                rows.append({"day": day, "rss": rss(), "python": pymalloc(), **breakdown(agent),
                             "elapsed_s": round(time.perf_counter() - t0, 1)})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        await agent.stop()

    def _minute(led, s, minute: int, c: list[int], ok, masked: bool) -> None:
        """What Ledger.add does for each of the minute's results, done once for the 60 of them."""
        if hasattr(led, "_row"):
            row = led._row(s, minute)
        else:  # a tree from before the compact minute store
            idx = led._index(s, minute)
            row = s.data[idx] if idx >= 0 else None
        if row is not None:
            row[UP_I] += c[0]
            row[DOWN_I] += c[1]
            row[LAT_I] += c[0]
            for k, below in enumerate(c[2:]):
                row[BELOW0_I + k] += below
        if c[1]:
            s.errors.setdefault(minute, Counter())["connect_refused"] += c[1]
        if not masked and len(ok):
            led._digest(s, minute // 60).batch_update(ok.tolist())
        led.dirty_hours.add((s.name, minute // 60))
        s.newest_minute = max(s.newest_minute, minute)

    asyncio.run(run())
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=200)
    ap.add_argument("--days", type=int, default=35)
    ap.add_argument("--root", action="append", help="a tree to import the agent from (repeatable)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        enter(args.root[-1])
        print(json.dumps(simulate(args.targets, args.days)))
        return
    results = {r: in_tree(__file__, r, ["--targets", str(args.targets), "--days", str(args.days)], 7200)
               for r in roots(args.root)}
    for r, rows in results.items():
        report(r, rows, args.targets)


def report(root: str, rows: list[dict], targets: int) -> None:
    print(f"\n{root}: {targets} targets at 1 probe/s")
    print(f"{'day':>4} {'RSS MB':>8} {'Python MB':>9} {'native MB':>9} {'KB/target':>10} {'minutes':>9} {'hours':>8} {'days':>8} {'merged':>8} "
          f"{'day cache':>9} {'digests':>8} {'sim s':>7}   (minutes ... day cache: KB per target the structures hold)")
    base = rows[0]["rss"]
    for x in rows:
        kb = lambda k: f"{x[k] / targets / 1024:.0f}"  # noqa: E731 - per target, KB
        py = x.get("python", 0)
        print(f"{x['day']:>4} {x['rss'] / 1e6:>8.1f} {py / 1e6:>9.1f} {(x['rss'] - py) / 1e6:>9.1f} {(x['rss'] - base) / targets / 1024:>10.0f} {kb('minute counts'):>9} "
              f"{kb('hour digests'):>8} {kb('day digests'):>8} {kb('merged windows'):>8} {kb('day cache'):>9} "
              f"{x['held digests']:>8} {x['elapsed_s']:>7}")
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        growth = (b["rss"] - a["rss"]) / a["rss"] * 100
        first = min(34, rows[-1]["day"])
        steady = [x["rss"] - base for x in rows if x["day"] >= first]
        print(f"steady state (day {first} on): {sum(steady) / len(steady) / targets / 1024:.0f} KB of RSS per target "
              f"above the agent's own {base / 1e6:.0f} MB with no data (KB/target column: the same, per day)")
        print(f"day {a['day']} -> day {b['day']}: {growth:+.2f} % RSS ({'flat' if abs(growth) <= 5 else 'NOT FLAT'}, "
              f"within 5 %)")


if __name__ == "__main__":
    main()
