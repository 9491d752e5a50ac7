"""TLS resumption and the agent's CPU: one HTTPS target probed back to back by the agent's own probe, with
`tls.resume` off and on, alternating in the same run, against a local server in a process of its own
(TLS 1.3, an ECDSA P-256 certificate from a CA the bench makes, each request answered at once). Prints,
per round and mode, the probe process's CPU per probe and the median of the probes' own `tls` phase (a
resumed handshake skips the certificate, so it is the shorter one).

    python bench/tls_resume.py [--probes 500] [--rounds 3]

Only 127.0.0.1 is used; every loop is bounded in count.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import _certs  # noqa: E402
from probe_rate import free_port, start_server  # noqa: E402

from agent.clock import SystemClock  # noqa: E402
from agent.probes import Target, make_probe  # noqa: E402
from agent.probes.http import HttpOptions, TLSOptions  # noqa: E402


async def measure(port: int, ca: Path, resume: bool, probes: int) -> tuple[float, float]:
    """CPU ms per probe of this process, and the median `tls` phase in ms."""
    t = Target(name="t", service="api", timeout=5.0, interval=1.0,
               options=HttpOptions(f"https://127.0.0.1:{port}/", tls=TLSOptions(ca_file=str(ca), resume=resume)))
    p = make_probe(t, clock=SystemClock())
    try:
        for _ in range(20):  # warm-up: contexts, the first session
            await p.run()
        c0 = time.process_time()
        tls = []
        for _ in range(probes):
            r = await p.run()
            assert r.outcome == "up", r.error
            tls.append(r.phases[2])
        return 1000 * (time.process_time() - c0) / probes, 1000 * statistics.median(tls)
    finally:
        await p.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probes", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    certs = _certs.make(Path(tempfile.mkdtemp(prefix="sla-resume-")))
    port = free_port()
    server = start_server(port, tls=certs, hold=0.0)  # the probe's time: the handshake and the exchange
    try:
        for n in range(args.rounds):
            for resume in (False, True):
                cpu, tls = asyncio.run(measure(port, certs[0], resume, args.probes))
                print(f"round {n + 1}  tls.resume {'on ' if resume else 'off'}  cpu {cpu:.3f} ms/probe  "
                      f"tls phase median {tls:.3f} ms", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
