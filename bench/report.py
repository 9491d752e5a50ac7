"""Report benchmark: a month's report for 20 targets probed at 1 probe/s, from the stored ledger.

    python bench/report.py [--targets 20]
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger import NOW, fill_store  # noqa: E402

from agent.calendar import Calendar  # noqa: E402
from agent.config import parse_config  # noqa: E402
from agent.report import build_report  # noqa: E402
from agent.report import render  # noqa: E402
from agent.store import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--targets", type=int, default=20)
    args = ap.parse_args()
    body = "\n".join(f'  - {{name: t{t:03d}, service: {"api" if t % 2 else "web"}, url: "https://127.0.0.1:9/", '
                     f'interval: 1s, timeout: 5s}}' for t in range(args.targets))
    cfg = parse_config(f"targets:\n{body}\n")
    cal = Calendar(cfg.contract)
    folder = Path(tempfile.mkdtemp(prefix="sla-report-bench-"))
    try:
        store = Store(folder, thresholds=cfg.contract.thresholds)
        fill_store(store, args.targets, 50, cal, np.random.default_rng(5))
        store.close()
        month_start = dt.datetime.fromtimestamp(NOW, cal.tz).replace(day=1) - dt.timedelta(days=1)
        month = f"{month_start.year:04d}-{month_start.month:02d}"
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            doc = build_report(cfg, str(folder), month, NOW)
            t1 = time.perf_counter()
            render(doc, "html")
            times.append((t1 - t0, time.perf_counter() - t1))
        best = min(times)
        ok = best[0] + best[1] <= 2.0
        print(f"report {month}, {args.targets} targets at 1 probe/s: build {best[0]:.2f} s + HTML {best[1]:.2f} s "
              f"(target <= 2 s) {'OK' if ok else 'MISSED'}; rows {[r['verdict'] for r in doc['rows']]}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
