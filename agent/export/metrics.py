"""Prometheus metrics: the live per-probe series and the agent's own health, bound once per target."""
from __future__ import annotations

import platform
from bisect import bisect_left
from typing import Any, Callable, Collection, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.values import MutexValue

from .. import __version__
from ..probes.base import DOWN, INCONCLUSIVE, UP, ProbeResult
from .exposition import Family, Registry

# `_created` series double the exposition of every counter and histogram and no rule here uses them.
disable_created_metrics()

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Five phase buckets: 5 phases x every target is most of the exposition; finer phase quantiles come
# from the per-target duration histogram and the report's t-digest.
PHASE_BUCKETS = (0.005, 0.025, 0.1, 0.5, 2.5)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Bound:
    """The label children of one target, bound once so the hot path does no label lookups: those every
    result moves are held as their values (see _add), those of rarer results are made at first use."""

    __slots__ = ("m", "service", "target", "outcome", "counted", "duration", "phases", "success", "skipped", "late",
                 "keyed", "add", "put")

    def __init__(self, m: "LiveMetrics", service: str, target: str, phases: tuple[str, ...],
                 applicable: Collection[str]) -> None:
        lv = (service, target) + m.extra_values
        self.m, self.service, self.target = m, service, target
        outcome = {o: m.probes.labels(service, target, o, *m.extra_values) for o in (UP, DOWN, INCONCLUSIVE)}
        counted = {o: m.counted.labels(service, target, o, *m.extra_values) for o in (UP, DOWN)}
        duration = m.duration.labels(*lv)
        # one child per phase of the target's type, in the type's order (the order of a result's phases);
        # only the phases a probe of this target can have get a series: no dns for an IP literal...
        phase = [(i, m.phase.labels(service, target, p, *m.extra_values)) for i, p in enumerate(phases)
                 if p in applicable]
        success, skipped, late = m.success.labels(*lv), m.skipped.labels(*lv), m.late.labels(*lv)
        self.outcome = {o: c._value for o, c in outcome.items()}
        self.counted = {o: c._value for o, c in counted.items()}
        self.duration = _parts(duration)
        self.phases = [(i, *_parts(c)) for i, c in phase]
        self.success, self.skipped, self.late = success._value, skipped._value, late._value
        self.keyed: dict[tuple[str, str], Any] = {}
        histograms = [duration, *(c for _, c in phase)]
        values = [*self.outcome.values(), *self.counted.values(), self.success, self.skipped, self.late,
                  *(v for h in histograms for v in (*h._buckets, h._sum))]
        direct = all(type(v) is MutexValue for v in values)
        self.add, self.put = (_add, _put) if direct else (_add_locked, _put_locked)

    def child(self, metric: str, key: str = "") -> Any:
        """The child of a series only some results move (an error kind, a token result, a mark...)."""
        c = self.keyed.get((metric, key))
        if c is None:
            m = getattr(self.m, metric)
            keys = (key,) if key else ()
            c = self.keyed[(metric, key)] = m.labels(self.service, self.target, *keys, *self.m.extra_values)
        return c


def _parts(h: Histogram) -> tuple[list[float], list[Any], Any]:
    """A histogram child's bounds, its buckets' values and its sum's value."""
    return h._upper_bounds, h._buckets, h._sum


# The hot path moves the values of prometheus_client's children itself, as their own inc(), set() and
# observe() do, without the checks and the lock each of those takes: every result passes through the pipeline
# on the event loop, the only writer of a target's series; a render reads the same floats (exposition.Family).
# In the library's multiprocess mode (other value objects) their own methods are called.
def _add(value: Any, amount: float) -> None:
    value._value += amount


def _put(value: Any, amount: float) -> None:
    value._value = amount


def _add_locked(value: Any, amount: float) -> None:
    value.inc(amount)


