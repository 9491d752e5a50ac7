"""The failure journal's records waiting to be written: every `down` and `inconclusive` result, at most
`per_minute` a target-minute (the minute counts stay exact beyond), and the first `up` result of each
target every `up_every` seconds (a minute by default) as proof of health on the same terms. A sink of
the result pipeline; the store writes what take() hands over at each flush."""
from __future__ import annotations

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
    def __init__(self, per_minute: int = 20, up_every: float = 60.0) -> None:
        self.per_minute = per_minute
        self.up_every = up_every
        self.pending: list[Record] = []
        self.dropped = 0  # failure records beyond per_minute (or while writes fail), counted only
        self._minute: dict[str, list[int]] = {}  # target -> [minute, failures kept]
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
        minute = int(r.started_at // 60)
        st = self._minute.get(r.target)
        if st is None or st[0] != minute:
            st = self._minute[r.target] = [minute, 0]
        if st[1] >= self.per_minute or len(self.pending) >= MAX_PENDING:
            self.dropped += 1
            return
        st[1] += 1
        self._append(r, masked)

    def _append(self, r: ProbeResult, masked: bool) -> None:
        self.pending.append(Record(r.target, r.started_at, r.outcome, r.error_kind, r.status, r.error, r.duration_s,
                                   r.phases, r.detail, masked))

    def take(self) -> list[Record]:
        out, self.pending = self.pending, []
        return out
