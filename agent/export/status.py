"""/api/v1/status: per service and target, the current outcome and the SLA figures.

It reads a small read-only view the daemon hands over (StatusSource), never the daemon itself."""
from __future__ import annotations

from typing import Any, Protocol

from ..calendar import Calendar, iso
from ..config.model import Config
from ..slo import OBJECTIVE_CLASSES, Snapshot


class StatusSource(Protocol):
    @property
    def cfg(self) -> Config: ...

    @property
    def cal(self) -> Calendar: ...

    @property
    def snapshot(self) -> Snapshot | None: ...

    def now(self) -> float: ...

    def last(self, target: str) -> Any:
        """The target's state: .last (its last result), .outcome and .since (its up/down state)."""

    def redact(self, text: str) -> str: ...

    def health(self) -> dict[str, Any]:
        """The `agent` and `state` sections: the agent's own counters and the ledger's write state."""


def _put(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc.setdefault(key, {})
    doc[path[-1]] = value


def objectives_document(snap: Snapshot | None, services: tuple[str, ...], tz: Any) -> dict[str, Any]:
    """Every objective's live windows where it says they go (services.<svc>.<kind>.<window>, tickets...)."""
    doc: dict[str, Any] = {"services": {s: {cls.kind: {} for cls in OBJECTIVE_CLASSES.values() if cls.per_service}
                                        for s in services}, "tickets": {}}
    for objective, results in snap.results if snap is not None else ():
        for window, result in results.items():
            _put(doc, objective.status_key(window), objective.status(window, result, tz))
    return doc


def _target(src: StatusSource, t: Any, tz: Any) -> dict[str, Any]:
    st = src.last(t.name)
    r = st.last if st else None
    return {
        "service": t.service,
        "url": src.redact(t.address),
        "control": t.control,
        "labels": dict(t.labels),
        "outcome": r.outcome if r else None,
        "error_kind": (r.error_kind or None) if r else None,
        "error": (r.error or None) if r else None,
        "status": r.status if r else None,
        "duration_s": round(r.duration_s, 6) if r else None,
        "at": iso(r.started_at, tz) if r else None,
        "state_since": iso(st.since, tz) if st and st.outcome else None,
    }


def status_document(src: StatusSource) -> dict[str, Any]:
    cfg, cal, snap = src.cfg, src.cal, src.snapshot
    tz, now = cal.tz, src.now()
    active = cal.active(now)
    objectives = objectives_document(snap, cfg.services, tz)
    return {
        "now": iso(now, tz),
        "timezone": cfg.contract.timezone,
        "evaluated_at": iso(snap.now, tz) if snap else None,
        "maintenance_active": active is not None,
        "maintenance": active.to_dict(tz) if active else None,
        "services": objectives["services"] if snap else {},
        "targets": {t.name: _target(src, t, tz) for t in cfg.all_targets},
        "tickets": objectives["tickets"],
        **src.health(),
    }
