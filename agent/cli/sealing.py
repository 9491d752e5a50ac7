"""What lies outside the chain, as the commands say it: `evidence verify`'s verdict over the rows no seal
covers, and `evidence seal` on a stopped agent's state directory."""
from __future__ import annotations

import argparse
import sys

from ..calendar import Calendar
from ..config import Config
from ..slo import seal_delay_of
from ..store import Store, StoreError
from ..store.lock import StateLock, in_use
from ..store.verify import Outside
from .common import EXIT_INPUT, EXIT_OK, EXIT_RUNTIME, err, load, state_dir

UNCOVERED = "outside the chain: an edit of them cannot be found"
WHY = {"month": "the month asked about holds rows not sealed",
       "running": "the running agent should have sealed these by now: is it writing?",
       "stopped": "no agent runs here and a clean stop seals every row: was it killed? `sla-agent evidence "
                  "seal` seals them now (vouching for them as they are now)"}


def print_outside(path: str, stats: dict[str, int], found: list[Outside], cal: Calendar, scope: str,
                  failing: bool = False) -> int:
    """The rows outside the chain, and the verdict: exit 0 only when nothing mismatched (`failing`), every row
    asked about is sealed (on a running agent without --month: but for the recent rows it has not had to
    seal yet, listed as not covered), and something was checked at all: a sealed row of the month asked
    about, or else a link of the chain (a chain whose seals cover no row any more, every ticket removed,
    still proves that)."""
    for o in found:
        if o.provisional:
            print(f"{path}: sealed at a stop before final: {o.text(cal.tz)} (the agent seals them final once they are "
                  f"final, and until then may reopen them, which the chain records)")
        elif scope == "running" and not o.due:
            print(f"{path}: NOT COVERED YET: {o.text(cal.tz)}, the recent past: {UNCOVERED} until the running agent "
                  f"seals them")
        else:
            failing = True
            late = f" ({o.due} of them due)" if scope == "running" else ""
            print(f"{path}: NOT SEALED: {o.text(cal.tz)}{late}: {UNCOVERED}; {WHY[scope]}", file=sys.stderr)
    checked = sum(v for k, v in stats.items() if k != "links") or (scope != "month" and stats["links"])
    counts = ", ".join(f"{k} {v}" for k, v in stats.items())
    if not checked:
        print(f"{path}: NOTHING VERIFIED: no sealed row {'in the month' if scope == 'month' else 'yet'} "
              f"({counts})", file=sys.stderr)
        return EXIT_RUNTIME
    if failing:
        return EXIT_RUNTIME
    print(f"{path}: verified: {counts}" + ("; every row asked about is sealed" if all(o.provisional for o in found)
                                          else "; the recent rows listed above are NOT covered yet"))
    return EXIT_OK


def _sealed(cfg: Config, state: str, now: float) -> tuple[list[Outside], list[Outside]]:
    """Seals what a stopped agent left unsealed, holding the agent's own lock (it cannot start meanwhile;
    StoreError when it runs: it seals its rows itself). Returns what lay outside the chain before and after."""
    lock = StateLock(state)
    lock.acquire()
    try:
        store = Store(state, thresholds=cfg.contract.thresholds)
        store.seal_delay = seal_delay_of(cfg)
        try:
            before = store.outside()
            store.seal_now(now)
            return before, store.outside()
        finally:
            store.close()
    finally:
        lock.release()


def cmd_seal(args: argparse.Namespace, now: float) -> int:
    """`evidence seal`: on a stopped agent's state directory, seal what its stop did not."""
    cfg = load(args)
    if cfg is None:
        return EXIT_INPUT
    try:
        before, left = _sealed(cfg, state_dir(args, cfg), now)
    except StoreError as exc:
        err(f"{exc}. A running agent seals its rows itself, and all of them when it stops")
        return EXIT_RUNTIME
    cal = Calendar(cfg.contract)
    final = sum(o.count for o in before if o.provisional) - sum(o.count for o in left if o.provisional)
    for o in before:
        if not o.provisional:
            print(f"sealed now: {o.text(cal.tz)} (not sealed before: the chain vouches for them as they are now)")
    if final:
        print(f"sealed final: {final} rows sealed at a stop before they were final")
    for o in left:
        print(f"sealed at a stop before final: {o.text(cal.tz)} (sealed final by the next agent, or the next "
              f"`evidence seal`, once final)")
    print("every row written is sealed" if any(not o.provisional for o in before) or final else "nothing to seal")
    return EXIT_OK
