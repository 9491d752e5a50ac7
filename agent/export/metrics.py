"""Prometheus metrics: live per-probe series, and SLO gauges built at scrape time from a snapshot."""
from __future__ import annotations

import platform
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..ledger import QUANTILES
from ..probes.base import DOWN, INCONCLUSIVE, PHASES, UP, ProbeResult
from ..slo import Snapshot, objective_name, threshold_label

# `_created` series double the exposition of every counter and histogram and no rule here uses them.
disable_created_metrics()

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Five phase buckets: 5 phases x every target is most of the exposition; finer phase quantiles come
# from the per-target duration histogram and the report's t-digest.
PHASE_BUCKETS = (0.005, 0.025, 0.1, 0.5, 2.5)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Bound:
    """The label children of one target, bound once so the hot path does no label lookups."""

    __slots__ = ("outcome", "counted", "duration", "phases", "success", "errors", "expiry", "skipped", "late")

    def __init__(self, m: "LiveMetrics", service: str, target: str, phases: tuple[str, ...] = PHASES) -> None:
        lv = (service, target) + m.extra_values
        self.outcome = {o: m.probes.labels(service, target, o, *m.extra_values) for o in (UP, DOWN, INCONCLUSIVE)}
        self.counted = {o: m.counted.labels(service, target, o, *m.extra_values) for o in (UP, DOWN)}
        self.duration = m.duration.labels(*lv)
        # only the phases a probe of this target can have: no dns series for an IP literal, no tls for http
        self.phases = [m.phase.labels(service, target, p, *m.extra_values) if p in phases else None for p in PHASES]
        self.success = m.success.labels(*lv)
        self.errors = lambda kind: m.errors.labels(service, target, kind, *m.extra_values)
        self.expiry = lambda: m.expiry.labels(*lv)
        self.skipped = m.skipped.labels(*lv)
        self.late = m.late.labels(*lv)


