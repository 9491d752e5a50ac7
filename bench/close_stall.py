"""The month's close beside running probes: the event loop's stalls and the probes' measured times while a
started agent closes the ended months of a 20-target ledger (50 days of rows, October 2026's journal), with
the close in a process of its own (as the agent runs it) and in a thread of the agent's process (as it ran
before), one after the other in the same run, and the same length of time with no close as a baseline.

Each target is probed once a second against a local server holding each request 50 ms, so an up probe's
measured time above 50 ms is the agent's own error. A stall is the event loop late by more than 50 ms.

    python bench/close_stall.py [--ledger DIR] [--rounds 1]

Only 127.0.0.1 is used; every wait is bounded.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from agent.app import Agent  # noqa: E402
from agent.config import load_config  # noqa: E402
from agent.report import closing  # noqa: E402
from agent.report.archive import Archive  # noqa: E402

TARGETS, HOLD = 20, 0.050
CLOSE_LIMIT = 900.0  # seconds a close may take before the bench gives up on it
IN_CHILD = closing.in_child


async def _held(request: web.Request) -> web.Response:
    await asyncio.sleep(HOLD)
    return web.Response(text="ok")


def build_ledger(folder: Path) -> None:
    from locations import _fill

    if not (folder / "ledger.db").exists():
        t = time.monotonic()
        records = _fill(folder, TARGETS, 5, 300.0, 0.006)
        print(f"ledger built in {time.monotonic() - t:.0f} s: {records} journal records", flush=True)


def _config(folder: Path, port: int) -> Path:
    targets = "\n".join(f'  - {{name: t{i:03d}, service: api, url: "http://127.0.0.1:{port}/t{i}", '
                        f'interval: 1s, timeout: 2s}}' for i in range(TARGETS))
    path = folder / "cfg.yaml"
    path.write_text(f'agent: {{listen: "127.0.0.1:0", location: paris}}\nreports: {{close_after: 1h}}\n'
                    f"targets:\n{targets}\n")
    return path


async def _in_thread(fn, *args):
    return await asyncio.to_thread(fn, *args)


def _window(agent: Agent, results: list, lo: float, hi: float) -> dict:
    up = sorted(1000 * (d - HOLD) for s, d, outcome in results if outcome == "up" and lo <= s < hi)
    stalls = [e - s for s, e in agent.lag.events if lo <= s < hi]

    def pct(q: float) -> float:
        return up[min(len(up) - 1, int(q * len(up)))] if up else float("nan")

    return {"seconds": hi - lo, "probes": sum(1 for s, _, _ in results if lo <= s < hi),
            "inconclusive": sum(1 for s, _, o in results if o == "inconclusive" and lo <= s < hi),
            "p50": pct(0.5), "p99": pct(0.99), "max": up[-1] if up else float("nan"),
            "stalls": len(stalls), "worst_stall_ms": 1000 * max(stalls, default=0.0)}


async def run_mode(ledger: Path, mode: str, port: int) -> dict:
    """Starts an agent on a copy of the ledger; measures while its close runs (and as long after)."""
    folder = Path(tempfile.mkdtemp(prefix=f"sla-close-{mode}-"))
    try:
        (folder / "state").mkdir()
        shutil.copy(ledger / "ledger.db", folder / "state" / "ledger.db")
        agent = Agent(load_config(_config(folder, port)), state_dir=str(folder / "state"))
        results: list[tuple[float, float, str]] = []
        agent.listeners.append(lambda r: results.append((r.mono_start, r.duration_s, r.outcome)))
        closing.in_child = _in_thread if mode == "thread" else IN_CHILD
        await agent.start()
        t0 = time.monotonic()
        await asyncio.wait_for(agent.closer.check(), CLOSE_LIMIT)  # after the start's own look
        t1 = time.monotonic()
        months = Archive(folder / "state").months()
        await asyncio.sleep(t1 - t0 + 3.0)  # the baseline, and the last probes' timeout
        await agent.stop()
        return {"months": months, "close_s": t1 - t0, "during": _window(agent, results, t0, t1),
                "after": _window(agent, results, t1 + 2.0, 2 * t1 - t0 + 2.0)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def show(mode: str, r: dict) -> None:
    print(f"close in {mode:<8} closed {','.join(r['months'])} in {r['close_s']:.1f} s", flush=True)
    for when in ("during", "after"):
        w = r[when]
        label = "during the close" if when == "during" else "no close (after)"
        print(f"  {label:<17} {w['probes']:6d} probes, inconclusive {w['inconclusive']:3d}; overhead above the "
              f"50 ms hold p50 {w['p50']:6.2f} p99 {w['p99']:7.2f} max {w['max']:7.1f} ms; loop stalls > 50 ms: "
              f"{w['stalls']:3d}, worst {w['worst_stall_ms']:6.0f} ms", flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ledger", help="where the built ledger is kept, and reused from when it is there")
    ap.add_argument("--rounds", type=int, default=1, help="each mode this many times, alternating")
    args = ap.parse_args()
    ledger = Path(args.ledger or tempfile.mkdtemp(prefix="sla-close-ledger-"))
    ledger.mkdir(parents=True, exist_ok=True)
    build_ledger(ledger)
    app = web.Application()
    app.router.add_get("/{tail:.*}", _held)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        for _ in range(args.rounds):
            for mode in ("process", "thread"):
                show(mode, await run_mode(ledger, mode, port))
    finally:
        await runner.cleanup()
        if not args.ledger:
            shutil.rmtree(ledger, ignore_errors=True)


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
