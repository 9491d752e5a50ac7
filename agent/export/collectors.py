"""Series built at scrape time: the SLA figures of the latest snapshot (each objective says which samples
stand for it), and one info series per target."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Callable, Iterable, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ..slo import Snapshot
from .exposition import Pace, text_of

# The SLA families, in exposition order: (name, type, help). Objectives add samples to them.
FAMILIES = (
    ("sla_availability_ratio", "gauge", "Availability: up slices / (up + down slices)."),
    ("sla_coverage_ratio", "gauge", "Observed share of eligible (unmasked) slices."),
    ("sla_latency_below_ratio", "gauge", "Exact share of requests strictly below the threshold."),
    # a summary, not a gauge: a `quantile` label is only legal on summaries (promtool lints it)
    ("sla_latency_quantile_seconds", "summary", "Latency quantiles from the t-digest of the window."),
    ("sla_objective_met", "gauge", "1 met, 0 missed (absent without data)."),
    ("sla_error_budget_remaining_ratio", "gauge", "1 untouched, 0 spent, < 0 overspent."),
    ("sla_error_budget_remaining_seconds", "gauge", "Down time left before the availability objective is missed."),
    ("sla_burn_rate", "gauge", "Error rate over the window / allowed error rate."),
    ("sla_month_budget_seconds", "gauge", "Down time the month's availability objective allows (observed and "
                                          "eligible time still to come), up to the last closed minute."),
    ("sla_month_budget_spent_seconds", "gauge", "Down time counted in the month so far."),
    ("sla_month_budget_remaining_seconds", "gauge", "Budget minus spent; below 0 the month is lost."),
    ("sla_month_projected_availability_ratio", "gauge", "The month's availability at its end if the recent burn "
                                                        "goes on."),
    ("sla_period_slow_requests", "gauge", "Requests at or above the bound in the current 7-day period."),
    ("sla_period_slow_allowed", "gauge", "Slow requests the period allows at its expected volume."),
    ("sla_period_slow_projected", "gauge", "Slow requests at the period's end if the recent share goes on."),
    ("sla_maintenance_active", "gauge", "1 inside a maintenance or exclusion window."),
    ("sla_ticket_response_met_ratio", "gauge", "Share of tickets answered in time."),
    ("sla_tickets", "gauge", "Tickets opened in the window by response state."),
    ("sla_ticket_business_seconds_left", "gauge", "Open tickets: business time left before the first-response "
                                                  "deadline (< 0: missed)."),
)


class SloCollector(Collector):
    """Builds the SLA series at scrape time from the latest snapshot (computed off the hot path); their
    text is formatted once per snapshot and maintenance flag (exposition.Registry calls `parts`)."""

    def __init__(self, snapshot: Callable[[], Snapshot | None], maintenance_active: Callable[[], bool],
                 location: str = "") -> None:
        self.snapshot = snapshot
        self.maintenance_active = maintenance_active
        self.extra = (("location", location),) if location else ()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._maintenance = False
        self._text: tuple[Snapshot | None, bool, bytes] | None = None
        self._lock = threading.Lock()

    def describe(self) -> Iterable:
        return []

    def collect(self) -> Iterable[Metric]:
        return self._families(self._maintenance_now(), self.snapshot())

    def parts(self, pace: Pace) -> list[bytes]:
        maintenance, snap = self._maintenance_now(), self.snapshot()
        with self._lock:
            text = self._text
            # by identity: a snapshot is never changed once made, a new evaluation makes a new one
            if text is None or text[0] is not snap or text[1] != maintenance:
                text = self._text = (snap, maintenance, text_of(self._families(maintenance, snap), pace))
        return [text[2]]

    def _families(self, maintenance: bool, snap: Snapshot | None) -> list[Metric]:
        families = {name: Metric(name, doc, mtype) for name, mtype, doc in FAMILIES}
        families["sla_maintenance_active"].add_sample("sla_maintenance_active", dict(self.extra),
                                                      1.0 if maintenance else 0.0)
        for objective, results in snap.results if snap is not None else ():
            for window, result in results.items():
                for s in objective.samples(window, result):
                    families[s.metric].add_sample(s.name or s.metric, dict(s.labels + self.extra), s.value)
        return list(families.values())

    def _maintenance_now(self) -> bool:
        """The maintenance flag, asked on the event loop's thread when a scrape renders in a worker: the
        pipeline's mask cache behind it is not thread-safe (a torn update there would mask a result)."""
        loop = self._loop
        if loop is None or not loop.is_running() or _on(loop):
            self._maintenance = self.maintenance_active()
            return self._maintenance
        answer: concurrent.futures.Future[bool] = concurrent.futures.Future()

        def ask() -> None:
            try:
                answer.set_result(self.maintenance_active())
            except Exception as exc:  # handed to the render, which fails the scrape
                answer.set_exception(exc)

        try:
            loop.call_soon_threadsafe(ask)
            self._maintenance = answer.result(timeout=5)
        except (RuntimeError, concurrent.futures.TimeoutError):
            pass  # the loop is closing or stuck: the last answer is the best one left
        return self._maintenance


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class TargetInfoCollector(Collector):
    """`sla_target_info{service,target,url,...} 1`: what each target probes (secrets redacted) and the
    extra labels of its config, to join onto the per-target series (`* on (target) group_left(team)`).
    `redactor` gives the redaction in force; the text is formatted again when it or a target changes
    (a reload makes new ones)."""

    def __init__(self, targets: Callable[[], Sequence[Any]], redactor: Callable[[], Callable[[str], str]],
                 location: str = "") -> None:
        self.targets = targets
        self.redactor = redactor
        self.location = location
        self._text: tuple[Sequence[Any], Callable[[str], str], bytes] | None = None
        self._lock = threading.Lock()

    def describe(self) -> Iterable:
        return []

    def parts(self, pace: Pace) -> list[bytes]:
        targets, redact = self.targets(), self.redactor()
        with self._lock:
            text = self._text
            # by identity: targets are frozen, and a reload or a new redaction makes new objects
            if (text is None or text[1] is not redact or len(text[0]) != len(targets)
                    or any(a is not b for a, b in zip(text[0], targets))):
                text = self._text = (targets, redact, text_of(self._metrics(targets, redact), pace))
        return [text[2]]

    def collect(self) -> Iterable[Metric]:
        return self._metrics(self.targets(), self.redactor())

    def _metrics(self, targets: Sequence[Any], redact: Callable[[str], str]) -> list[Metric]:
        m = Metric("sla_target_info", "The probed targets, with their configured extra labels.", "gauge")
        for t in targets:
            labels = {"service": t.service, "target": t.name, "url": redact(t.address), "type": t.type,
                      **dict(t.labels)}
            if self.location:
                labels["location"] = self.location
            m.add_sample("sla_target_info", labels, 1.0)
        return [m]
