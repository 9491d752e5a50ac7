"""What the agent's evaluation costs: the snapshot it computes every 10 s (every objective's live windows,
the contract gauges included) and the /metrics text built from it, for N targets over a month of 1 probe/s
(minute counts for 33 days, hourly t-digests for the last 7) and a few open tickets.

With --root PATH (repeatable) each tree is measured in its own process, rounds alternating, so two
versions compare on the same machine in the same minutes:

    python bench/evaluate.py [--targets 100] [--rounds 4] [--root ../before --root .]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from _trees import enter, in_tree, roots

NOW = 1_795_000_000.0 - (1_795_000_000.0 % 3600) + 1830.0


def measure(targets: int, repeats: int) -> dict:
    import numpy as np
    from fastdigest import TDigest
    from prometheus_client import CollectorRegistry, generate_latest

    from agent.calendar import Calendar
    from agent.config import parse_config
    from agent.export.collectors import SloCollector
    from agent.ledger import HOUR, Ledger
    import agent.ledger
    from agent.slo import DayCache, evaluate
    from agent.tickets import Ticket

    body = "\n".join(f'  - {{name: t{t:03d}, service: {"api" if t % 2 else "web"}, url: "http://127.0.0.1:9/", '
                     f'interval: 1s, timeout: 2s}}' for t in range(targets))
    cfg = parse_config(f"targets:\n{body}\n")
    cal = Calendar(cfg.contract)
    led = Ledger(cfg.contract.thresholds, day_start=cal.day_start)
    led.anchor(NOW)
    rng = np.random.default_rng(2)
    digest = TDigest.from_values(rng.lognormal(np.log(0.12), 0.45, 3600).tolist(),
                                 max_centroids=getattr(agent.ledger, "CENTROIDS", 1000))  # the measured tree's size
    for t in cfg.targets:
        s = led.ensure(t.name, t.service)
        hour = np.zeros((60, led.nf), dtype=np.uint16)
        hour[:, 0], hour[:, 3], hour[:, 4], hour[:, 5] = 60, 60, 59, 60
        for h in range((led.capacity - 1440) // 60):  # as a restore writes them
            led.load_hour(s.name, s.service, s.base // 60 + h, hour, {})
        for h in range(int(NOW // HOUR) - 7 * 24, int(NOW // HOUR)):
            s.hour_digests[h] = digest
    tickets = [Ticket(f"T-{i}", ("P1", "P2", "P3")[i % 3], NOW - 3600 * (i + 1)) for i in range(20)]
    cache = DayCache(cal)
    evaluate(led, cfg, cal, NOW, cache, lambda a, b: tickets)  # warm: closed days cached, as in the agent
    times, snap = [], None
    for i in range(repeats):
        t0 = time.perf_counter()
        snap = evaluate(led, cfg, cal, NOW + 10 * (i + 1), cache, lambda a, b: tickets)
        times.append(time.perf_counter() - t0)
    registry = CollectorRegistry()
    registry.register(SloCollector(lambda: snap, lambda: False))
    text = generate_latest(registry)
    return {"evaluate_ms": statistics.median(times) * 1000, "sla_series": text.count(b"\n") - text.count(b"\n#"),
            "bytes": len(text)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=4, help="rounds per tree, alternating")
    ap.add_argument("--repeats", type=int, default=10, help="evaluations per round (the median is kept)")
    ap.add_argument("--root", action="append", help="a tree to import the agent from (repeatable)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        enter(args.root[-1])
        print(json.dumps(measure(args.targets, args.repeats)))
        return
    trees = roots(args.root)
    found: dict[str, list[dict]] = {r: [] for r in trees}
    for _ in range(args.rounds):
        for r in trees:
            found[r].append(in_tree(__file__, r, ["--targets", str(args.targets), "--repeats", str(args.repeats)],
                                    600))
    print(f"evaluation of {args.targets} targets (one snapshot, every objective's live windows), "
          f"{args.rounds} alternating rounds of {args.repeats}")
    for r, runs in found.items():
        ms = [x["evaluate_ms"] for x in runs]
        print(f"  {r:<40} evaluate {' / '.join(f'{m:.1f}' for m in ms)} ms (median {statistics.median(ms):.1f}); "
              f"SLA series {runs[0]['sla_series']}, {runs[0]['bytes']:,} bytes")


if __name__ == "__main__":
    main()
