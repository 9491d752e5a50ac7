"""The ledger: the single source of truth for the SLA.

Per target, per epoch minute, exact counts (uint16 columns):
  UP, DOWN, INCONCLUSIVE, LAT_N (the latency population), then BELOW_i: requests strictly faster than
  threshold i (0.5 s, 1 s by default); and the error kinds of the down probes of each minute.
Per target, per hour, a t-digest (fastdigest) of the latency population; hours of finished local days
are merged into one digest per day (quantiles are shown beside the verdict, never decide it).

Minutes cover the last `hot_days` days per target (minutes.py: the last two dense, older days compressed);
older data is read back from the store. Closed digests are held compressed as well (digest.py).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from fastdigest import TDigest

from ..probes.base import DOWN, INCONCLUSIVE, UP, ProbeResult
from .digest import Held, blob, freeze, merge, merge_chunked, new, thaw
from .minutes import DTYPE, MinuteStore

UP_I, DOWN_I, INC_I, LAT_I, BELOW0_I = 0, 1, 2, 3, 4
HOUR = 3600
DAY = 86400


def nfields(thresholds: tuple[float, ...]) -> int:
    return BELOW0_I + len(thresholds)


@dataclass
class TargetSeries:
    name: str
    service: str
    nf: int
    capacity: int  # minutes
    first: int = -1  # epoch minute the window starts at (hour aligned); -1 until the first sample
    minutes: MinuteStore = field(init=False)
    hour_digests: dict[int, Held] = field(default_factory=dict)  # epoch hour -> digest (closed ones frozen)
    day_digests: dict[int, Held] = field(default_factory=dict)  # local day start (epoch s) -> digest (frozen)
    errors: dict[int, Counter] = field(default_factory=dict)  # epoch minute -> error_kind counts of down probes
    hour_errors: dict[int, Counter] = field(default_factory=dict)  # epoch hour -> counts kept per hour only
    newest_hour: int = -1  # the hour samples arrive in now; every older digest is "closed"
    newest_minute: int = -1
    version: int = 0  # bumped when a closed digest changes (late sample, compaction, restore)
    merged: dict[tuple, TDigest] = field(default_factory=dict)  # window key -> merge of its closed digests

    def __post_init__(self) -> None:
        self.minutes = MinuteStore(self.nf, self.capacity, self.first)

    @property
    def base(self) -> int:
        """Epoch minute of the window's first row."""
        return self.minutes.base

    @property
    def data(self) -> np.ndarray:
        """The whole window as one array (a copy: for inspection, not for writing)."""
        return self.minutes.block(self.base, self.base + self.capacity)