class LiveMetrics:
    def __init__(self, registry: CollectorRegistry, location: str = "") -> None:
        self.registry = registry
        extra = ("location",) if location else ()
        self.extra_values: tuple[str, ...] = (location,) if location else ()
        st = ("service", "target") + extra
        self.probes = Counter("sla_probes", "Every probe, by outcome (up, down, inconclusive).",
                              ("service", "target", "outcome") + extra, registry=registry)
        self.counted = Counter("sla_counted_probes", "Probes that count toward the SLA: up or down, outside "
                               "maintenance and exclusion windows.", ("service", "target", "outcome") + extra,
                               registry=registry)
        self.errors = Counter("sla_probe_errors", "Failed probes by error kind.",
                              ("service", "target", "error_kind") + extra, registry=registry)
        self.duration = Histogram("sla_probe_duration_seconds", "Total duration of the probes in the latency "
                                  "population (sent, answered or timed out; not masked, not inconclusive).",
                                  st, buckets=DURATION_BUCKETS, registry=registry)
        self.phase = Histogram("sla_probe_phase_duration_seconds", "Duration of each phase of a probe.",
                               ("service", "target", "phase") + extra, buckets=PHASE_BUCKETS, registry=registry)
        self.success = Gauge("sla_probe_success", "1 when the last probe was up, 0 when down.", st, registry=registry)
        self.expiry = Gauge("sla_tls_cert_expiry_timestamp_seconds", "Expiry of the target's certificate.", st,
                            registry=registry)
        self.skipped = Counter("sla_agent_ticks_skipped", "Ticks that found the previous probe still in flight.",
                               st, registry=registry)
        self.late = Counter("sla_agent_ticks_late", "Ticks missed because the event loop was late.", st,
                            registry=registry)
        self.slices = Counter("sla_slices", "Closed one-minute slices per service, by state.",
                              ("service", "state") + extra, registry=registry)
        self.loop_lag = Histogram("sla_agent_loop_lag_seconds", "Event-loop lag measured every 25 ms.",
                                  buckets=LAG_BUCKETS, registry=registry)
        self.in_flight = Gauge("sla_agent_probes_in_flight", "Probes running now.", registry=registry)
        self.throttle_waits = Counter("sla_agent_throttle_waits", "Probes delayed by the global rate limit.",
                                      registry=registry)
        self.write_errors = Counter("sla_state_write_errors", "Failed writes of the ledger to the state database.",
                                    registry=registry)
        self.flushes = Counter("sla_state_flushes", "Ledger flushes to the state database.", registry=registry)
        self.last_flush = Gauge("sla_state_last_flush_timestamp_seconds", "When the ledger was last written.",
                                registry=registry)
        self.integrity_failures = Gauge("sla_state_integrity_failures", "State databases found corrupt at start "
                                        "and moved aside (kept, not deleted).", registry=registry)
        self.reloads = Counter("sla_agent_config_reloads", "Configuration reloads by result.", ("result",),
                               registry=registry)
        self.ready = Gauge("sla_agent_ready", "1 once the state is restored and the first probes are done.",
                           registry=registry)
        info = Gauge("sla_agent_build_info", "Version of the agent.", ("version", "python") + extra, registry=registry)
        info.labels(__version__, platform.python_version(), *self.extra_values).set(1)
        self._bound: dict[str, _Bound] = {}

    def bind(self, service: str, target: str, phases: tuple[str, ...] = PHASES) -> _Bound:
        b = self._bound.get(target)
        if b is None:
            b = self._bound[target] = _Bound(self, service, target, phases)
        return b

    def forget(self, service: str, target: str) -> None:
        """Removes a target's series (after a reload that dropped it)."""
        self._bound.pop(target, None)
        for metric in (self.duration, self.success, self.expiry, self.skipped, self.late):
            try:
                metric.remove(service, target, *self.extra_values)
            except KeyError:
                pass

    def observe(self, r: ProbeResult, masked: bool) -> None:
        b = self._bound.get(r.target) or self.bind(r.service, r.target)
        b.outcome[r.outcome].inc()
        if r.outcome == INCONCLUSIVE:
            if r.error_kind == "skipped":
                b.skipped.inc()
            elif r.error_kind == "agent_overload" and r.duration_s == 0.0:
                b.late.inc()
            return
        if r.outcome == DOWN:
            b.errors(r.error_kind).inc()
        b.success.set(1 if r.outcome == UP else 0)
        if not masked:
            b.counted[r.outcome].inc()
            if r.latency_counted:
                b.duration.observe(r.duration_s)
        if r.phases is not None:
            for child, value in zip(b.phases, r.phases):
                if child is not None:
                    child.observe(value)
        if r.tls_not_after is not None:
            b.expiry().set(r.tls_not_after)


class TargetInfoCollector(Collector):
    """`sla_target_info{service,target,url,...} 1`: each target's URL (secrets redacted) and the extra
    labels of its config, to join onto the per-target series (`* on (target) group_left(team)`)."""

    def __init__(self, targets: Callable[[], Iterable], redact: Callable[[str], str], location: str = "") -> None:
        self.targets = targets
        self.redact = redact
        self.location = location

    def describe(self) -> Iterable:
        return []

    def collect(self) -> Iterable[Metric]:
        m = Metric("sla_target_info", "The probed targets, with their configured extra labels.", "gauge")
        for t in self.targets():
            labels = {"service": t.service, "target": t.name, "url": self.redact(t.url), "type": t.type,
                      **dict(t.labels)}
            if self.location:
                labels["location"] = self.location
            m.add_sample("sla_target_info", labels, 1.0)
        return [m]


