"""The failure journal's records waiting to be written: every `down` and `inconclusive` result, at most
`per_minute` a target-minute and then the minute's last one (the minute counts stay exact beyond), and the
first `up` result of each target every `up_every` seconds (a minute by default) as proof of health on the
same terms. A sink of the result pipeline; the store writes what take() hands over at each flush.

The last failure of a minute tells when an outage was last seen (what a vendor is shown of when it
ended): beyond the cap, the latest-started failure of the minute is held, and handed over once no result
can land in the minute any more (`settle` after it ends: slo.settle_of), one record more a minute."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..probes.base import UP, Detail, ProbeResult

MAX_PENDING = 500_000  # records held while writes fail; beyond, new ones are counted as dropped


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


class Journal:
    def __init__(self, per_minute: int = 20, up_every: float = 60.0, settle: float = 0.0) -> None:
        self.per_minute = per_minute
        self.up_every = up_every
        self.settle = settle
        self.pending: list[Record] = []
        self.dropped = 0  # failure records beyond per_minute (or while writes fail), counted only
        # (target, minute) -> [failures kept, the latest-started one beyond them (result, masked) or None]
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
        self.dropped += 1  # until kept
        if st[0] < self.per_minute and len(self.pending) < MAX_PENDING:
            st[0] += 1
            self._append(r, masked)
        elif st[0] >= self.per_minute and (st[1] is None or r.started_at >= st[1][0].started_at):
            st[1] = (r, masked)

    def _append(self, r: ProbeResult, masked: bool) -> None:
        if r.outcome != UP:
            self.dropped -= 1
        self.pending.append(Record(r.target, r.started_at, r.outcome, r.error_kind, r.status, r.error, r.duration_s,
                                   r.phases, r.detail, masked))

    def release(self) -> None:
        """No result will come any more (the agent stops): the next take() hands over all that is held."""
        self.settle = -math.inf

    def take(self, now: float = math.inf) -> list[Record]:
        """The records to write, with the last failure of each minute no result can land in by `now` (all
        of them by default: at the last flush)."""
        for key in [k for k in self._minutes if (k[1] + 1) * 60 + self.settle <= now]:
            last = self._minutes.pop(key)[1]
            if last is not None and len(self.pending) < MAX_PENDING:
                self._append(*last)
        out, self.pending = self.pending, []
        return out
