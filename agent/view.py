"""The read-only face of the daemon that the status page reads (export/status.StatusSource)."""
from __future__ import annotations

from typing import Any

from .calendar import Calendar
from .config import Config
from .slo import Snapshot

class AgentView:
    """What the status page may see of the agent: its config and calendar, the latest snapshot, each
    target's state, and its own health."""

    def __init__(self, agent: Any) -> None:  # the app's Agent (typed loosely: the app imports this module)
        self._agent = agent

    @property
    def cfg(self) -> Config:
        return self._agent.cfg

    @property
    def cal(self) -> Calendar:
        return self._agent.cal

    @property
    def snapshot(self) -> Snapshot | None:
        return self._agent.snapshot

    def now(self) -> float:
        return self._agent.clock.time()

    def last(self, target: str) -> Any:
        return self._agent.states.get(target)

    def redact(self, text: str) -> str:
        return self._agent.redact(text)

    def health(self) -> dict[str, Any]:
        a = self._agent
        flusher = a.flusher
        return {"agent": {"loop_lag_max_s": round(a.lag.max_lag, 6), "gc_pauses_over_bound": a.lag.gc_pauses,
                          "samples_dropped_too_old": a.ledger.dropped_old, "results_seen": a.pipeline.seen},
                "state": {"path": str(a.store.path) if a.store else None,
                          "write_failing": flusher.failing if flusher else False,
                          "last_error": flusher.last_error if flusher else None}}
