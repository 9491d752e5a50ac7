"""Crash loop: run the agent at a high probe rate and kill it with SIGKILL at random moments, restarting
it each time (100 times by default). Prints corrupt databases (target 0) and samples lost per kill
(target: at most one flush interval of samples). Only 127.0.0.1 is used; bounded in count and time.

    python bench/crash_loop.py [--kills 100] [--targets 10] [--flush 1.0]
"""
from __future__ import annotations

import argparse
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from probe_rate import free_port  # noqa: E402


def stored_total(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return sum(int(np.frombuffer(zlib.decompress(b), dtype=np.uint16).reshape(60, -1)[:, :3].sum())
                   for (b,) in conn.execute("SELECT counts FROM minutes"))
    finally:
        conn.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:  # nosec - loopback
            return resp.read().decode()
    except OSError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--targets", type=int, default=10)
    ap.add_argument("--flush", type=float, default=1.0, help="agent.flush_interval in seconds")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)  # nosec B311 - random kill moments
    folder = Path(tempfile.mkdtemp(prefix="sla-crash-"))
    server_port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "_hold_server.py"), str(server_port), "0.005"],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    rate = args.targets / 0.05
    corrupt = 0
    lost: list[float] = []
    t_start = time.monotonic()
    try:
        for i in range(args.kills):
            port = free_port()
            targets = "\n".join(f'  - {{name: t{n}, service: web, url: "http://127.0.0.1:{server_port}/{n}", '
                                f'interval: 50ms, timeout: 40ms}}' for n in range(args.targets))
            (folder / "agent.yaml").write_text(
                f'agent: {{listen: "127.0.0.1:{port}", flush_interval: {int(args.flush * 1000)}ms}}\n'
                f"targets:\n{targets}\n")
            db = folder / "state" / "ledger.db"
            before = stored_total(db) if db.exists() else 0
            proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(folder / "agent.yaml"),
                                     "--state-dir", str(folder / "state")], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, cwd=HERE.parent)
            deadline = time.monotonic() + 30
            while scrape(port) is None:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"kill {i}: the agent did not start")
                time.sleep(0.05)
            time.sleep(rng.uniform(0.2, 3 * args.flush))  # a random moment: that is the point of the test
            text = scrape(port) or ""
            seen = sum(float(m.group(1)) for m in re.finditer(r"^sla_probes_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))
            proc.kill()
            proc.wait(timeout=10)
            if integrity(db) != "ok":
                corrupt += 1
            lost.append(max(0.0, seen - (stored_total(db) - before)))
            if (i + 1) % 10 == 0:
                print(f"  {i + 1} kills: corrupt {corrupt}, lost per kill max {max(lost):.0f} "
                      f"mean {sum(lost) / len(lost):.1f}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    bound = rate * args.flush
    print(f"\ncrash loop: {args.kills} x SIGKILL at {rate:.0f} probes/s, flush every {args.flush:g}s, "
          f"{time.monotonic() - t_start:.0f}s in all")
    print(f"corrupt databases: {corrupt} (target 0) {'OK' if corrupt == 0 else 'MISSED'}")
    print(f"samples lost per kill: max {max(lost):.0f}, mean {sum(lost) / len(lost):.1f}, p50 "
          f"{sorted(lost)[len(lost) // 2]:.0f} (bound: one flush interval = {bound:.0f}) "
          f"{'OK' if max(lost) <= bound * 1.1 else 'MISSED'}")


if __name__ == "__main__":
    main()
