"""/api/v1/status: per service and target, the current outcome and the SLA figures."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..calendar import iso
from ..slo import Snapshot

if TYPE_CHECKING:  # pragma: no cover
    from ..app import Agent


def snapshot_document(snap: Snapshot | None, tz) -> dict[str, Any]:
    if snap is None:
        return {}
    out: dict[str, Any] = {}
    for svc, s in snap.services.items():
        doc: dict[str, Any] = {"availability": {}, "latency": {}}
        for window, a in s.availability.items():
            doc["availability"][window] = {"start": iso(a.start, tz), "end": iso(a.end, tz), **a.to_dict()}
        for window, lat in s.latency.items():
            rem = lat.budget_remaining()
            d = {"start": iso(lat.start, tz), "end": iso(lat.end, tz), **lat.to_dict()}
            for (key, b), r in zip(d["below"].items(), rem):
                b["budget_remaining_ratio"] = None if r is None else round(r, 6)
            doc["latency"][window] = d
        out[svc] = doc
    return out


def status_document(agent: "Agent") -> dict[str, Any]:
    tz = agent.cal.tz
    now = agent.clock.time()
    targets: dict[str, Any] = {}
    for t in agent.cfg.all_targets:
        st = agent.states.get(t.name)
        r = st.last if st else None
        targets[t.name] = {
            "service": t.service,
            "url": agent.redact(t.url),
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
    snap = agent.snapshot
    active = agent.cal.active(now)
    return {
        "now": iso(now, tz),
        "timezone": agent.cfg.contract.timezone,
        "evaluated_at": iso(snap.now, tz) if snap else None,
        "maintenance_active": active is not None,
        "maintenance": active.to_dict(tz) if active else None,
        "services": snapshot_document(snap, tz),
        "targets": targets,
        "tickets": agent.tickets_summary,
        "agent": {"loop_lag_max_s": round(agent.lag.max_lag, 6), "gc_pauses_over_bound": agent.lag.gc_pauses,
                  "samples_dropped_too_old": agent.ledger.dropped_old, "results_seen": agent.results_seen},
        "state": {"path": str(agent.store.path) if agent.store else None,
                  "write_failing": agent._write_failing, "last_error": agent.last_flush_error},
    }
