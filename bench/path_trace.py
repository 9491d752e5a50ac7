"""The path traced at a failure, across a routed network of namespaces made here (tests/netns.py: client --
r1 -- r2 -- server, hops 1 to 3): how long a trace takes on a whole path, on one that goes silent after
hop 2 and on one whose hop 2 answers it cannot go on; and how many traces still see hop 2 when several
are made close together, since routers answer only a few such datagrams a second (a hop silent for that
reads as a path that went no further).

    python bench/path_trace.py [--spacings 0,0.5,1,2] [--traces 6]

Spacing 0 is traces made all at once (four threads); the agent makes one at a time, two seconds apart.
Needs root (network namespaces); only addresses inside the namespaces it makes are used. Every loop is
bounded in count."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import netns  # noqa: E402

CHILD = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from agent.paths.trace import trace
spacings, n = [float(x) for x in sys.argv[1].split(",")], int(sys.argv[2])
if sys.argv[3] == "shapes":
    time.sleep(8)  # the routers' allowance refilled after the shape before
    d = trace("%(server)s", wait=3)
    print(json.dumps([d["reached"], d["stopped_at"], d["duration_s"]]))
    sys.exit()
for gap in spacings:
    time.sleep(8)  # the routers' allowance refilled
    if gap == 0:
        with ThreadPoolExecutor(4) as ex:
            seen = [d["stopped_at"] for d in ex.map(lambda _: trace("%(server)s", wait=3), range(4))]
    else:
        seen = []
        for _ in range(n):
            t0 = time.monotonic()
            seen.append(trace("%(server)s", wait=3)["stopped_at"])
            time.sleep(max(0.0, gap - (time.monotonic() - t0)))
    print(json.dumps([gap, seen]), flush=True)
""" % {"server": netns.SERVER}


def child(t: netns.Topology, *args: str) -> list:
    done = subprocess.run(t.exec("client", sys.executable, "-c", CHILD, *args), cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spacings", default="0,0.5,1,2", help="seconds between trace starts (0: four at once)")
    ap.add_argument("--traces", type=int, default=6, help="traces made at each spacing")
    args = ap.parse_args()
    why = netns.unavailable()
    if why:
        sys.exit(f"cannot run: {why}")
    t = netns.topology()
    try:
        (whole,) = child(t, "0", "1", "shapes")
        t.server_link(up=False)
        (silent,) = child(t, "0", "1", "shapes")
        t.server_link(up=True)
        t.break_after_hop_2()
        (said,) = child(t, "0", "1", "shapes")
        for name, (reached, stopped, took) in (("whole path", whole), ("silent after hop 2", silent),
                                               ("hop 2 answers net unreachable", said)):
            print(f"{name:<32} reached {str(reached):<5} stopped at {stopped}  took {took * 1000:7.1f} ms")
        for gap, seen in child(t, args.spacings, str(args.traces), "rate"):
            label = "4 traces at once" if gap == 0 else f"{len(seen)} traces {gap:g} s apart"
            print(f"{label:<24} hop 2 seen by {sum(s == 2 for s in seen)} of {len(seen)}  (stopped at: {seen})")
    finally:
        t.remove()


if __name__ == "__main__":
    main()