def _put_locked(value: Any, amount: float) -> None:
    value.set(amount)


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
        self.tokens = Counter("sla_auth_token_requests", "Requests to a target's OAuth2 token endpoint, by result "
                              "(ok, error); never part of the measured latency.", ("service", "target", "result") + extra,
                              registry=registry)
        self.token_duration = Histogram("sla_auth_token_request_duration_seconds", "Duration of the requests to "
                                        "a target's OAuth2 token endpoint.", st, buckets=DURATION_BUCKETS,
                                        registry=registry)
        self.marks = Histogram("sla_probe_mark_seconds", "Instants within a probe, from its start: a browser "
                               "check's largest contentful paint (mark=lcp).", ("service", "target", "mark") + extra,
                               buckets=DURATION_BUCKETS, registry=registry)
        self.slices = Counter("sla_slices", "Closed one-minute slices per service, by state.",
                              ("service", "state") + extra, registry=registry)
        self.loop_lag = Histogram("sla_agent_loop_lag_seconds", "Event-loop lag measured every 25 ms.",
                                  buckets=LAG_BUCKETS, registry=registry)
        self.in_flight = Gauge("sla_agent_probes_in_flight", "Probes running now.", registry=registry)
        self.throttle_waits = Counter("sla_agent_throttle_waits", "Probes delayed by the global rate limit.",
                                      registry=registry)
        self._state(registry)
        self.reloads = Counter("sla_agent_config_reloads", "Configuration reloads by result.", ("result",),
                               registry=registry)
        self.ready = Gauge("sla_agent_ready", "1 once the state is restored and the first probes are done.",
                           registry=registry)
        info = Gauge("sla_agent_build_info", "Version of the agent.", ("version", "python") + extra, registry=registry)
        info.labels(__version__, platform.python_version(), *self.extra_values).set(1)
        self._bound: dict[str, _Bound] = {}
        self._caught: dict[str, int] = {}  # counts kept elsewhere (catch_up), as last added to their metric
        # Each target's version moves after every change of its series (observe), to a value never
        # used before: the exposition formats a target's lines again only then (exposition.Family).
        self.versions: dict[str, int] = {}
        self._changes = 0
        if isinstance(registry, Registry):
            self._prebuild(registry, info)

    def _prebuild(self, registry: Registry, info: Gauge) -> None:
        """The registry keeps these series' text (exposition.Family)."""
        for metric in (self.probes, self.counted, self.errors, self.duration, self.phase, self.success,
                       self.expiry, self.skipped, self.late, self.tokens, self.token_duration, self.marks):
            registry.prebuild(metric, Family(metric, self.versions).parts)
        # the agent's own few series change all the time: formatted at each render, with no versions
        for metric in (self.slices, self.loop_lag, self.in_flight, self.throttle_waits, self.write_errors,
                       self.flushes, self.last_flush, self.integrity_failures, self.ledger_lost, self.clock_steps,
                       self.clock_ahead, self.journal_dropped, self.journal_held, self.paths, self.refused,
                       self.reloads, self.ready, info):
            registry.prebuild(metric, Family(metric, None).parts)

    def catch_up(self, key: str, counter: Any, total: int) -> None:
        """Brings a counter up to a count kept elsewhere (the journal's drops, the paths traced...)."""
        if total > self._caught.get(key, 0):
            counter.inc(total - self._caught.get(key, 0))
            self._caught[key] = total

    def _state(self, registry: CollectorRegistry) -> None:
        """The agent's own clock and the ledger's database."""
        self.write_errors = Counter("sla_state_write_errors", "Failed writes of the ledger to the state database.",
                                    registry=registry)
        self.flushes = Counter("sla_state_flushes", "Ledger flushes to the state database.", registry=registry)
        self.last_flush = Gauge("sla_state_last_flush_timestamp_seconds", "When the ledger was last written.",
                                registry=registry)
        self.integrity_failures = Gauge("sla_state_integrity_failures", "State databases found corrupt at start "
                                        "and moved aside (kept, not deleted).", registry=registry)
        self.ledger_lost = Counter("sla_state_ledger_lost", "Times the ledger file was found deleted or replaced "
                                   "while the agent ran (a new one is written from memory).", registry=registry)
        self.clock_steps = Counter("sla_agent_clock_steps_back", "Times the system clock was seen to step back (at "
                                   "start: to be behind the latest instant the ledger holds).", registry=registry)
        self.clock_ahead = Gauge("sla_agent_clock_ahead_seconds", "How far the agent's clock, which never goes "
                                 "back, runs ahead of the system clock (0 when it follows it).", registry=registry)
        self.journal_dropped = Counter("sla_state_journal_dropped", "Journal bodies (part=body: the record is kept "
                                       "without them) and whole records (part=record) dropped because the records "
                                       "waiting to be written passed their bound; the counts stay exact.", ("part",),
                                       registry=registry)
        self.journal_held = Gauge("sla_state_journal_held_bytes", "Bytes of journal records waiting to be written.",
                                  registry=registry)
        self.paths = Counter("sla_agent_paths", "Paths to failing targets traced into the journal (result=traced), "
                             "and failures not traced because a trace was under way or had just begun "
                             "(result=not_traced).", ("result",), registry=registry)
        self.refused = Counter("sla_state_sealed_refused", "Probe results (part=result) and stored rows (part=row) "
                               "refused because their minute was sealed already.", ("part",), registry=registry)

    def bind(self, service: str, target: str, phases: tuple[str, ...] = (),
             applicable: Collection[str] | None = None) -> _Bound:
        """Binds a target's series: `phases` are its type's, `applicable` those its probes can have."""
        b = self._bound.get(target)
        if b is not None and b.service != service:  # moved to another service by a reload: its old series go
            self.forget(b.service, target)
            b = None
        if b is None:
            b = self._bound[target] = _Bound(self, service, target, phases,
                                             phases if applicable is None else applicable)
        return b

    def forget(self, service: str, target: str) -> None:
        """Removes every series of a target (after a reload that dropped it): those by outcome, phase, error
        kind, token result or mark too, which would otherwise stay in the exposition for good."""
        self._bound.pop(target, None)
        for metric in (self.probes, self.counted, self.errors, self.duration, self.phase, self.success, self.expiry,
                       self.skipped, self.late, self.tokens, self.token_duration, self.marks):
            metric.remove_by_labels({"service": service, "target": target})
        # moved, not dropped: the exposition sees the target's lines change
        self._changes += 1
        self.versions[target] = self._changes

    def observe(self, r: ProbeResult, masked: bool) -> None:
        """The pipeline's sink: one result into the live series."""
        try:
            self._observe(r, masked)
        finally:  # after the change (exposition.Family says why)
            self._changes += 1
            self.versions[r.target] = self._changes

    def _observe(self, r: ProbeResult, masked: bool) -> None:
        b = self._bound.get(r.target) or self.bind(r.service, r.target)
        add = b.add
        add(b.outcome[r.outcome], 1.0)
        for request in r.token_requests:
            b.child("tokens", request.result).inc()
            b.child("token_duration").observe(request.duration_s)
        if r.outcome == INCONCLUSIVE:
            if r.error_kind == "skipped":
                add(b.skipped, 1.0)
            elif r.error_kind == "agent_overload" and r.duration_s == 0.0:
                add(b.late, 1.0)
            return
        if r.outcome == DOWN:
            b.child("errors", r.error_kind).inc()
        b.put(b.success, 1 if r.outcome == UP else 0)
        if not masked:
            add(b.counted[r.outcome], 1.0)
            if r.latency_counted:
                _observe(add, *b.duration, r.duration_s)
        if r.phases is not None:
            phases = r.phases
            for i, bounds, buckets, total in b.phases:
                _observe(add, bounds, buckets, total, phases[i])
        for mark, value in r.marks:
            b.child("marks", mark).observe(value)
        if r.tls_not_after is not None:
            b.child("expiry").set(r.tls_not_after)


