"""What lies outside the chain, as the commands say it: `evidence verify`'s verdict over the rows no seal
covers, `evidence seal` on a stopped agent's state directory, and the rule that a report or bundle of a
closed month is made from rows sealed final only (sealed first where this command may, else refused)."""
from __future__ import annotations

import argparse
import datetime as dt
import sys

from ..calendar import Calendar
from ..config import Config
from ..report.build import open_store
from ..slo import seal_delay_of
from ..store import Store, StoreError
from ..store.lock import StateLock, in_use
from ..store.verify import Outside
from ..timeutil import parse_month
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
    rows = (v for k, v in stats.items() if k not in ("links", "time-stamps") and isinstance(v, int))  # not facts
    checked = sum(rows) or (scope != "month" and stats["links"])
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


def _not_final(cfg: Config, state: str, start: float, end: float) -> list[Outside]:
    store = open_store(cfg, state)
    try:
        return store.outside(start, end)
    finally:
        store.close()


def unsealed_month(cfg: Config, state: str, month: str, now: float) -> list[Outside]:
    """A closed month's rows not sealed final (none for a month under way), sealed first when no agent runs
    on the state directory (this command owns the ledger then): raises ReportError when unreadable."""
    start, end = Calendar(cfg.contract).month_bounds(*parse_month(month))
    if end > now:
        return []
    found = _not_final(cfg, state, start, end)
    if found and not in_use(state):
        try:
            _sealed(cfg, state, now)
        except StoreError as exc:  # started meanwhile, or a state directory this user cannot write
            err(f"cannot seal the month's rows first: {exc}")
            return found
        found = _not_final(cfg, state, start, end)
    return found


def refuse_unsealed(cfg: Config, state: str, found: list[Outside], month: str, what: str) -> None:
    """Names a closed month's rows not sealed final, and why the `what` (a report, a bundle) is refused."""
    cal, delay = Calendar(cfg.contract), seal_delay_of(cfg)
    for o in found:
        final = dt.datetime.fromtimestamp(o.last + delay, cal.tz).isoformat(timespec="seconds")
        err(f"NOT SEALED: {o.text(cal.tz)}" + (f" (sealed at a stop, but final only at {final})" if o.provisional
                                                 else ""))
    who = "the running agent seals them final once they are final" if in_use(state) else \
        "they are sealed final once final (at the time named: run this again then)"
    err(f"{month} is closed, and its {what} is made from rows sealed final only: {who}")