class SloCollector(Collector):
    """Builds the SLA gauges at scrape time from the latest snapshot (computed off the hot path)."""

    def __init__(self, snapshot: Callable[[], Snapshot | None], maintenance_active: Callable[[], bool],
                 tickets: Callable[[], dict[str, dict]], location: str = "") -> None:
        self.snapshot = snapshot
        self.maintenance_active = maintenance_active
        self.tickets = tickets
        self.extra = ("location",) if location else ()
        self.extra_values = [location] if location else []

    def describe(self) -> Iterable:
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        x, xv = self.extra, self.extra_values
        avail = GaugeMetricFamily("sla_availability_ratio", "Availability: up slices / (up + down slices).",
                                  labels=("service", "window") + x)
        cov = GaugeMetricFamily("sla_coverage_ratio", "Observed share of eligible (unmasked) slices.",
                                labels=("service", "window") + x)
        below = GaugeMetricFamily("sla_latency_below_ratio", "Exact share of requests strictly below the threshold.",
                                  labels=("service", "threshold", "window") + x)
        # a summary, not a gauge: a `quantile` label is only legal on summaries (promtool lints it)
        quant = Metric("sla_latency_quantile_seconds", "Latency quantiles from the t-digest of the window.",
                       "summary")
        met = GaugeMetricFamily("sla_objective_met", "1 met, 0 missed (absent without data).",
                                labels=("service", "objective", "window") + x)
        budget = GaugeMetricFamily("sla_error_budget_remaining_ratio", "1 untouched, 0 spent, < 0 overspent.",
                                   labels=("service", "objective", "window") + x)
        budget_s = GaugeMetricFamily("sla_error_budget_remaining_seconds", "Down time left before the "
                                     "availability objective is missed.", labels=("service", "window") + x)
        burn = GaugeMetricFamily("sla_burn_rate", "Error rate over the window / allowed error rate.",
                                 labels=("service", "objective", "window") + x)
        maint = GaugeMetricFamily("sla_maintenance_active", "1 inside a maintenance or exclusion window.",
                                  labels=x)
        maint.add_metric(xv, 1.0 if self.maintenance_active() else 0.0)
        snap = self.snapshot()
        if snap is not None:
            for svc, s in snap.services.items():
                for window, a in s.availability.items():
                    lv = [svc, window] + xv
                    if a.ratio is not None:
                        avail.add_metric(lv, a.ratio)
                        met.add_metric([svc, "availability", window] + xv, 1.0 if a.ratio >= a.objective else 0.0)
                        burn.add_metric([svc, "availability", window] + xv, a.burn_rate() or 0.0)
                    if a.coverage is not None:
                        cov.add_metric(lv, a.coverage)
                    if a.budget_remaining_ratio is not None:
                        budget.add_metric([svc, "availability", window] + xv, a.budget_remaining_ratio)
                    budget_s.add_metric(lv, a.budget_remaining_s)
                for window, lat in s.latency.items():
                    for th, f, ok, rem in zip(lat.thresholds, lat.fractions(), lat.objective_met,
                                              lat.budget_remaining()):
                        if f is None:
                            continue
                        below.add_metric([svc, threshold_label(th), window] + xv, f)
                        met.add_metric([svc, objective_name(th), window] + xv, 1.0 if ok else 0.0)
                        if rem is not None:
                            budget.add_metric([svc, objective_name(th), window] + xv, rem)
                    if lat.sketch_count:
                        base = {"service": svc, "window": window, **dict(zip(x, xv))}
                        for q in QUANTILES:
                            v = lat.quantiles.get(f"{q:g}")
                            if v is not None:
                                quant.add_sample("sla_latency_quantile_seconds", {**base, "quantile": f"{q:g}"}, v)
                        quant.add_sample("sla_latency_quantile_seconds_sum", base, lat.sketch_sum)
                        quant.add_sample("sla_latency_quantile_seconds_count", base, float(lat.sketch_count))
        tratio = GaugeMetricFamily("sla_ticket_response_met_ratio", "Share of tickets answered in time.",
                                   labels=("priority", "window") + x)
        tcount = GaugeMetricFamily("sla_tickets", "Tickets opened in the window by response state.",
                                   labels=("priority", "state", "window") + x)
        for prio, row in sorted(self.tickets().items()):
            if row.get("ratio") is not None:
                tratio.add_metric([prio, "month"] + xv, row["ratio"])
            for state in ("met", "missed", "pending"):
                tcount.add_metric([prio, state, "month"] + xv, row.get(state, 0))
        return [avail, cov, below, quant, met, budget, budget_s, burn, maint, tratio, tcount]