def _observe(add: Callable[[Any, float], None], bounds: list[float], buckets: list[Any], total: Any,
             value: float) -> None:
    """Histogram.observe(value) on a child's parts: the first bucket whose bound is not below it, and the sum."""
    if value == value:  # NaN falls in no bucket, as in the library
        add(buckets[bisect_left(bounds, value)], 1.0)
    add(total, value)


class TicketFeedMetrics:
    """The health of the scheduled ticket import (`tickets:`): registered when a feed is configured."""

    def __init__(self, registry: CollectorRegistry, location: str = "") -> None:
        extra = ("location",) if location else ()
        self.registry = registry
        self.values = (location,) if location else ()
        self.fetches = Counter("sla_tickets_fetches", "Fetches of the support tool's export, by result (ok, error).",
                               ("result",) + extra, registry=registry)
        self.errors = Counter("sla_tickets_fetch_errors", "Failed fetches by reason (network, timeout, auth, http, "
                              "too_large, invalid, store, error); the stored tickets are kept.", ("reason",) + extra,
                              registry=registry)
        self.success = Gauge("sla_tickets_fetch_success", "1 when the last fetch was imported, 0 when not.", extra,
                             registry=registry)
        self.last_success = Gauge("sla_tickets_fetch_last_success_timestamp_seconds", "When an export was last "
                                  "imported.", extra, registry=registry)
        self.in_export = Gauge("sla_tickets_fetch_tickets", "Tickets in the last export imported.", extra,
                               registry=registry)

    def unregister(self) -> None:
        """The feed is gone from the config: its series go too (no stale 0 left to alert on)."""
        for m in (self.fetches, self.errors, self.success, self.last_success, self.in_export):
            self.registry.unregister(m)

    def observe(self, result: Any, now: float) -> None:
        """One fetch's outcome (tickets/feed.FetchResult)."""
        v = self.values
        self.fetches.labels("ok" if result.ok else "error", *v).inc()
        if not result.ok:
            self.errors.labels(result.reason, *v).inc()
        _gauge(self.success, v).set(1 if result.ok else 0)
        if result.ok:
            _gauge(self.last_success, v).set(now)
            _gauge(self.in_export, v).set(result.tickets)


