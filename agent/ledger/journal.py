"""The failure journal's records waiting to be written: every `down` and `inconclusive` result, at most
`per_minute` a target-minute and then the minute's last one (the minute counts stay exact beyond), and the
first `up` result of each target every `up_every` seconds (a minute by default) as proof of health on the
same terms. A sink of the result pipeline; the store writes what take() hands over at each flush.

The last failure of a minute tells when an outage was last seen (what a vendor is shown of when it
ended): beyond the cap, the latest-started failure of the minute is held, and handed over once no result
can land in the minute any more (`settle` after it ends: slo.settle_of), one record more a minute.

What it holds is bounded in bytes (`held_bound`), written or not: while writes fail (a full disk) records
wait here, and beyond the bound a new record is kept without its body and files, and beyond that again
is not kept at all; both are counted. The records are evidence beside the counts, never the counts."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..probes.base import UP, Detail, ProbeResult

HELD_BYTES = 32 << 20  # records held, waiting to be written or being written
# a record's own objects, and each header's, beside their text (a down record with three headers: 816 bytes
# measured by tracemalloc, 841 counted)
RECORD_BYTES, HEADER_BYTES = 512, 64


@dataclass(frozen=True, slots=True)
class Record:
    target: str
    at: float  # wall-clock start, epoch seconds
    outcome: str
    error_kind: str
    status: int | None
    error: str
    duration_s: float
    phases: tuple[float, ...] | None
    detail: Detail | None
    masked: bool

    def size(self) -> int:
        """Bytes held for it, about."""
        d = self.detail
        held = RECORD_BYTES + len(self.error)
        if d is not None:
            held += len(d.address) + len(d.body) + sum(len(data) for _, data in d.artifacts)
            held += sum(HEADER_BYTES + len(k) + len(v) for k, v in d.headers)
        return held

    def without_body(self) -> "Record":
        d = self.detail
        if d is None or not (d.body or d.artifacts):
            return self
        return dataclasses.replace(self, detail=dataclasses.replace(d, body=b"", artifacts=()))


class Journal:
    def __init__(self, per_minute: int = 20, up_every: float = 60.0, settle: float = 0.0,
                 held_bound: int = HELD_BYTES) -> None:
        self.per_minute = per_minute
        self.up_every = up_every
        self.settle = settle
        self.held_bound = held_bound
        self.pending: list[Record] = []
        self.held = 0  # bytes of the records pending or being written, and of the minutes' last failures held
        self.dropped = 0  # failure records beyond per_minute (and not the minute's last), counted only
        self.bodies_dropped = 0  # records kept without their body and files: the bound was reached
        self.records_dropped = 0  # records not kept at all: the bound was reached without their bodies too
        # (target, minute) -> [failures kept, the latest-started one beyond them (a Record, in `held`) or None]
        self._minutes: dict[tuple[str, int], list] = {}
        self._up: dict[str, int] = {}  # target -> the span whose up record is kept

    def __call__(self, r: ProbeResult, masked: bool) -> None:
        if r.outcome == UP:
            if r.detail is None or self.up_every <= 0:
                return
            span = int(r.started_at // self.up_every)
            if self._up.get(r.target) != span:
                self._up[r.target] = span
                self._append(r, masked)
            return
        st = self._minutes.setdefault((r.target, int(r.started_at // 60)), [0, None])
        if st[0] < self.per_minute:
            st[0] += 1
            self._append(r, masked)
            return
        self.dropped += 1  # this one or the one it replaces as the minute's last; the last is kept at take()
        last = st[1]
        if last is None or r.started_at >= last.at:
            if last is not None:
                self.held -= last.size()
            st[1] = self._fit(_record(r, masked))
            self.dropped -= st[1] is None  # counted among the records dropped instead

    def add(self, record: Record) -> None:
        """A record that is no probe's result (a path traced after a failure), held as the others are."""
        kept = self._fit(record)
        if kept is not None:
            self.pending.append(kept)

    def _append(self, r: ProbeResult, masked: bool) -> None:
        self.add(_record(r, masked))

    def _fit(self, record: Record) -> Record | None:
        """The record as held within the bound (without its body and files when whole it would pass it),
        counted in `held`; None when it does not fit even so."""
        size = record.size()
        if self.held + size > self.held_bound:
            bare = record.without_body()
            if self.held + bare.size() > self.held_bound:
                self.records_dropped += 1
                return None
            self.bodies_dropped += bare is not record
            record, size = bare, bare.size()
        self.held += size
        return record

    def release(self) -> None:
        """No result will come any more (the agent stops): the next take() hands over all that is held."""
        self.settle = -math.inf

    def take(self, now: float = math.inf) -> list[Record]:
        """The records to write, with the last failure of each minute no result can land in by `now` (all
        of them by default: at the last flush); they stay held until written() or put_back()."""
        for key in [k for k in self._minutes if (k[1] + 1) * 60 + self.settle <= now]:
            last = self._minutes.pop(key)[1]
            if last is not None:  # held already
                self.dropped -= 1
                self.pending.append(last)
        out, self.pending = self.pending, []
        return out

    def written(self, records: list[Record]) -> None:
        self.held -= sum(r.size() for r in records)

    def put_back(self, records: list[Record]) -> None:
        """After a failed write: they are written first at the next flush."""
        self.pending[:0] = records


def _record(r: ProbeResult, masked: bool) -> Record:
    return Record(r.target, r.started_at, r.outcome, r.error_kind, r.status, r.error, r.duration_s, r.phases,
                  r.detail, masked)
