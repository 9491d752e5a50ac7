"""The daemon's life around an Agent: start, signals, stop. SIGTERM and SIGINT stop it, SIGHUP reloads
its configuration; once stopping, further signals are logged and ignored, so only SIGKILL can skip the
final flush of the ledger."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from typing import Any, Callable

from .app import Agent
from .config import Config
from .export.webconfig import WebConfigError
from .redact import redact_url
from .report.signing import SigningError
from .store import StoreError

log = logging.getLogger("sla_agent.agent")

# Fewer young-generation collections: at 1,000 probes/s the defaults run 15-40 collections a second and
# the full ones pause the loop for tens of ms (bench/probe_rate.py measures the effect).
GC_THRESHOLDS = (100_000, 50, 1_000)
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def tune_gc() -> None:
    """Steady state for a long-running probe process: what start-up allocated is frozen out of the
    collector's sight and young collections run less often (fewer, shorter pauses; see GC_THRESHOLDS).
    Called by the daemon and the demo once the agent has started, not by library users."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Signals:
    """While running: stop or reload (one reload at a time; a SIGHUP during one runs another after it).
    While stopping: each signal is logged and ignored."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.stopping = False
        self._reload: asyncio.Task[Any] | None = None
        self._again = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self.on_signal, sig)

    def on_signal(self, sig: signal.Signals) -> None:
        if self.stopping:
            log.warning("%s while stopping: ignored; the ledger is flushed before the agent exits (only SIGKILL "
                        "skips that)", sig.name)
        elif sig == signal.SIGHUP:
            self._start_reload()
        else:
            self.stopping = True
            self.agent.request_stop()

    def _start_reload(self) -> None:
        if self._reload is not None and not self._reload.done():
            self._again = True
            return
        self._reload = asyncio.get_running_loop().create_task(self._reloads())

    async def _reloads(self) -> None:
        while True:
            self._again = False
            await self.agent.reload()
            if not self._again or self.stopping:
                return

    async def settle(self) -> None:
        """Lets a reload under way finish before the agent stops."""
        self.stopping = True
        if self._reload is not None:
            await asyncio.gather(self._reload, return_exceptions=True)


async def run_agent(cfg: Config, *, state_dir: str | None = None, config_path: str | None = None,
                    duration: float | None = None, on_started: Callable[[Agent], Any] | None = None) -> int:
    agent = Agent(cfg, state_dir=state_dir, config_path=config_path)
    loop = asyncio.get_running_loop()
    signals = Signals(agent)
    signals.install(loop)  # before start: a SIGTERM while the state is restored still ends in a flush
    try:
        await agent.start()
    except (StoreError, OSError, WebConfigError, SigningError) as exc:
        log.error("cannot start: %s", redact_url(str(exc)))
        await agent.abandon()
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        return 1
    tune_gc()
    extra: list[asyncio.Task[Any]] = []
    if on_started is not None:
        extra.append(asyncio.create_task(on_started(agent)))
    try:
        if duration is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(agent.run_until_stopped(), duration)
        else:
            await agent.run_until_stopped()
    finally:
        for t in extra:
            t.cancel()
        await signals.settle()
        await agent.stop()
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
    return 0
