"""The chain's head sent to each time-stamping authority (`evidence.timestamping`) every `every`.

Each authority is asked on its own: an authority down, slow or answering garbage is tried again with
backoff until the next round is due, and never holds the others, the probes or the flushes (the loop only
sends the request and reads the answer, bounded in time and size; building the request, checking the
answer and storing the token run in worker threads). A retry stamps the head as it is then, so the
first good token after an outage covers every link written meanwhile. Each attempt's outcome goes to
`on_result` (the metrics); the URL shown, stored and logged carries no credentials and is redacted.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp
from yarl import URL

from ..clock import Clock
from ..config.model import TimestampSettings
from ..probes.http.body import read_limited
from ..probes.tls import TLSOptions, client_context
from . import tsp

log = logging.getLogger("sla_agent.timestamping")
FIRST_RETRY, MAX_RETRY = 5.0, 300.0  # backoff after a failed attempt, doubling up to the cap
QUERY, REPLY = "application/timestamp-query", "application/timestamp-reply"


@dataclass(frozen=True)
class StampResult:
    tsa: str  # the authority's URL as shown (no credentials)
    ok: bool
    reason: str = ""  # why not: network, timeout, http, too_large, invalid, store, error
    message: str = ""
    seq: int | None = None  # the link stamped
    at: float | None = None  # the authority's time in the token


class StampError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def shown(url: str) -> str:
    """The URL without its user and password: what labels, logs and the ledger carry."""
    try:
        return str(URL(url).with_user(None))
    except ValueError:
        return "<unreadable URL>"


class TimeStamper:
    """Stamps now, then every `settings.every`; `store` is the daemon's (chain_head and add_timestamp are
    thread-safe)."""

    def __init__(self, settings: TimestampSettings, store: Any, clock: Clock,
                 on_result: Callable[[StampResult], None], redact: Callable[[str], str]) -> None:
        self.s, self.store, self.clock, self.on_result, self.redact = settings, store, clock, on_result, redact
        self.roots: list[Any] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._failing: dict[str, int] = {}  # failed attempts in a row, by authority

    async def run(self) -> None:
        if self.s.ca_file:
            try:
                self.roots = await asyncio.to_thread(tsp.load_roots, self.s.ca_file)
            except ValueError as exc:  # read at the config's check; gone since: the tokens are still worth having
                log.error("evidence.timestamping.ca_file: %s; answers are stored without checking their signature "
                          "(evidence verify --tsa-ca checks it)", exc)
        due = self.clock.monotonic()
        while True:
            due += self.s.every
            await self.stamp(due)
            await self.clock.sleep_until(due)

    async def stamp(self, until: float | None = None) -> list[StampResult]:
        """The head now, by every authority at once; one that fails is tried again, with backoff, while
        the monotonic clock is before `until` (None: once). Nothing to stamp in an empty chain."""
        return list(await asyncio.gather(*(self._until_stamped(url, until) for url in self.s.tsa)))

    async def _until_stamped(self, url: str, until: float | None) -> StampResult:
        delay = FIRST_RETRY
        while True:
            head = await asyncio.to_thread(self.store.chain_head)
            if head is None:  # nothing to prove yet: as good as a token, for the alert
                result = StampResult(self.redact(shown(url)), False, "empty", "the chain has no link yet")
                self.on_result(result)
                return result
            result = await self._attempt(url, head)
            self._note(result)
            self.on_result(result)
            wake = self.clock.monotonic() + delay
            if result.ok or until is None or wake >= until:
                return result
            await self.clock.sleep_until(wake)
            delay = min(delay * 2, MAX_RETRY)

    async def _attempt(self, url: str, head: dict[str, Any]) -> StampResult:
        """One request; whatever goes wrong ends in a result, never in the task."""
        where = self.redact(shown(url))
        try:
            req = await asyncio.to_thread(tsp.request, head["link"])
            async with asyncio.timeout(self.s.timeout):  # wait_for would swallow a cancel that meets a failure
                der = await self._post(url, req.der)
            at = await asyncio.to_thread(tsp.check_answer, der, req, self.roots)
            try:
                await asyncio.to_thread(self.store.add_timestamp, head["seq"], where, der)
            except Exception as exc:  # noqa: BLE001 - disk full, locked: the next round stamps again
                raise StampError("store", self.redact(f"cannot store the token: {exc}")) from None
        except StampError as exc:
            return StampResult(where, False, exc.reason, str(exc))
        except tsp.BadToken as exc:
            return StampResult(where, False, "invalid", str(exc))
        except TimeoutError:
            return StampResult(where, False, "timeout", f"no complete answer within {self.s.timeout:g}s")
        except (aiohttp.ClientError, OSError) as exc:
            return StampResult(where, False, "network", self.redact(f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # noqa: BLE001 - an answer aiohttp cannot take
            return StampResult(where, False, "error", self.redact(f"{type(exc).__name__}: {exc}"))
        return StampResult(where, True, seq=head["seq"], at=at)

    async def _post(self, url: str, body: bytes) -> bytes:
        if self._session is None:
            ssl = client_context(TLSOptions()) if any(u.startswith("https:") for u in self.s.tsa) else False
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), connector=aiohttp.TCPConnector(
                ssl=ssl, limit=2 * len(self.s.tsa)))
        # not redirected: an authority answers where it is asked
        async with self._session.post(url, data=body, headers={"Content-Type": QUERY, "Accept": REPLY},
                                      allow_redirects=False) as resp:
            der, too_large = await read_limited(resp, tsp.MAX_ANSWER_BYTES)
            if too_large:
                raise StampError("too_large", f"the answer is larger than {tsp.MAX_ANSWER_BYTES} bytes")
            if resp.status != 200:
                raise StampError("http", f"HTTP {resp.status} from the authority")
            return der

    def _note(self, r: StampResult) -> None:
        """The first failure of a run is a warning, the rest debug; the recovery says how many failed."""
        failed = self._failing.get(r.tsa, 0)
        if r.ok:
            if failed:
                log.info("time-stamp by %s stored (link %s) after %d failed attempts", r.tsa, r.seq, failed)
            self._failing[r.tsa] = 0
            return
        (log.warning if not failed else log.debug)(
            "no time-stamp from %s (%s): %s; tried again with backoff, probing goes on", r.tsa, r.reason, r.message)
        self._failing[r.tsa] = failed + 1

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Stamping:
    """The agent's time-stamping, as configured: started, replaced at a reload, stopped. `metrics()` makes
    the metrics (export/metrics.py: TimestampMetrics) when time-stamping is first configured."""

    def __init__(self, metrics: Callable[[], Any], clock: Clock, redact: Callable[[str], str]) -> None:
        self._make_metrics, self.clock, self.redact = metrics, clock, redact
        self.metrics: Any = None
        self.stamper: TimeStamper | None = None
        self._task: asyncio.Task[None] | None = None
        self._store: Any = None

    def start(self, settings: TimestampSettings | None, store: Any) -> None:
        self._store = store
        if settings is None or store is None:
            return
        if self.metrics is None:
            self.metrics = self._make_metrics()
        metrics = self.metrics
        self.stamper = TimeStamper(settings, store, self.clock, lambda r: metrics.observe(r, self.clock.time()),
                                   self.redact)
        self._task = asyncio.create_task(self._run(self.stamper, metrics), name="timestamping")

    async def _run(self, stamper: TimeStamper, metrics: Any) -> None:
        """Each authority's last success is its last stored token's, or now: an authority that never
        answers is alerted on after twice `every`, as one that stops answering."""
        stored = await asyncio.to_thread(stamper.store.timestamps)
        metrics.prime([self.redact(shown(u)) for u in stamper.s.tsa], self.clock.time(), stored)
        await stamper.run()

    async def reload(self, settings: TimestampSettings | None) -> None:
        """Changed settings start anew, metrics too: an authority no longer named leaves no stale series
        for the alert to fire on."""
        if (self.stamper.s if self.stamper is not None else None) == settings:
            return
        await self.stop()
        if self.metrics is not None:
            self.metrics.unregister()
            self.metrics = None
        self.start(settings, self._store)

    async def stamp_now(self) -> list[StampResult]:
        """One round now, outside the schedule (a month's close): each authority tried once."""
        return await self.stamper.stamp() if self.stamper is not None else []

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.stamper is not None:
            await self.stamper.close()
        self.stamper, self._task = None, None
