"""The daemon: builds everything from a Config (the composition root), runs the background loops, and
handles its life: start, SIGHUP reload, SIGTERM stop. Results flow through pipeline.py; the status page
reads an AgentView (view.py), the exporter its collectors, never the Agent."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, Callable

from . import __version__
from .calendar import Calendar
from .clock import Clock, SteadyClock, SystemClock
from .config import Config, ConfigError, load_config, split_listen
from .export.collectors import SloCollector, TargetInfoCollector
from .export.basicauth import BasicAuth
from .export.exposition import Registry
from .export.metrics import DeliveryMetrics, LiveMetrics, TicketFeedMetrics, TimestampMetrics
from .export.server import Endpoints, Server, build_app
from .export.status import status_document
from .export.webconfig import load_web_config
from .ledger import Ledger
from .logs import set_redactor
from .notify.deliver import Delivery
from .notify.witness import WitnessLoop
from .paths import PathCapture
from .pipeline import Pipeline, TargetStates
from .ledger.journal import Journal
from .probes import Capture, ProbeResult, applicable_phases, make_probe, probe_type
from .redact import Redactor
from .report.closing import MonthClose
from .report.signing import KeyCheck, SigningError
from .scheduler import LagWatch, Scheduler
from .sdnotify import Notifier
from .slo import STATE_NAMES, DayCache, Snapshot, evaluate, seal_delay_of, service_states, settle_of
from .store import Flusher, Store
from .store.lock import StateLock
from .tickets.feed import FeedRunner
from .timestamping import Stamping
from .view import AgentView, Served

log = logging.getLogger("sla_agent.agent")
EVAL_INTERVAL = 10.0
EVAL_SHARE = 0.01  # evaluation may take this share of the time at most...
EVAL_MAX_INTERVAL = 300.0  # ...but the figures are never older than this
COMPACT_EVERY = 600.0


class Agent:
    def __init__(self, cfg: Config, *, state_dir: str | None = None, clock: Clock | None = None,
                 listen: str | None = None, config_path: str | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.clock = SteadyClock(clock or SystemClock(), on_step=lambda: self.metrics.clock_steps.inc())
        self.state_dir = state_dir or cfg.agent.state_dir
        self.listen = listen or cfg.agent.listen
        self.redact = Redactor(cfg.secrets)
        self.cal = Calendar(cfg.contract)
        self.registry = Registry()
        self.metrics = LiveMetrics(self.registry, cfg.agent.location)
        self.metrics.clock_ahead.set_function(lambda: self.clock.ahead)
        self.metrics.journal_held.set_function(lambda: self.journal.held if self.journal else 0)
        self.ledger = Ledger(cfg.contract.thresholds, day_start=lambda t: self.cal.day_start(t))
        self.states = TargetStates()
        ev = cfg.evidence
        self.journal = Journal(ev.failures_per_minute, ev.sample_up_every, settle_of(cfg)) if ev.journal else None
        self.paths = PathCapture(ev.path, {t.name: t for t in cfg.targets}, self.journal.add, self.clock,
                                 lambda text: self.redact(text)) if self.journal else None  # into the journal
        sinks = [self._record, self.metrics.observe, self.states] + ([self.journal, self.paths] if self.journal else [])
        self.pipeline = Pipeline(self.cal, cfg.controls, sinks)
        self.store: Store | None = None
        self.flusher: Flusher | None = None
        self.snapshot: Snapshot | None = None
        self.day_cache = DayCache(self.cal)
        self.notifier = Notifier()
        self.lag = LagWatch(self.clock, cfg.agent.loop_lag_bound, observe=self.metrics.loop_lag.observe)
        self.scheduler = Scheduler(self.clock, self.pipeline, rate_limit=cfg.agent.rate_limit, lag_watch=self.lag,
                                   thresholds=cfg.contract.thresholds)
        self.server: Server | None = None
        self.witnesses = WitnessLoop(self)  # the chain's checkpoints pushed to evidence.witnesses
        self.closer = MonthClose(self)  # ended months archived under STATE_DIR/reports (reports:)
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()
        self._restored = False
        self._lock = StateLock(self.state_dir)
        self._declared: list[Any] = []
        self.feed = FeedRunner(lambda: TicketFeedMetrics(self.registry, cfg.agent.location), self.clock,
                               lambda text: self.redact(text))
        self.stamping = Stamping(lambda: TimestampMetrics(self.registry, cfg.agent.location), self.clock,
                                 lambda text: self.redact(text))
        self.delivery = Delivery(lambda: self.cfg.reports.deliver,  # a closed month's revision, mailed and posted
                                 lambda: DeliveryMetrics(self.registry, cfg.agent.location), self.clock,
                                 lambda text: self.redact(text)) if cfg.reports.deliver.channels else None
        if self.delivery is not None:  # a revision is delivered with its report document (rows, signature)
            self.closer.deliver = lambda rev, _: self.delivery.deliver(rev, json.loads((rev / "report.json").read_text()))
        self._last_compact = 0.0
        self.signing = KeyCheck()  # a key the service's user cannot read fails every report: said at once

    def _record(self, r: ProbeResult, masked: bool) -> None:
        self.ledger.add(r, masked)  # through the attribute: a benchmark may hand the agent a prefilled ledger

    # -- what tests and the demo reach -----------------------------------------------------------------
    @property
    def on_result(self) -> Callable[[ProbeResult], None]:
        return self.pipeline

    @property
    def listeners(self) -> list[Callable[[ProbeResult], None]]:
        return self.pipeline.listeners

    @property
    def results_seen(self) -> int:
        return self.pipeline.seen

    # -- life -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        if why := self.signing(self.cfg.evidence.signing_key_file):
            raise SigningError(why)
        self._lock.acquire()
        self.store = await asyncio.to_thread(Store, self.state_dir, thresholds=self.cfg.contract.thresholds,
                                             clock=self.clock.time)
        self.store.seal_delay = seal_delay_of(self.cfg)
        self.clock.hold_from(await asyncio.to_thread(self.store.latest_instant))  # a clock stepped back meanwhile
        self.flusher = Flusher(self.store, journal=self.journal, location=self.cfg.agent.location,
                               redact=self.redact, clock=self.clock.time)
        self.metrics.integrity_failures.set(len(self.store.moved_aside))
        await self._restore()
        self.registry.register(SloCollector(lambda: self.snapshot, lambda: self.pipeline.mask(self.clock.time()),
                                            self.cfg.agent.location))
        self.registry.register(TargetInfoCollector(lambda: self.cfg.all_targets, lambda: self.redact,
                                                   self.cfg.agent.location))
        self._install_targets(self.cfg)
        await self._serve()
        self.scheduler.start()
        self.feed.start(lambda: self.cfg, self.store)
        self.witnesses.apply()
        self.stamping.start(self.cfg.evidence.timestamping, self.store)
        self.closer.start()
        self._tasks = [asyncio.create_task(coro, name=name) for name, coro in (
            ("lag-watch", self.lag.run()), ("flush", self._flush_loop()), ("evaluate", self._eval_loop()),
            ("slices", self._slice_loop()), ("watchdog", self.notifier.watchdog_loop(self.clock)))]
        log.info("sla-agent %s probing %d targets (%d controls); metrics at %s/metrics; state in %s",
                 __version__, len(self.cfg.targets), len(self.cfg.controls), self.server.url, self.state_dir)
        self.notifier.ready(f"probing {len(self.cfg.targets)} targets")

    async def _restore(self) -> None:
        now = self.clock.time()
        self.ledger.anchor(now)
        for t in self.cfg.all_targets:
            self.ledger.ensure(t.name, t.service)
        t0 = time.perf_counter()
        rows = await asyncio.to_thread(self.store.restore, self.ledger, now - (self.ledger.capacity - 1440) * 60)
        self.ledger.compact(now)
        self.flusher.settle(self.ledger, now)
        self._reload_windows()
        log.info("state restored from %s: %d hour rows in %.0f ms", self.store.path, rows,
                 (time.perf_counter() - t0) * 1000)
        self._restored = True

    async def _serve(self) -> None:
        web = load_web_config(self.cfg.agent.web_config_file) if self.cfg.agent.web_config_file else None
        host, port = split_listen(self.listen)
        s = Served(self)
        self.server = Server(build_app(Endpoints(
            registry=self.registry, ready=self.ready, status=self.status, report_json=s.report_json,
            report_html=s.report_html, journal=s.journal, artifact=s.artifact, ledger=s.ledger, page=s.page,
            span=s.span, close=s.close, checkpoint=s.checkpoint, reports=s.archive,
            auth=BasicAuth(web.users) if web and web.users else None)),
            host, port, web.ssl_context() if web else None)
        await self.server.start()
        self.witnesses.make = s.checkpoint

    def _install_targets(self, cfg: Config) -> None:
        ev = cfg.evidence
        capture = Capture(ev.headers, ev.body_bytes, ev.sample_up_every) if ev.journal else None
        pairs = [(t, make_probe(t, clock=self.clock, per_host_concurrency=cfg.agent.per_host_concurrency,
                                redactor=self.redact, capture=capture, state_dir=self.state_dir,
                                browser_workers=cfg.agent.browser_workers)) for t in cfg.all_targets]
        for p in self.scheduler.set_targets(pairs):
            asyncio.get_running_loop().create_task(p.close())
        for t in cfg.all_targets:
            self.metrics.bind(t.service, t.name, probe_type(t).phases, applicable_phases(t))
        for service in cfg.services:  # series exist from 0, so increase() sees the first slice
            for state in STATE_NAMES.values():
                self.metrics.slices.labels(service, state, *self.metrics.extra_values)

    async def stop(self) -> None:
        self.notifier.stopping()
        log.info("stopping: finishing in-flight probes (at most %gs)", self.cfg.agent.shutdown_grace)
        cancelled = await self.scheduler.stop(self.cfg.agent.shutdown_grace)
        if cancelled:
            log.warning("%d probes cancelled at shutdown (not recorded)", cancelled)
        if self.journal is not None:
            await self.paths.stop()
            self.journal.release()
        await self.closer.stop()  # before what it uses: the feed, the time-stamping, the store
        await self.feed.stop()
        await self.witnesses.stop()
        await self.stamping.stop()
        if self.delivery is not None:
            await self.delivery.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        sealed = await self.flush(seal_all=True)  # nothing written is left outside the chain
        for tl in self.scheduler.timelines.values():
            await tl.probe.close()
        await self.abandon()
        if sealed:
            log.info("stopped after %d probe results; ledger flushed and sealed to %s", self.results_seen,
                     self.store.path if self.store else "-")
        else:
            log.error("stopped after %d probe results; the last write failed: rows written since the last seal "
                      "are not sealed (`sla-agent evidence seal` seals them)", self.results_seen)

    async def abandon(self) -> None:
        """What was opened is closed, the state directory's lock released (after a failed start; at stop's end)."""
        if self.server is not None:
            await self.server.stop()
        if self.store is not None:
            self.store.close()
        self._lock.release()

    def request_stop(self) -> None:
        self._stop.set()

    async def run_until_stopped(self) -> None:
        await self._stop.wait()

    async def reload(self) -> bool:
        """SIGHUP: the new config is read and checked in a worker thread (a large file must not stall
        the probes); a bad one is logged with its errors and the old one keeps running."""
        if not self.config_path:
            return False
        self.notifier.reloading()
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            return self._refuse(f"the running configuration is kept:\n{exc}")
        if new.contract.thresholds != self.cfg.contract.thresholds:
            return self._refuse("latency thresholds cannot change under an existing ledger")
        if why := self.signing(new.evidence.signing_key_file):
            return self._refuse(why)
        old = {t.name: t.service for t in self.cfg.all_targets}
        feed_changed = (new.tickets, new.contract) != (self.cfg.tickets, self.cfg.contract)  # columns, time zone
        self._apply(new)
        await self.stamping.reload(new.evidence.timestamping)
        await self.feed.reload(lambda: self.cfg, self.store, feed_changed)
        for name, service in old.items():
            if name not in {t.name for t in new.all_targets}:
                self.metrics.forget(service, name)
        self.metrics.reloads.labels("ok").inc()
        log.info("configuration reloaded: %d targets", len(new.targets))
        self.notifier.ready(f"probing {len(new.targets)} targets")
        return True

    def _refuse(self, why: str) -> bool:
        log.error("reload refused: %s", why)
        self.metrics.reloads.labels("error").inc()
        self.notifier.ready("reload refused")
        return False

    def _apply(self, new: Config) -> None:
        self.cfg = new
        self.redact = Redactor(new.secrets)
        set_redactor(self.redact)
        if self.flusher is not None:
            self.flusher.redact = self.redact
        self.scheduler.throttle.rate_limit = new.agent.rate_limit
        self.lag.bound = new.agent.loop_lag_bound
        self.scheduler.thresholds = new.contract.thresholds
        if self.journal is not None:
            self.journal.settle = settle_of(new)
            self.paths.apply(new.evidence.path, {t.name: t for t in new.targets})
        if self.store is not None:
            self.store.seal_delay = max(self.store.seal_delay, seal_delay_of(new))  # what is sealed stays sealed
        self._set_calendar(Calendar(new.contract))
        self._declared = []
        self._reload_windows()
        self.pipeline.set_controls(new.controls)
        for t in new.all_targets:
            self.ledger.ensure(t.name, t.service)
        self._install_targets(new)
        self.witnesses.apply()

    def _set_calendar(self, cal: Calendar) -> None:
        self.cal = cal
        self.pipeline.set_calendar(cal)
        self.day_cache = DayCache(cal)

    def _reload_windows(self) -> None:
        """Declared windows (sla-agent maintenance add) live in the store; picked up at each evaluation."""
        if self.store is None:
            return
        declared = [w for _, w in self.store.windows()]
        if declared != self._declared:
            self._declared = declared
            self._set_calendar(self.cal.with_windows(declared))

    # -- background loops ---------------------------------------------------------------------------------
    async def flush(self, seal_all: bool = False) -> bool:
        if self.flusher is None:
            return False
        now = self.clock.time()
        compactions = []
        if now - self._last_compact >= COMPACT_EVERY:
            compactions = self.ledger.compact(now)
            self._last_compact = now
        try:
            await self.flusher.flush(self.ledger, compactions, seal_all)
        except Exception:  # noqa: BLE001 - disk full, I/O error: keep probing, retry next time (the flusher logs)
            self.metrics.write_errors.inc()
            return False
        finally:
            m, j = self.metrics, self.journal
            m.catch_up("lost", m.ledger_lost, self.flusher.renewed)
            m.catch_up("rows", m.refused.labels("row"), self.flusher.refused)
            m.catch_up("results", m.refused.labels("result"), self.ledger.refused_final)
            if j is not None:
                m.catch_up("bodies", m.journal_dropped.labels("body"), j.bodies_dropped)
                m.catch_up("records", m.journal_dropped.labels("record"), j.records_dropped)
                m.catch_up("traced", m.paths.labels("traced"), self.paths.traced)
                m.catch_up("not traced", m.paths.labels("not_traced"), self.paths.busy)
            self.ready()  # the gauge follows a write failing, and succeeding again, at once
        self.metrics.flushes.inc()
        self.metrics.last_flush.set(now)
        return True

    async def _flush_loop(self) -> None:
        interval = self.cfg.agent.flush_interval
        next_at = self.clock.monotonic() + interval
        last_prune = 0.0
        while True:
            await self.clock.sleep_until(next_at)
            next_at += interval
            await self.flush()
            now = self.clock.time()
            if now - last_prune > 86400 and self.store is not None:
                last_prune = now
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.store.prune, now - self.cfg.agent.retention_days * 86400)
            self.metrics.in_flight.set(self.scheduler.in_flight)
            self.metrics.catch_up("throttle", self.metrics.throttle_waits, self.scheduler.throttle_waits)

    async def evaluate_now(self) -> Snapshot:
        tickets = self.store.tickets if self.store is not None else None
        snap = await asyncio.to_thread(evaluate, self.ledger, self.cfg, self.cal, self.clock.time(), self.day_cache,
                                       tickets)
        self.snapshot = snap
        return snap

    async def _eval_loop(self) -> None:
        """Refreshes the SLA figures every EVAL_INTERVAL, or less often when an evaluation takes long:
        it runs in a worker thread but shares the GIL with the probe loop, so it is kept to at most
        EVAL_SHARE of the time (with 200 targets probed 1,000 times a second it takes ~1 s)."""
        while True:
            started = self.clock.monotonic()
            try:
                await asyncio.to_thread(self._reload_windows)
                await self.evaluate_now()
                self.ready()
            except Exception:  # noqa: BLE001 - never let a figure kill the daemon
                log.exception("evaluation failed")
            took = self.clock.monotonic() - started
            await self.clock.sleep_until(started + min(EVAL_MAX_INTERVAL, max(EVAL_INTERVAL, took / EVAL_SHARE)))

    async def _slice_loop(self) -> None:
        """Counts each closed minute slice per service (sla_slices_total), for the recording rules."""
        grace = max((t.timeout for t in self.cfg.targets), default=5.0) + 1.0
        minute = int((self.clock.time() - grace) // 60)
        while True:
            wait = (minute + 1) * 60 + grace - self.clock.time()
            await self.clock.sleep_until(self.clock.monotonic() + max(wait, 0.0))
            while (minute + 1) * 60 + grace <= self.clock.time():
                for service in self.cfg.services:
                    names = [t.name for t in self.cfg.targets_of(service)]
                    st = service_states(self.ledger, names, self.cfg.contract.policy(service).combine, self.cal,
                                        minute, minute + 1, self.cfg.contract.slice_down_ratio)
                    self.metrics.slices.labels(service, STATE_NAMES[int(st[0])], *self.metrics.extra_values).inc()
                minute += 1

    # -- what the endpoints serve ----------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        """Also sets sla_agent_ready (at each evaluation too, so it does not wait for a /readyz call)."""
        f = self.flusher
        why = ("state not restored yet" if not self._restored else "the ledger file was lost: writing a new one"
               if f.rewriting else f"the ledger cannot be written: {f.last_error}" if f.failing else
               "no probe has completed yet" if self.cfg.all_targets and not self.states.decided else
               self.signing(self.cfg.evidence.signing_key_file))
        self.metrics.ready.set(0 if why else 1)
        return not why, why

    def status(self) -> dict:
        return status_document(AgentView(self))
