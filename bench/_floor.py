"""The floor of bench/probe_rate.py: a bare aiohttp client doing what a probe does and nothing else.

Same loop type (the caller installs it), same SSLContext (the agent's own client_context for the same TLS
options), a new connection (and handshake) per request, the same rate and server, the body read: what
Python, aiohttp and OpenSSL cost at the least, with no phases, results, pipeline or scheduler of the
agent's. Measured the agent's way: this process's CPU over the window, per request.
"""
from __future__ import annotations

import asyncio
import resource
import time
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_floor(rate: int, seconds: float, port: int, hold: float, ca: Path | None = None,
                    resume: bool = False) -> dict:
    import aiohttp

    from agent.daemon import tune_gc
    from agent.probes.tls import TLSOptions, client_context

    ctx = client_context(TLSOptions(ca_file=str(ca))) if ca else False
    if resume and ca:  # a returning client, as the agent's targets with tls.resume
        from agent.probes.tls import probe_context

        ctx = probe_context(TLSOptions(ca_file=str(ca), resume=True))
    url = f"{'https' if ca else 'http'}://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(force_close=True, use_dns_cache=False, limit=0, ssl=ctx,
                                     enable_cleanup_closed=False)
    durs: list[float] = []
    failures = 0
    tune_gc()  # as the agent's run has it

    async with aiohttp.ClientSession(connector=connector) as s:
        async def one(i: int, record: bool) -> None:
            nonlocal failures
            t0 = time.monotonic()
            try:
                async with s.get(f"{url}/f{i % 1000}") as r:
                    await r.read()
                    ok = r.status == 200
            except aiohttp.ClientError:
                ok = False
            if record and ok:
                durs.append(time.monotonic() - t0)
            elif record:
                failures += 1

        async def drive(secs: float, record: bool) -> tuple[int, float, float]:
            loop = asyncio.get_running_loop()
            t0, c0 = loop.time(), _cpu()
            count = int(rate * secs)
            tasks = set()
            for i in range(count):
                delay = t0 + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one(i, record))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=10)
            return count, loop.time() - t0, _cpu() - c0

        await drive(2.0, False)  # warm-up, as the agent's
        count, elapsed, cpu = await drive(seconds, True)
    over = sorted(d - hold for d in durs)

    def pct(q: float) -> float:
        return 1000 * over[min(len(over) - 1, int(q * len(over)))] if over else float("nan")

    return {"rate": len(durs) / elapsed, "cpu_ms": 1000 * cpu / max(count, 1), "over_p50": pct(0.5),
            "over_p99": pct(0.99), "failures": failures}
