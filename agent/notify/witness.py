"""Pushes the chain's signed checkpoint to the witnesses the user names (`evidence.witnesses`): now, then
every `every`. A webhook gets it as the body of an HTTP POST (text/plain), an address by mail. Each
delivery is tried ATTEMPTS times, TIMEOUT each, BACKOFF doubling between; all run in this task, beside
the probes (the mail in a worker thread), so a witness that is down or slow never holds probing. Each
outcome goes to `on_push` (the metrics) and the log, where a URL shows no userinfo nor query."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiohttp

from ..clock import Clock
from ..config.model import WitnessSettings
from . import mail
from .http import Poster, where

log = logging.getLogger("sla_agent.witness")
ATTEMPTS = 3
TIMEOUT = 15.0
BACKOFF = 30.0
SUBJECT = "sla-agent checkpoint {origin}: {size} links"


@dataclass(frozen=True)
class Push:
    kind: str  # webhook | email
    where: str  # shown: a URL without userinfo nor query, an address
    ok: bool
    message: str  # why not, when not


class Witnesses:
    """`make` gives the checkpoint's text now, or (None, why not)."""

    def __init__(self, settings: Callable[[], WitnessSettings], make: Callable[[], Awaitable[tuple[str | None, str]]],
                 clock: Clock, on_push: Callable[[Push], None], redact: Callable[[str], str],
                 smtp_context: object | None = None) -> None:
        self.settings, self.make, self.clock, self.on_push, self.redact = settings, make, clock, on_push, redact
        self.smtp_context = smtp_context  # STARTTLS's TLS context; None: the system's CAs
        self._poster = Poster(TIMEOUT)

    async def run(self) -> None:
        next_at = self.clock.monotonic()
        while True:
            await self.push()
            next_at += self.settings().every
            await self.clock.sleep_until(next_at)

    async def push(self) -> list[Push]:
        try:
            text, why = await self.make()
        except Exception as exc:  # noqa: BLE001 - a key file gone, a locked ledger: the schedule goes on
            text, why = None, self.redact(f"{type(exc).__name__}: {exc}")
        if text is None:
            log.error("no checkpoint for the witnesses: %s", why)
            self.on_push(Push("checkpoint", "", False, why))
            return []
        s = self.settings()
        results = await asyncio.gather(*(self._tried("webhook", u, lambda u=u: self._post(u, text)) for u in s.webhooks),
                                       *(self._tried("email", a, lambda a=a: self._mail(s, a, text)) for a in s.emails))
        for r in results:
            self.on_push(r)
            if not r.ok:
                log.warning("checkpoint not delivered to %s %s after %d attempts: %s", r.kind, r.where, ATTEMPTS,
                            r.message)
        size = text.split("\n", 2)[1]
        log.info("checkpoint of %s links delivered to %d of %d witnesses", size, sum(r.ok for r in results),
                 len(results))
        return list(results)

    async def _tried(self, kind: str, to: str, attempt: Callable[[], Awaitable[None]]) -> Push:
        """`to`: a URL or an address; what is shown of it keeps a URL's credentials and query out."""
        shown, why = (where(to) if kind == "webhook" else to), ""
        for n in range(ATTEMPTS):
            if n:
                await self.clock.sleep_until(self.clock.monotonic() + BACKOFF * 2 ** (n - 1))
            try:
                await attempt()
                return Push(kind, shown, True, "")
            except TimeoutError:
                why = f"no answer within {TIMEOUT:g}s"
            except (aiohttp.ClientError, OSError, mail.MailError, ValueError) as exc:
                why = f"{type(exc).__name__}: {exc}"
        return Push(kind, shown, False, self.redact(why.replace(to, shown)))

    async def _post(self, url: str, text: str) -> None:
        await self._poster.post(url, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})

    async def _mail(self, s: WitnessSettings, to: str, text: str) -> None:
        assert s.smtp is not None  # the config refuses e-mail witnesses without a mail server
        origin, size = text.split("\n", 2)[:2]
        msg = mail.message(s.smtp, [to], SUBJECT.format(origin=origin, size=size),
                           "The signed checkpoint of the agent's evidence chain is attached. Keep it: "
                           "`sla-agent evidence verify --checkpoint checkpoint.txt` shows that a ledger or a "
                           "bundle shown later extends it.\n",
                           [("checkpoint.txt", text.encode(), "text/plain")])
        async with asyncio.timeout(TIMEOUT * 2):
            await asyncio.to_thread(mail.send, s.smtp, msg, TIMEOUT, self.smtp_context)

    async def close(self) -> None:
        await self._poster.close()


class WitnessLoop:
    """The running agent's push task: there while the config names witnesses (settings read at each push)."""

    def __init__(self, agent: Any) -> None:  # the app's Agent (typed loosely: the app imports this module)
        self.agent = agent
        self.make: Callable[[], Awaitable[tuple[str | None, str]]] | None = None  # the endpoint's, once serving
        self.metrics: Any = None  # export.metrics.WitnessMetrics, made once witnesses are named
        self.witnesses: Witnesses | None = None
        self._task: asyncio.Task[None] | None = None

    def apply(self) -> None:
        from ..export.metrics import WitnessMetrics

        a = self.agent
        s = a.cfg.evidence.witnesses
        wanted = bool(s.webhooks or s.emails) and self.make is not None
        if wanted and self._task is None:
            self.metrics = metrics = self.metrics or WitnessMetrics(a.registry, a.cfg.agent.location)
            self.witnesses = Witnesses(lambda: a.cfg.evidence.witnesses, self.make, a.clock,  # type: ignore[arg-type]
                                       lambda p: metrics.observe(p, a.clock.time()), lambda text: a.redact(text))
            self._task = asyncio.create_task(self.witnesses.run(), name="witnesses")
        elif not wanted and self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.witnesses is not None:
            await self.witnesses.close()