class Ledger:
    def __init__(self, thresholds: tuple[float, ...], *, day_start: Callable[[float], float],
                 hot_days: int = 33, digest_days: int = 9) -> None:
        self.thresholds = tuple(thresholds)
        self.nf = nfields(self.thresholds)
        self.day_start = day_start
        self.capacity = hot_days * 1440
        self.digest_days = digest_days
        self.series: dict[str, TargetSeries] = {}
        self.dirty_hours: set[tuple[str, int]] = set()
        self.dirty_digests: set[tuple[str, int, int]] = set()  # (target, start, span)
        self.dropped_old = 0  # samples older than the hot window (a wall clock far in the past)
        self.old_writes = 0  # samples written far behind their target's newest one
        self.final_before = 0  # epoch minute: the counts before it are final (sealed in the store, or about to be)
        self.refused_final = 0  # results refused because their minute was final already
        self.compacted_before = 0.0  # local day start: hours before it live in day digests
        self._anchor_base = -1

    def anchor(self, now: float) -> None:
        """Places the hot window so that `now` sits one day before its end (call before restoring)."""
        self._anchor_base = (int(now // 60) // 60) * 60 - (self.capacity - 1440)
        for s in self.series.values():
            if s.base < 0:
                s.minutes.base = self._anchor_base

    # -- registration ------------------------------------------------------------------------------
    def ensure(self, target: str, service: str) -> TargetSeries:
        s = self.series.get(target)
        if s is None:
            s = self.series[target] = TargetSeries(target, service, self.nf, self.capacity, self._anchor_base)
        else:
            s.service = service
        return s

    # -- ingest (hot path) -------------------------------------------------------------------------
    def add(self, r: ProbeResult, masked: bool = False) -> None:
        minute = int(r.started_at // 60)
        if minute < self.final_before:  # the agent's clock never goes back: only a defect gets here
            self.refused_final += 1
            return
        s = self.series.get(r.target) or self.ensure(r.target, r.service)
        if minute > s.newest_minute:
            s.newest_minute = minute
        elif minute < s.newest_minute - 15:
            self.old_writes += 1  # far behind the newest sample: a wall-clock jump back (cached days are stale)
        row = self._row(s, minute)
        if row is None:
            self.dropped_old += 1
            return
        outcome = r.outcome
        if outcome == UP:
            row[UP_I] += 1
        elif outcome == DOWN:
            row[DOWN_I] += 1
            errs = s.errors.get(minute)
            if errs is None:
                errs = s.errors[minute] = Counter()
            errs[r.error_kind] += 1
        else:
            row[INC_I] += 1
        if r.latency_counted and outcome != INCONCLUSIVE:
            d = r.duration_s
            row[LAT_I] += 1
            for i, th in enumerate(self.thresholds):
                if d < th:
                    row[BELOW0_I + i] += 1
            if not masked:
                hour = minute // 60
                self._digest(s, hour).update(d)
                if hour < s.newest_hour:
                    s.version += 1  # a closed bucket changed: a merge made meanwhile is stale
        self.dirty_hours.add((r.target, minute // 60))

    def _row(self, s: TargetSeries, minute: int) -> np.ndarray | None:
        m = s.minutes
        i = minute - m.hot_base
        if 0 <= i < m.hot_rows:  # where results land: the dense days
            return m.hot[i]
        if m.base < 0:
            m.base = (minute // 60) * 60 - (self.capacity - 1440)  # room behind for restored history
        return m.row(minute)

    def _digest(self, s: TargetSeries, hour: int) -> TDigest:
        """The digest a latency sample of `hour` goes into, live (a frozen one thaws: a late sample)."""
        start = hour * HOUR
        if start < self.compacted_before:
            s.version += 1
            day = int(self.day_start(start))
            d = s.day_digests.get(day)
            if type(d) is not TDigest:  # none yet, or frozen
                d = s.day_digests[day] = new() if d is None else thaw(d)
            self.dirty_digests.add((s.name, day, DAY))
            return d
        if hour > s.newest_hour:
            closed = s.hour_digests.get(s.newest_hour)
            if isinstance(closed, TDigest):
                s.hour_digests[s.newest_hour] = freeze(closed)
            s.newest_hour = hour
        elif hour < s.newest_hour:
            s.version += 1  # a late sample for a closed hour
        d = s.hour_digests.get(hour)
        if type(d) is not TDigest:  # none yet, or frozen (a late sample)
            d = s.hour_digests[hour] = new() if d is None else thaw(d)
        self.dirty_digests.add((s.name, start, HOUR))
        return d

    # -- reading ------------------------------------------------------------------------------------
    def matrix(self, target: str, m0: int, m1: int) -> np.ndarray:
        """Counts for epoch minutes [m0, m1) (zeros where nothing is known). A read-only view of the
        ledger when the range is in memory: evaluation copies nothing."""
        s = self.series.get(target)
        if s is None:
            return np.zeros((max(0, m1 - m0), self.nf), dtype=DTYPE)
        return s.minutes.block(m0, m1)

    def digests(self, target: str, start: float, end: float) -> list[TDigest]:
        """The target's latency sketch over buckets starting in [start, end) (whole days for compacted
        data, hours otherwise), as at most two digests: the merge of every closed bucket, cached until
        the set of buckets or a closed bucket changes, and the open hour's digest.

        Merging a week of hourly digests for 100 targets at every evaluation took seconds and held the
        GIL (fastdigest's merge runs in one call), stalling the probe loop; with the cache each
        evaluation merges a few digests per target."""
        s = self.series.get(target)
        if s is None:
            return []
        version, newest = s.version, s.newest_hour  # read first: a change during the merge makes it stale
        day_items = sorted((day, d) for day, d in list(s.day_digests.items())
                           if start <= day < end or (day <= start < day + DAY and day < end))
        hour_items = sorted((h, d) for h, d in list(s.hour_digests.items()) if start <= h * HOUR < end)
        closed = [(h, d) for h, d in hour_items if h != newest]
        key = (tuple(day for day, _ in day_items), tuple(h for h, _ in closed), version)
        merged = s.merged.get(key)
        if merged is None:
            merged = merge_chunked([thaw(d) for _, d in day_items] + [thaw(d) for _, d in closed])
            if s.version == version and s.newest_hour == newest:
                if len(s.merged) >= 2:  # the live windows: current period, rolling 7 days
                    s.merged.pop(next(iter(s.merged)))
                s.merged[key] = merged
        out = [merged]
        out += [thaw(d) for h, d in hour_items if h == newest]
        return out

    # -- maintenance ------------------------------------------------------------------------------
    def compact(self, now: float) -> list[tuple[str, int, list[int]]]:
        """Merges the hourly digests of finished local days into day digests; drops old days.
        Returns (target, day_start, [hours merged]) so the store can do the same."""
        today = int(self.day_start(now))
        done: list[tuple[str, int, list[int]]] = []
        for s in self.series.values():
            by_day: dict[int, list[int]] = {}
            for h in s.hour_digests:
                if h * HOUR < today:
                    by_day.setdefault(int(self.day_start(h * HOUR)), []).append(h)
            for day, hours in by_day.items():
                s.version += 1
                parts = [thaw(s.hour_digests.pop(h)) for h in hours]
                if day in s.day_digests:
                    parts.append(thaw(s.day_digests[day]))
                s.day_digests[day] = freeze(merge(parts))
                self.dirty_digests.add((s.name, day, DAY))
                for h in hours:
                    self.dirty_digests.discard((s.name, h * HOUR, HOUR))
                done.append((s.name, day, hours))
            horizon = today - self.digest_days * DAY
            for day in [d for d in s.day_digests if d < horizon]:
                del s.day_digests[day]
                self.dirty_digests.discard((s.name, day, DAY))
            for m in [m for m in s.errors if m < s.base]:
                del s.errors[m]
            for h in [h for h in s.hour_errors if h * 60 < s.base]:
                del s.hour_errors[h]
            s.minutes.freeze()
            _freeze_closed(s)
        self.compacted_before = today
        return done

    # -- persistence helpers ------------------------------------------------------------------------
    def hour_blob(self, target: str, hour: int) -> tuple[bytes, str] | None:
        s = self.series.get(target)
        if s is None or s.base < 0 or not s.base <= hour * 60 <= s.base + self.capacity - 60:
            return None
        errors = {str(m - hour * 60): dict(c) for m in range(hour * 60, hour * 60 + 60) if (c := s.errors.get(m))}
        if hour in s.hour_errors:
            errors["h"] = dict(s.hour_errors[hour])
        rows = s.minutes.block(hour * 60, hour * 60 + 60)
        return rows.tobytes(), json.dumps(errors, sort_keys=True) if errors else ""

    def load_hour(self, target: str, service: str, hour: int, counts: np.ndarray, errors: dict) -> bool:
        s = self.ensure(target, service)
        m = hour * 60
        if s.base < 0:
            s.minutes.base = m - (self.capacity - 1440)
        if not s.minutes.write(m, counts):
            return False
        self.old_writes += 1  # restored history: nothing cached about it is valid
        for key, kinds in minute_errors(errors).items():
            if key == "h":
                s.hour_errors[hour] = Counter(kinds)
            else:
                s.errors[hour * 60 + int(key)] = Counter(kinds)
        return True

    def load_digest(self, target: str, service: str, start: int, span: int, digest: Held) -> None:
        """A stored digest: a TDigest, or the zlib-compressed to_bytes() the store keeps (held as is)."""
        s = self.ensure(target, service)
        s.version += 1
        s.newest_hour = max(s.newest_hour, start // HOUR)
        held = digest if isinstance(digest, bytes) else freeze(digest)
        if span == DAY:
            s.day_digests[start] = held
        else:
            s.hour_digests[start // HOUR] = held

    def mark_all_dirty(self) -> None:
        """Every hour and digest held in memory is to be written again (the database was lost)."""
        for s in self.series.values():
            self.dirty_hours.update((s.name, h) for h in s.minutes.hours_with_data())
            self.dirty_digests.update((s.name, h * HOUR, HOUR) for h in s.hour_digests)
            self.dirty_digests.update((s.name, d, DAY) for d in s.day_digests)

    def take_dirty(self) -> tuple[list[tuple[str, int, bytes, str]], list[tuple[str, int, int, bytes]]]:
        """Snapshots what changed since the last call (cheap: runs on the loop), for the store to write."""
        hours = []
        for target, hour in sorted(self.dirty_hours):  # a closed day's hours in a row: decompressed once
            held = self.hour_blob(target, hour)
            if held is not None:
                hours.append((target, hour, held[0], held[1]))
        digests = []
        for target, start, span in self.dirty_digests:
            s = self.series.get(target)
            if s is None:
                continue
            d = s.day_digests.get(start) if span == DAY else s.hour_digests.get(start // HOUR)
            if d is not None:
                digests.append((target, start, span, blob(d)))
        self.dirty_hours = set()
        self.dirty_digests = set()
        return hours, digests


def _freeze_closed(s: TargetSeries) -> None:
    """Digests a late sample thawed are frozen again; only the open hour's stays live."""
    for book in (s.day_digests, s.hour_digests):
        for key, d in book.items():
            if isinstance(d, TDigest) and not (book is s.hour_digests and key == s.newest_hour):
                book[key] = freeze(d)


def minute_errors(errors: dict) -> dict[str, dict[str, int]]:
    """A stored hour's error kinds by minute offset ("0" to "59"); "h" holds counts known only per hour
    (rows written before error kinds were kept per minute: {kind: n})."""
    if errors and all(isinstance(v, int) for v in errors.values()):
        return {"h": errors}
    return errors
