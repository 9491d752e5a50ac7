"""The support tool's export, fetched on a schedule by the daemon (`tickets:` in the config): the same
reading as `sla-agent tickets import`, all or nothing per fetch. A fetch that fails, or an export with
one bad line, leaves the stored tickets as they were; its outcome goes to `on_result` (the metrics)."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp
from yarl import URL

from ..clock import Clock
from ..config.model import Config
from ..probes.http.body import read_limited
from ..probes.http.oauth2 import TokenSource, TokenUnavailable
from ..probes.http.redirects import DowngradeRefused, follow
from ..probes.tls import client_context
from .importer import MAX_FILE_BYTES, TicketFileError, parse_export
from .model import Ticket

log = logging.getLogger("sla_agent.tickets")
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class FetchResult:
    ok: bool
    reason: str  # why it failed: network, timeout, auth, http, too_large, invalid, store, error
    message: str
    duration_s: float
    tickets: int = 0
    added: int = 0
    updated: int = 0


class FetchError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class TicketFeed:
    """Fetches now, then every `settings.every`; `store` is the daemon's (upsert_tickets is thread-safe).
    `cfg` gives the running config: the export is read with its current columns and time zone."""

    def __init__(self, cfg: Callable[[], Config], store: Any, clock: Clock, on_result: Callable[[FetchResult], None],
                 redact: Callable[[str], str]) -> None:
        settings = cfg().tickets
        assert settings is not None
        self.cfg, self.s = cfg, settings
        self.store, self.clock, self.on_result, self.redact = store, clock, on_result, redact
        https = self.s.url.startswith("https:")
        self._ssl = client_context(self.s.tls) if https else None
        self._tokens = TokenSource(self.s.auth, clock, client_context(self.s.tls) if
                                   self.s.auth.token_url.startswith("https:") else False, self.s.timeout) \
            if self.s.auth else None
        self._session: aiohttp.ClientSession | None = None
        self._failing = False

    async def run(self) -> None:
        next_at = self.clock.monotonic()
        while True:
            await self.fetch()
            next_at += self.s.every
            await self.clock.sleep_until(next_at)

    async def fetch(self) -> FetchResult:
        """One fetch; whatever goes wrong ends in a result (the schedule goes on), never in the task."""
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(self.s.timeout):  # wait_for would swallow a cancel that meets a failure
                data, content_type = await self._download()
            result = await asyncio.to_thread(self._store, data, content_type, t0)
        except FetchError as exc:
            result = self._failed(exc.reason, str(exc), t0)
        except TimeoutError:
            result = self._failed("timeout", f"no complete answer within {self.s.timeout:g}s", t0)
        except (aiohttp.ClientError, OSError) as exc:
            result = self._failed("network", f"{type(exc).__name__}: {exc}", t0)
        except Exception as exc:  # noqa: BLE001 - an answer aiohttp cannot take (a redirect to user:pw@...)
            result = self._failed("error", f"{type(exc).__name__}: {exc}", t0)
        self._log(result)
        self.on_result(result)
        return result

    def _failed(self, reason: str, message: str, t0: float) -> FetchResult:
        return FetchResult(False, reason, self.redact(message), time.monotonic() - t0)

    def _log(self, r: FetchResult) -> None:
        where = self.redact(self.s.url)
        if r.ok:
            if self._failing or r.added or r.updated:
                log.info("tickets from %s: %d in the export, %d added, %d updated", where, r.tickets, r.added,
                         r.updated)
        else:
            log.warning("tickets from %s not imported (%s): %s; the stored tickets are kept", where, r.reason,
                        r.message)
        self._failing = not r.ok

    async def _download(self) -> tuple[bytes, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                                  connector=aiohttp.TCPConnector(ssl=self._ssl or False, limit=2))
        headers = dict(self.s.headers)
        token = await self._token(headers)
        status, body, ctype = await self._get(headers)
        if status == 401 and token is not None and self._tokens is not None:
            try:
                headers["Authorization"] = f"Bearer {await self._tokens.rejected(token, [])}"
            except TokenUnavailable as exc:
                raise FetchError("auth", f"no OAuth2 token: {exc}") from None
            status, body, ctype = await self._get(headers)
        if status != 200:
            raise FetchError("auth" if status in (401, 403) else "http", f"HTTP {status} from the export URL")
        return body, ctype

    async def _token(self, headers: dict[str, str]) -> str | None:
        if self._tokens is None:
            return None
        try:
            token = await self._tokens.get([])
        except TokenUnavailable as exc:
            raise FetchError("auth", f"no OAuth2 token: {exc}") from None
        headers["Authorization"] = f"Bearer {token}"
        return token

    async def _get(self, headers: dict[str, str]) -> tuple[int, bytes, str]:
        """GET with redirects followed: the configured headers (keys, tokens) go to the export's own origin
        only, and never from https down to http."""
        try:
            # aiohttp's count: the redirect after the fifth is refused
            async with follow(self._session, "GET", URL(self.s.url), headers=headers,  # type: ignore[arg-type]
                              private={k.lower() for k in headers}, max_redirects=MAX_REDIRECTS + 1,
                              downgrade=False) as resp:
                body, too_large = await read_limited(resp, MAX_FILE_BYTES)
                if too_large:
                    raise FetchError("too_large", f"the export is larger than {MAX_FILE_BYTES} bytes")
                return resp.status, body, resp.headers.get("Content-Type", "")
        except DowngradeRefused:
            raise FetchError("http", "the export redirects from https to plain http: not followed") from None
        except aiohttp.TooManyRedirects:
            raise FetchError("http", f"more than {MAX_REDIRECTS} redirects") from None

    def _store(self, data: bytes, content_type: str, t0: float) -> FetchResult:
        fmt = self.s.format
        if fmt == "auto" and ("json" in content_type or URL(self.s.url).path.lower().endswith(".json")):
            fmt = "json"  # else parse_export looks at the text itself
        try:
            tickets: list[Ticket] = parse_export(self.cfg(), self.redact(self.s.url), data, fmt)
        except TicketFileError as exc:
            shown = exc.problems[:5] + ([f"... and {len(exc.problems) - 5} more"] if len(exc.problems) > 5 else [])
            raise FetchError("invalid", "rejected, nothing imported: " + "; ".join(shown)) from None
        try:
            added, updated = self.store.upsert_tickets(tickets)
        except Exception as exc:  # noqa: BLE001 - disk full, locked: the next fetch tries again
            raise FetchError("store", f"cannot write the tickets: {exc}") from None
        return FetchResult(True, "", "", time.monotonic() - t0, len(tickets), added, updated)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._tokens is not None:
            await self._tokens.close()


class FeedRunner:
    """The ticket import's life beside the agent's: started when the config has `tickets:`, stopped, and
    started again when a reload changes the feed or the contract it reads by (columns, time zone). Its
    metrics are made once, on first use, and dropped when a reload removes the feed."""

    def __init__(self, metrics: Callable[[], Any], clock: Clock, redact: Callable[[str], str]) -> None:
        self._make_metrics, self.clock, self.redact = metrics, clock, redact
        self.metrics: Any = None
        self._feed: TicketFeed | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, cfg: Callable[[], Config], store: Any) -> None:
        if cfg().tickets is None:
            return
        if self.metrics is None:
            self.metrics = self._make_metrics()
        metrics = self.metrics
        self._feed = TicketFeed(cfg, store, self.clock, lambda r: metrics.observe(r, self.clock.time()), self.redact)
        self._task = asyncio.create_task(self._feed.run(), name="tickets")

    async def fetch_now(self) -> FetchResult | None:
        """One fetch outside the schedule (a month's close wants the last answers); None without a feed."""
        return await self._feed.fetch() if self._feed is not None else None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            await self._feed.close()
        self._feed, self._task = None, None

    async def reload(self, cfg: Callable[[], Config], store: Any, changed: bool) -> None:
        if not changed:
            return
        await self.stop()
        if cfg().tickets is None and self.metrics is not None:
            self.metrics.unregister()
            self.metrics = None
        self.start(cfg, store)
