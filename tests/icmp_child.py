"""Runs icmp probes inside a network namespace for tests/test_probe_icmp.py (`ip netns exec NS python -m
tests.icmp_child`): reads a JSON list of cases on stdin, prints one JSON list of results."""
from __future__ import annotations

import asyncio
import json
import sys

from agent.clock import SystemClock
from agent.config import parse_config
from agent.probes import Capture, make_probe
from agent.probes.icmp import access


async def one(case: dict) -> dict:
    t = parse_config(f'targets: [{{name: ping, service: lan, type: icmp, host: "{case["host"]}", '
                     f'timeout: {case.get("timeout", "600ms")}{case.get("extra", "")}}}]').targets[0]
    how = {"raw": access.RAW, "datagram": access.DATAGRAM}.get(case.get("access", ""), "")
    p = make_probe(t, clock=SystemClock(), capture=Capture(body_bytes=1024), access=how)
    r = await p.run()
    await p.close()
    return {"access": p.access, "outcome": r.outcome, "kind": r.error_kind, "error": r.error, "rtt": r.phases[0],
            "duration": r.duration_s, "counted": r.latency_counted, "address": r.detail.address if r.detail else "",
            "line": r.detail.body.decode() if r.detail else ""}


async def main() -> None:
    cases = json.load(sys.stdin)
    print(json.dumps([await one(c) for c in cases]))


if __name__ == "__main__":
    asyncio.run(main())
