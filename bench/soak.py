"""Soak: 500 targets at a 1 s interval against a local server for 10 minutes.

Prints RSS over time and its growth after the first minute (target <= 5 %), skipped ticks (target
<= 0.1 %), late ticks, event-loop lag p50/p99/max, probe outcomes. Only 127.0.0.1 is used; the run is
bounded in time and stops by itself.

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
    from agent.app import tune_gc

    tune_gc()  # as the daemon does
    t0 = time.monotonic()
    samples: list[tuple[float, float]] = []
    end = t0 + minutes * 60
    while time.monotonic() < end:
        await asyncio.sleep(min(10.0, max(0.0, end - time.monotonic())))
        samples.append((time.monotonic() - t0, rss_mb()))
        ticks = sum(tl.ticks for tl in agent.scheduler.timelines.values())
        print(f"  {samples[-1][0]:6.0f} s  rss {samples[-1][1]:7.1f} MB  ticks {ticks}  "
              f"lag p99 {1000 * pct(lags[-4000:], 0.99):.1f} ms", flush=True)
    tls = agent.scheduler.timelines.values()
    ticks = sum(tl.ticks for tl in tls)
    skipped = sum(tl.skipped for tl in tls)
    late = sum(tl.late for tl in tls)
    await agent.stop()
    shutil.rmtree(state, ignore_errors=True)
    base = next((r for t, r in samples if t >= 60), samples[0][1])
    peak_after = max(r for t, r in samples if t >= 60) if any(t >= 60 for t, _ in samples) else samples[-1][1]
    growth = (samples[-1][1] - base) / base
    print(f"\nsoak: {n} targets x 1 s for {minutes:g} min: {ticks} ticks, {sum(outcomes.values())} results "
          f"{dict(sorted(outcomes.items()))}")
    print(f"RSS after 1 min {base:.1f} MB, at the end {samples[-1][1]:.1f} MB (peak {peak_after:.1f} MB): "
          f"growth {growth * 100:+.2f} % (target <= 5 %) {'OK' if growth <= 0.05 else 'MISSED'}")
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
