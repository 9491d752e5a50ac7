"""Soak: 500 targets at a 1 s interval against a local server for 10 minutes.

Prints RSS over time and, beside it, RSS less what the ledger legitimately fills in ten minutes (the hour's
t-digests grow to about a thousand centroids each, the minute rows get their first pages): that remainder's
growth after the first minute is the leak figure (target <= 5 %). Whether anything grows across hour and
day boundaries is bench/memory.py's question (35 simulated days). Also skipped ticks (target <= 0.1 %),
late ticks, event-loop lag p50/p99/max, probe outcomes. Only 127.0.0.1 is used; the run is bounded in time
and stops by itself.

    python bench/soak.py [--targets 500] [--minutes 10]
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from memory import breakdown  # noqa: E402
from probe_rate import free_port, pct  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def soak(n: int, minutes: float, port: int) -> None:
    from agent.app import Agent
    from agent.config import parse_config

    body = "\n".join(f'  - {{name: t{i:04d}, service: {"api" if i % 2 else "web"}, '
                     f'url: "http://127.0.0.1:{port}/t{i}", interval: 1s, timeout: 2s}}' for i in range(n))
    cfg = parse_config(f'agent: {{listen: "127.0.0.1:0", per_host_concurrency: 10000}}\ntargets:\n{body}\n')
    state = tempfile.mkdtemp(prefix="sla-soak-")
    agent = Agent(cfg, state_dir=state)
    lags: list[float] = []
    observe = agent.lag.observe
    agent.lag.observe = lambda lag: (observe(lag), lags.append(lag))  # type: ignore[assignment]
    outcomes: dict[str, int] = {}

    def listen(r) -> None:
        key = r.error_kind or r.outcome
        outcomes[key] = outcomes.get(key, 0) + 1

    agent.listeners.append(listen)
    await agent.start()
    from agent.daemon import tune_gc

    tune_gc()  # as the daemon does
    t0 = time.monotonic()
    samples: list[tuple[float, float, float]] = []  # (seconds, RSS MB, RSS less the ledger's state MB)
    end = t0 + minutes * 60
    while time.monotonic() < end:
        await asyncio.sleep(min(10.0, max(0.0, end - time.monotonic())))
        b = breakdown(agent)
        state = sum(v for k, v in b.items() if k != "held digests") / 2**20
        samples.append((time.monotonic() - t0, rss_mb(), rss_mb() - state))
        ticks = sum(tl.ticks for tl in agent.scheduler.timelines.values())
        print(f"  {samples[-1][0]:6.0f} s  rss {samples[-1][1]:7.1f} MB  ledger state {state:6.1f} MB  "
              f"ticks {ticks}  lag p99 {1000 * pct(lags[-4000:], 0.99):.1f} ms", flush=True)
    tls = agent.scheduler.timelines.values()
    ticks = sum(tl.ticks for tl in tls)
    skipped = sum(tl.skipped for tl in tls)
    late = sum(tl.late for tl in tls)
    await agent.stop()
    shutil.rmtree(state, ignore_errors=True)
    first = next((x for x in samples if x[0] >= 60), samples[0])
    base, rest0 = first[1], first[2]
    peak_after = max(x[1] for x in samples if x[0] >= 60) if any(x[0] >= 60 for x in samples) else samples[-1][1]
    growth = (samples[-1][1] - base) / base
    leak = (samples[-1][2] - rest0) / rest0
    print(f"\nsoak: {n} targets x 1 s for {minutes:g} min: {ticks} ticks, {sum(outcomes.values())} results "
          f"{dict(sorted(outcomes.items()))}")
    print(f"RSS after 1 min {base:.1f} MB, at the end {samples[-1][1]:.1f} MB (peak {peak_after:.1f} MB): "
          f"growth {growth * 100:+.2f} %, most of it the hour's digests filling up")
    print(f"RSS less the ledger's state: {rest0:.1f} MB after 1 min, {samples[-1][2]:.1f} MB at the end: growth "
          f"{leak * 100:+.2f} % (target <= 5 %) {'OK' if leak <= 0.05 else 'MISSED'}")
    print(f"skipped ticks {skipped} = {100 * skipped / max(ticks, 1):.4f} % (target <= 0.1 %) "
          f"{'OK' if skipped <= 0.001 * ticks else 'MISSED'}; late ticks {late}")
    print(f"event-loop lag p50 {1000 * pct(lags, 0.5):.2f} ms, p99 {1000 * pct(lags, 0.99):.2f} ms, "
          f"max {1000 * max(lags):.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=500)
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "_hold_server.py"), str(port), "0.02"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        asyncio.run(soak(args.targets, args.minutes, port))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
