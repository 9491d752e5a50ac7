"""Do a ledger's minute counts and its failure journal agree? Both come from the same results at the same
flush (one transaction), so they must, whoever holds the file: the chain is not keyed, and one edited
without the other is the mark of a forgery (minute counts rewritten, records deleted).

The journal keeps every failed probe of a target-minute up to `evidence.failures_per_minute`, then the
minute's last one (ledger/journal.py), and the first successful probe every `sample_up_every`. So, in each
whole minute of the span:
- records of an outcome never outnumber the probes the minute counts with that outcome (each record is a
  counted result: a down record lies in a minute that counts it);
- failure records number at least min(failed probes counted, failures_per_minute) (an agent restarted within
  the minute keeps more: the cap starts again; a held last failure lost in a crash keeps one fewer at most,
  above the cap).
A record stored on a minute's first microsecond may be a probe counted in the minute before (its start is
rounded to the microsecond): it is let count in either."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..calendar import iso
from ..config.model import Config
from ..ledger import DOWN_I, INC_I, UP_I, nfields
from ..store import Store

OUTCOMES = {"up": UP_I, "down": DOWN_I, "inconclusive": INC_I}
SHOWN = 10
MAX_MINUTES = 32 * 1440  # a month and the settle after it; a crafted scope is not unpacked into memory


def count_mismatches(store: Store, cfg: Config, start: float, until: float, outcomes: tuple[str, ...],
                     tz: Any) -> tuple[list[str], list[str]]:
    """Where the minute counts and the journal disagree in the whole minutes of [start, until), and what
    could not be checked; `outcomes`: those the journal of this ledger keeps (an extract may hold the
    failures only, or none). A span without a single record (a ledger written without the journal, or
    before it existed) is only said: nothing there to hold the counts against."""
    try:
        m0, m1 = int(-(-float(start) // 60)), int(float(until) // 60)
    except (TypeError, ValueError, OverflowError):
        return [f"the extract's scope is not a span of time ({start!r} to {until!r})"], []
    if m1 - m0 > MAX_MINUTES:
        return [f"the extract's journal spans {(m1 - m0) / 1440:.0f} days, more than a month: not checked"], []
    if m1 <= m0:
        return [], []
    found = _records(store, m0, m1)
    if not found:
        return [], ["the ledger holds no journal record for the month: its minute counts are not checked against "
                    "the journal" + ("" if outcomes else " (the extract was made without it)")]
    nf, cap = nfields(cfg.contract.thresholds), cfg.evidence.failures_per_minute
    shown: list[str] = []  # a forged month disagrees in every minute: only the first few are worded
    total = 0
    for name in sorted(set(found) | {t.name for t in cfg.all_targets}):
        counts = store.matrix(name, m0, m1, nf).astype(np.int64)
        recs, edges = found.get(name, np.zeros((2, 3, m1 - m0 + 1), dtype=np.int64))
        for o, (outcome, col) in enumerate(OUTCOMES.items()):
            more = _more(recs[o], edges[o], counts[:, col])
            total += len(more)
            shown += [f"{name}, {iso((m0 + i) * 60, tz)}: {recs[o, i]} {outcome} records in the journal, but the "
                      f"minute counts {counts[i, col]} {outcome} probes" for i in more[:SHOWN - len(shown)]]
        if "down" in outcomes and cfg.evidence.journal:
            failed = counts[:, DOWN_I] + counts[:, INC_I]
            kept, need = recs[1, :-1] + recs[2, :-1], np.minimum(failed, cap)
            short = np.flatnonzero((kept < need) & (kept + edges[1, 1:] + edges[2, 1:] < need))
            total += len(short)
            shown += [f"{name}, {iso((m0 + i) * 60, tz)}: the minute counts {failed[i]} failed probes, but the journal "
                      f"holds {kept[i]} failure records (at least {need[i]}: evidence.failures_per_minute {cap})"
                      for i in short[:SHOWN - len(shown)]]
    if total > len(shown):
        shown.append(f"and {total - len(shown)} more disagreements of the minute counts with the journal")
    return shown, []


def _records(store: Store, m0: int, m1: int) -> dict[str, np.ndarray]:
    """Per target: [records, those on the minute's first microsecond][outcome][minute of m0..m1]."""
    found: dict[str, np.ndarray] = {}
    for name, rows in store.journal_per_minute(m0 * 60, m1 * 60 + 1e-6).items():
        arr = found[name] = np.zeros((2, 3, m1 - m0 + 1), dtype=np.int64)
        arr[:, :, rows[:, 0] - m0] = rows[:, 1:].T.reshape(2, 3, -1)
    return found


def _more(recs: np.ndarray, edges: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """The minutes with more records than counted probes, beyond what those on their first microsecond
    explain (each of them counted in the minute before, which has room for it)."""
    excess = recs[:-1] - counted
    room = np.concatenate(([np.iinfo(np.int64).max], counted[:-1] - recs[:-2]))  # before m0: unknown, let be
    return np.flatnonzero((excess > 0) & ((excess > edges[:-1]) | (excess > room)))