class WitnessMetrics:
    """Deliveries of the chain's checkpoint to witnesses (`evidence.witnesses`): registered when some are named."""

    def __init__(self, registry: CollectorRegistry, location: str = "") -> None:
        extra = ("location",) if location else ()
        self.values = (location,) if location else ()
        self.pushes = Counter("sla_witness_pushes", "Checkpoint deliveries to witnesses by kind (webhook, email; "
                              "checkpoint: none could be made) and result (ok, error).", ("kind", "result") + extra,
                              registry=registry)
        self.last_success = Gauge("sla_witness_last_success_timestamp_seconds", "When a checkpoint was last "
                                  "delivered to a witness of this kind.", ("kind",) + extra, registry=registry)

    def observe(self, push: Any, now: float) -> None:
        """One delivery's outcome (notify/witness.Push)."""
        self.pushes.labels(push.kind, "ok" if push.ok else "error", *self.values).inc()
        if push.ok:
            self.last_success.labels(push.kind, *self.values).set(now)


class DeliveryMetrics:
    """Deliveries of closed months' reports (`reports.deliver`, notify/deliver.py), by channel (email, webhook)."""

    def __init__(self, registry: CollectorRegistry, location: str = "") -> None:
        extra = ("location",) if location else ()
        self.values = (location,) if location else ()
        self.deliveries = Counter("sla_report_deliveries", "Attempts at delivering a closed month's report by channel "
                                  "(email, webhook) and result (ok, error; gave_up: failing for a day, left).",
                                  ("channel", "result") + extra, registry=registry)
        self.last_success = Gauge("sla_report_delivery_last_success_timestamp_seconds", "When a report was last "
                                  "delivered on this channel.", ("channel",) + extra, registry=registry)
        self.failing_since = Gauge("sla_report_delivery_failing_since_timestamp_seconds", "When the delivery not "
                                   "yet made on this channel first failed; 0 when none is failing.",
                                   ("channel",) + extra, registry=registry)

    def observe(self, channel: str, result: str, now: float, failing_since: float) -> None:
        self.deliveries.labels(channel, result, *self.values).inc()
        if result == "ok":
            self.last_success.labels(channel, *self.values).set(now)
        self.failing(channel, failing_since)

    def failing(self, channel: str, since: float) -> None:
        self.failing_since.labels(channel, *self.values).set(since)


class TimestampMetrics:
    """The time-stamping of the chain's head (`evidence.timestamping`), by authority: registered when configured."""

    def __init__(self, registry: CollectorRegistry, location: str = "") -> None:
        extra = ("location",) if location else ()
        self.registry, self.values = registry, (location,) if location else ()
        self.tokens = Counter("sla_evidence_timestamps", "Time-stamp tokens of the chain's head stored, by authority.",
                              ("tsa",) + extra, registry=registry)
        self.failures = Counter("sla_evidence_timestamp_failures", "Failed time-stamp attempts by authority and reason "
                                "(network, timeout, http, too_large, invalid, store, error); each is tried again.",
                                ("tsa", "reason") + extra, registry=registry)
        self.last_success = Gauge("sla_evidence_timestamp_last_success_timestamp_seconds", "When the authority's "
                                  "last token was stored (at start: the last one in the ledger, else the start).",
                                  ("tsa",) + extra, registry=registry)

    def prime(self, tsas: Iterable[str], now: float, stored: list[dict[str, Any]]) -> None:
        last = {t["tsa"]: t["at"] for t in stored}
        for tsa in tsas:
            self.tokens.labels(tsa, *self.values)
            self.last_success.labels(tsa, *self.values).set(last.get(tsa, now))

    def unregister(self) -> None:
        for m in (self.tokens, self.failures, self.last_success):
            self.registry.unregister(m)

    def observe(self, result: Any, now: float) -> None:
        """One attempt's outcome (timestamping/stamper.StampResult); an empty chain had nothing to stamp."""
        if result.ok or result.reason == "empty":
            self.tokens.labels(result.tsa, *self.values).inc(1 if result.ok else 0)
            self.last_success.labels(result.tsa, *self.values).set(now)
        else:
            self.failures.labels(result.tsa, result.reason, *self.values).inc()


def _gauge(g: Gauge, values: tuple[str, ...]) -> Gauge:
    """The gauge itself, or its child for the location label."""
    return g.labels(*values) if values else g
