"""Evidence benchmark: the failure journal's size per target-year at 1 probe/s with 1 % failures, and the
time to export and to check offline the bundle of a month for 20 targets.

    python bench/evidence.py [--days 7] [--targets 20] [--vary 0,16,32] [--no-bundle]

The month's minute counts and its journal records come from the same simulated probes (the offline check
holds them against each other); records are made by the real journal sink from probe results and written
by the real store a minute at a time, with the simulated time, so that the chain seals them as the daemon
would; what is left unsealed is sealed as a clean stop does. Exits 1, with the problems, when a bundle's
offline check finds any.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
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
from agent.config import load_config  # noqa: E402
from agent.ledger import BELOW0_I, DOWN_I, LAT_I, UP_I  # noqa: E402
from agent.ledger.journal import Journal  # noqa: E402
from agent.probes import Detail, ProbeResult  # noqa: E402
from agent.report.bundle import export_bundle  # noqa: E402
from agent.report.unbundle import verify_bundle  # noqa: E402
from agent.store import Store  # noqa: E402

TZ = dt.timezone(dt.timedelta(hours=1))
MONTH_START = dt.datetime(2026, 10, 1, tzinfo=TZ).timestamp()
MONTH_END = dt.datetime(2026, 11, 1, tzinfo=TZ).timestamp()


# --vary N: records that vary as real ones do (a start to the microsecond, phases drawn per record, the Date of
# the response, a random request id of N hex digits); 0: the same every time but for the start
VARY = {"digits": 0, "rng": np.random.default_rng(3)}


def _result(name: str, t: float, fail: bool) -> ProbeResult:
    phases = (0.0, 0.001, 0.004, 0.08 if fail else 0.11, 0.005)
    request_id = f"{int(t * 1000):x}"
    if VARY["digits"]:
        rng = VARY["rng"]
        t += float(rng.integers(0, 1_000_000)) / 1e6
        phases = tuple(float(x) for x in rng.lognormal(np.log([1e-6, 9e-4, 3.5e-3, 0.07 if fail else 0.1, 4e-3]),
                                                       [0.1, 0.4, 0.3, 0.35, 0.5]))
        request_id = rng.bytes(VARY["digits"] // 2).hex()
    stamp = dt.datetime.fromtimestamp(t + sum(phases), dt.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    headers = (("Date", stamp), ("Server", "vendor-edge/1.2"), ("X-Request-Id", request_id))
    if fail:
        return ProbeResult(name, "api", t, 0.0, sum(phases), "down", "http_status", 503, phases,
                           error="HTTP 503 not in [200]", detail=Detail("192.0.2.10:443", headers,
                           b"<html><body><h1>503 Service Unavailable</h1>Please retry later.</body></html>",
                           "ab" * 32, 1024))
    return ProbeResult(name, "api", t, 0.0, sum(phases), "up", status=200, phases=phases,
                       latency_counted=True, detail=Detail("192.0.2.10:443", headers, b'{"status": "ok"}',
                                                           "ab" * 32, 1024))


def _hour_counts(fails: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """The minute counts of one target-hour, `fails` [minute, second] its failed probes, as the ledger
    stores them: a failure counts down (an HTTP status), an up result counts its latency, now and then
    above a threshold."""
    down = fails.sum(axis=1)
    arr = np.zeros((60, 6), dtype=np.uint16)
    arr[:, UP_I] = arr[:, LAT_I] = 60 - down
    arr[:, BELOW0_I] = np.maximum(arr[:, UP_I] - (rng.random(60) < 0.02), 0)
    arr[:, BELOW0_I + 1] = np.maximum(arr[:, UP_I] - (rng.random(60) < 0.005), 0)
    arr[:, DOWN_I] = down
    errors = {str(m): {"http_status": int(n)} for m, n in enumerate(down) if n}
    return arr.tobytes(), json.dumps(errors) if errors else ""


def fill_ledger(store: Store, names: list[str], start: float, seconds: int, rng: np.random.Generator,
                up_every: float = 60.0, fail_share: float = 0.01) -> int:
    """`seconds` (whole hours from an hour's start) of 1 probe/s per target, `fail_share` failing and an
    incident (five minutes down) in 1 % of the target-hours: the minute counts and the journal records of
    the same probes. The journal sink is fed only the results it can keep (the failures and each minute's
    first success); the others it drops unread. Records are written a minute at a time, an hour's counts
    once it ends, with the simulated time, so that the chain seals them as the daemon would."""
    journal = Journal(up_every=up_every)
    written = 0
    services = {n: "api" for n in names}
    for h0 in range(int(start), int(start) + seconds, 3600):
        fails = rng.random((60, 60, len(names))) < fail_share  # [minute, second, target]
        fails[:5, :, rng.random(len(names)) < 0.01] = True
        for m in range(60):
            t0 = h0 + 60 * m
            for i, name in enumerate(names):
                failed = fails[m, :, i]
                ups = np.flatnonzero(~failed)[:1].tolist()
                for k in sorted(ups + np.flatnonzero(failed).tolist()):
                    journal(_result(name, t0 + k, bool(failed[k])), False)
            records = journal.take()
            written += len(records)
            hours = [] if m < 59 else [(name, h0 // 3600, *_hour_counts(fails[:, :, i], rng))
                                       for i, name in enumerate(names)]
            store.write(hours, [], services, records=records, now=t0 + 60, location="paris")
            journal.written(records)
    return written


def fill_month(store: Store, targets: int, cal: Calendar, seed: int, up_every: float,
               fail_share: float = 0.01) -> int:
    """50 days to NOW of `targets` targets at 1 probe/s, sealed as a clean stop leaves them (a bundle holding a
    row outside the chain fails its check): 2026-10 with its journal (fill_ledger), the days around it and
    the digests as fill_store writes them. Returns the number of journal records."""
    n = fill_ledger(store, [f"t{t:03d}" for t in range(targets)], MONTH_START, int(MONTH_END - MONTH_START),
                    np.random.default_rng(seed + 100), up_every, fail_share)
    fill_store(store, targets, 50, cal, np.random.default_rng(seed), (MONTH_START, MONTH_END))
    store.seal_now(NOW)
    return n


def journal_size(days: int, up_every: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="sla-journal-"))
    try:
        store = Store(folder, thresholds=(0.5, 1.0), clock=lambda: NOW)
        t0 = time.perf_counter()
        n = fill_ledger(store, ["t000"], NOW - days * 86400, days * 86400, np.random.default_rng(1), up_every)
        took = time.perf_counter() - t0
        pages = dict(store.conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
        kept = store.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    packed = sum(v for k, v in pages.items() if k.startswith(("journal_blocks", "journal_profiles", "blobs",
                                                               "sqlite_autoindex_blobs")))
    rows = sum(v for k, v in pages.items() if k.startswith("journal") and not k.startswith(("journal_blocks",
                                                                                             "journal_profiles")))
    chain_bytes = sum(v for k, v in pages.items() if k.startswith(("chain", "seals")))
    per_day = n / days
    # the newest records, up to a day of them, may still be rows (packed once a day old): a year is the packed
    # rate for its records and at most a day of rows, not days x the rows' rate
    per_record = packed / max(n - kept, 1) if n > kept else rows / max(kept, 1)
    per_year = (per_record * per_day * 365 + (rows / kept * min(per_day, kept) if kept else 0)) / 1e6
    print(f"journal, 1 target at 1 probe/s, 1 % failures, an up record every {up_every:g} s, {days} days: {n} records "
          f"({per_day:.0f} a day), written in {took:.1f} s; {n - kept} packed ({per_record:.1f} bytes a record), "
          + (f"{kept} still rows ({rows / kept:.0f} bytes a record)" if kept else "none left as rows"))
    print(f"  per target-year: journal {per_year:.1f} MB + its chain {chain_bytes * 365 / days / 1e6:.1f} "
          f"MB; target journal <= 60 MB {'OK' if per_year <= 60 else 'MISSED'}")


def bundle_times(targets: int, up_every: float) -> list[str]:
    """Prints the export and verify times of the month's bundle; returns what its check found wrong."""
    folder = Path(tempfile.mkdtemp(prefix="sla-bundle-"))
    try:
        body = "\n".join(f'  - {{name: t{t:03d}, service: api, url: "https://127.0.0.1:9/", interval: 1s, '
                         f'timeout: 5s}}' for t in range(targets))
        (folder / "cfg.yaml").write_text(f"agent: {{location: paris}}\ntargets:\n{body}\n")
        cfg = load_config(folder / "cfg.yaml")
        store = Store(folder / "state", thresholds=cfg.contract.thresholds, clock=lambda: NOW)
        n = fill_month(store, targets, Calendar(cfg.contract), 5, up_every)
        store.close()
        t0 = time.perf_counter()
        export_bundle(cfg, str(folder / "state"), "2026-10", NOW, folder / "b.tar.gz")
        t1 = time.perf_counter()
        problems = verify_bundle(folder / "b.tar.gz", allow_unsigned=True).problems
        t2 = time.perf_counter()
        size = (folder / "b.tar.gz").stat().st_size
        print(f"bundle of 2026-10, {targets} targets, an up record every {up_every:g} s, {n} journal records: "
              f"export {t1 - t0:.2f} s, verify offline "
              f"{t2 - t1:.2f} s (target <= 8 s each) {'OK' if max(t1 - t0, t2 - t1) <= 8 else 'MISSED'}; "
              f"{size / 1e6:.1f} MB; {'verified' if not problems else f'{len(problems)} PROBLEMS'}")
        return problems
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--targets", type=int, default=20)
    ap.add_argument("--up-every", default="60,600", help="seconds between up records, one bundle each")
    ap.add_argument("--vary", default="0", help="hex digits of a random request id, comma-separated: the journal's "
                    "size with records that vary as real ones do, for each (0: records as alike as can be)")
    ap.add_argument("--no-bundle", action="store_true", help="the journal's size only")
    args = ap.parse_args()
    for digits in (int(x) for x in args.vary.split(",")):
        VARY["digits"] = digits
        for up_every in (float(x) for x in args.up_every.split(",")):
            print(f"[records {'varying, request ids of %d hex digits' % digits if digits else 'alike'}]")
            journal_size(args.days, up_every)
    VARY["digits"] = 0
    if args.no_bundle:
        return
    failed = 0
    for up_every in (float(x) for x in args.up_every.split(",")):
        problems = bundle_times(args.targets, up_every)
        failed += bool(problems)
        print("".join(f"  PROBLEM: {p}\n" for p in problems), end="", file=sys.stderr, flush=True)
    if failed:  # the figures of a bundle that does not verify measure a broken bench: it must not pass
        sys.exit(f"FAILED: the offline check of {failed} bundle(s) found problems (above)")


if __name__ == "__main__":
    main()
