"""`sla-agent demo`: the simulator and the agent against it, with a live summary."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import sys
import time
from collections import deque
from importlib import resources
from pathlib import Path

from ..config import load_config
from . import SimSettings, Simulator

SIM_PORT = 9811


class _Window:
    """Per target: the last minute of results, for the live summary."""

    def __init__(self) -> None:
        self.items: deque[tuple[float, float, bool]] = deque()
        self.total = 0
        self.up = 0

    def add(self, at: float, duration: float, up: bool) -> None:
        self.items.append((at, duration, up))
        self.total += 1
        self.up += up

    def line(self, now: float) -> tuple[int, float | None, float | None, float | None]:
        while self.items and self.items[0][0] < now - 60:
            self.items.popleft()
        if not self.items:
            return 0, None, None, None
        ups = sum(1 for _, _, u in self.items if u)
        d = sorted(x[1] for x in self.items)
        p = lambda q: d[min(len(d) - 1, int(q * len(d)))]  # noqa: E731
        return len(self.items), ups / len(self.items), p(0.5), p(0.99)


def _fmt_ms(x: float | None) -> str:
    return "   -  " if x is None else f"{x * 1000:6.0f}"


async def run_demo(args: argparse.Namespace) -> int:
    from ..app import Agent

    sim = Simulator(SimSettings(**{k: v for k, v in {
        "error_rate": args.error_rate, "outage_every": args.outage_every, "outage_seconds": args.outage_seconds,
        "slow_share": args.slow_share, "seed": args.seed}.items() if v is not None}))
    try:
        port = await sim.start("127.0.0.1", SIM_PORT)
    except OSError:
        port = await sim.start("127.0.0.1", 0)
    cfg_path = Path(str(resources.files("agent") / "data" / "demo.yaml"))
    cfg = load_config(cfg_path)
    if port != SIM_PORT:
        cfg = dataclasses.replace(cfg, targets=tuple(
            dataclasses.replace(t, url=t.url.replace(f":{SIM_PORT}/", f":{port}/")) for t in cfg.targets))
    state_dir = args.state_dir or "./sla-demo-state"
    agent = Agent(cfg, state_dir=state_dir)
    windows: dict[str, _Window] = {t.name: _Window() for t in cfg.targets}

    def listen(r) -> None:
        w = windows.get(r.target)
        if w is not None and r.outcome != "inconclusive":
            w.add(time.time(), r.duration_s, r.outcome == "up")

    agent.listeners.append(listen)
    try:
        await agent.start()
    except OSError:
        agent = Agent(dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, listen="127.0.0.1:0")),
                      state_dir=state_dir)
        agent.listeners.append(listen)
        await agent.start()
    from ..app import tune_gc

    tune_gc()
    url = agent.server.url if agent.server else "?"
    month = dt.datetime.now(agent.cal.tz).strftime("%Y-%m")
    out = sys.stdout
    print(f"sla-agent demo: simulated CRM web UI and API on http://127.0.0.1:{port}/", file=out)
    print(f"  metrics      {url}/metrics", file=out)
    print(f"  status       {url}/api/v1/status", file=out)
    print(f"  report       {url}/report?month={month}   (JSON: {url}/api/v1/report?month={month})", file=out)
    print(f"  ledger       {Path(state_dir).resolve()}/ledger.db", file=out)
    print(f"  afterwards   sla-agent report --config {cfg_path} --state-dir {state_dir} --month {month}", file=out)
    print("Ctrl-C stops." if args.duration is None else f"Stops by itself after {args.duration:g}s.", file=out)
    out.flush()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, agent.request_stop)
    deadline = None if args.duration is None else loop.time() + args.duration
    try:
        while True:
            wait = args.summary_every if deadline is None else min(args.summary_every, deadline - loop.time())
            if wait <= 0:
                break
            try:
                await asyncio.wait_for(agent.run_until_stopped(), wait)
                break
            except TimeoutError:
                pass
            now = time.time()
            print(f"\n{dt.datetime.now(agent.cal.tz):%H:%M:%S}  target         probes   up %   last minute: "
                  f"n    up %  p50 ms  p99 ms", file=out)
            for name, w in windows.items():
                n, upr, p50, p99 = w.line(now)
                total_up = 100.0 * w.up / w.total if w.total else 0.0
                print(f"          {name:<14} {w.total:6d} {total_up:6.1f}   {n:12d} "
                      f"{'   -  ' if upr is None else f'{upr * 100:6.1f}'}  {_fmt_ms(p50)}  {_fmt_ms(p99)}", file=out)
            out.flush()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await agent.evaluate_now()
        snap = agent.snapshot
        await agent.stop()
        await sim.stop()
    if snap is not None:
        print("\nmonth to date:", file=out)
        for svc, s in snap.services.items():
            a = s.availability["month"]
            line = f"  {svc:<5} availability " + ("-" if a.ratio is None else f"{a.ratio * 100:.3f} %") + \
                   f" ({a.verdict}, coverage " + ("-" if a.coverage is None else f"{a.coverage * 100:.1f} %") + ")"
            lat = s.latency.get("period")
            if lat is not None and lat.count:
                fr = lat.fractions()
                line += "; latency " + ", ".join(
                    f"{f * 100:.2f} % < {t:g}s" for t, f in zip(lat.thresholds, fr) if f is not None)
            print(line, file=out)
    print(f"\nledger kept in {Path(state_dir).resolve()}", file=out)
    return 0
