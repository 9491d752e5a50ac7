"""Report over several locations: a month for 20 targets at 1 probe/s from 3 locations, each served by a
real agent's /api/v1/ledger on 127.0.0.1; the time to pull each location, the size of each response, and
the time to build the combined report; beside it, one agent's own report in the same run.

    python bench/locations.py [--targets 20] [--locations 3] [--up-every 60] [--fail-share 0.01] [--keep DIR]

Each location's ledger is written the way the daemon writes it (minute rows, digests, the journal with
--fail-share of the probes failing and an up record every --up-every seconds, the month's counts and
journal from the same probes, sealed as a clean stop leaves it), once, and copied to the other places. A report pulls the journal's failures only (all it reads); an evidence bundle pulls the
whole journal; the rows alone (journal=none) are the floor: all three are timed. Only 127.0.0.1 is used.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evidence import fill_month  # noqa: E402
from ledger import NOW  # noqa: E402

from agent.app import Agent  # noqa: E402
from agent.calendar import Calendar  # noqa: E402
from agent.config import parse_config  # noqa: E402
from agent.report import build_report  # noqa: E402
from agent.report.combined import pull_span, report_over  # noqa: E402
from agent.report.sources import pull  # noqa: E402
from agent.store import Store  # noqa: E402

PLACES = ("paris", "frankfurt", "london", "madrid", "dublin")


def _config(targets: int, place: str = "") -> str:
    body = "\n".join(f'  - {{name: t{t:03d}, service: api, url: "https://127.0.0.1:9/", interval: 1s, '
                     f'timeout: 5s}}' for t in range(targets))
    loc = f", location: {place}" if place else ""
    return f'agent: {{listen: "127.0.0.1:0"{loc}}}\ncontract: {{locations: {{min_agree: 2}}}}\ntargets:\n{body}\n'


def _fill(folder: Path, targets: int, seed: int, up_every: float, fail_share: float) -> int:
    cfg = parse_config(_config(targets))
    store = Store(folder, thresholds=cfg.contract.thresholds, clock=lambda: NOW)
    n = fill_month(store, targets, Calendar(cfg.contract), seed, up_every, fail_share)
    store.close()
    return n


async def _serve_and_measure(folder: Path, targets: int, places: list[str]) -> None:
    agents = []
    for p in places:
        agent = Agent(parse_config(_config(targets, p)), state_dir=str(folder / p))
        await agent.start()
        await agent.scheduler.stop(0)  # serving only: no probes to the placeholder targets
        agents.append(agent)
    try:
        cfg = parse_config(_config(targets))
        span = pull_span(cfg, "2026-10", NOW)
        for journal in ("failures", "all", "none"):  # what a report pulls; a bundle; the rows alone
            for p, agent in zip(places, agents):
                t0 = time.perf_counter()
                await asyncio.to_thread(pull, agent.server.url, span, folder / f"{p}.pulled.db", None, journal)
                took = time.perf_counter() - t0
                raw = (folder / f"{p}.pulled.db").stat().st_size
                print(f"pull {p} (journal={journal}): {took:.2f} s"
                      + (f" (target <= 3 s) {'OK' if took <= 3 else 'MISSED'}" if journal == "failures" else "")
                      + f"; the response {await _gz_size(agent.server.url, span, journal) / 1e6:.1f} MB gzip'd "
                      f"({raw / 1e6:.1f} MB as a database)", flush=True)
        specs = [f"{p}={folder / p}" for p in places]
        t0 = time.perf_counter()
        doc, _ = await asyncio.to_thread(report_over, cfg, specs, None, "2026-10", NOW)
        combined = time.perf_counter() - t0
        t0 = time.perf_counter()
        await asyncio.to_thread(build_report, cfg, str(folder / places[0]), "2026-10", NOW)
        single = time.perf_counter() - t0
        t0 = time.perf_counter()
        urls = [f"{p}={a.server.url}" for p, a in zip(places, agents)]
        await asyncio.to_thread(report_over, cfg, urls, None, "2026-10", NOW)
        end_to_end = time.perf_counter() - t0
    finally:
        for agent in agents:
            await agent.stop()
    print(f"combined report over {len(places)} locations from their ledger files: {combined:.2f} s (target <= 3 s) "
          f"{'OK' if combined <= 3 else 'MISSED'}; one location's own report, same run: {single:.2f} s", flush=True)
    print(f"pull of every location + combined report, end to end: {end_to_end:.2f} s; rows "
          f"{[r['verdict'] for r in doc['rows']]}", flush=True)


async def _gz_size(base: str, span: tuple[float, float], journal: str) -> int:
    import aiohttp

    from agent.report.sources import ledger_url

    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.get(ledger_url(base, span, journal)) as resp:
            return len(await resp.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=20)
    ap.add_argument("--locations", type=int, default=3)
    ap.add_argument("--up-every", type=float, default=60.0)
    ap.add_argument("--fail-share", type=float, default=0.01, help="share of probes failing, spread evenly "
                    "(0.01: a stress month of ~0.5 M failure records per place; 0.001: a month nearer the usual)")
    ap.add_argument("--keep", metavar="DIR", help="keep the filled ledgers in DIR, and reuse them when there")
    args = ap.parse_args()
    places = list(PLACES[:args.locations])
    folder = Path(args.keep or tempfile.mkdtemp(prefix="sla-locations-bench-"))
    try:
        t0 = time.perf_counter()
        if not (folder / places[0] / "ledger.db").exists():
            n = _fill(folder / places[0], args.targets, 5, args.up_every, args.fail_share)
            print(f"{args.targets} targets, 50 days at 1 probe/s, journal of 2026-10 ({n} records, "
                  f"{args.fail_share:.1%} failing): written in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        for p in places[1:]:  # the same rows at every place: filling a month's journal takes minutes each
            if not (folder / p).exists():
                shutil.copytree(folder / places[0], folder / p)
        asyncio.run(_serve_and_measure(folder, args.targets, places))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
