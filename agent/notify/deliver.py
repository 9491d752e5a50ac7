"""Delivers a closed month's revision (`reports/YYYY-MM/rN/`) to `reports.deliver`: a mail (the PDF attached,
the evidence bundle attached up to `attach_bundle_max`, else linked) and a webhook (JSON: the month, its
verdict rows, the links), each channel on its own.

Once per channel, as far as a crash allows. Each outcome is written to the revision's `delivery.json`
(a temporary file, fsync, rename, fsync of the folder) as soon as the send returns, before anything else is
done; a channel recorded as sent is never sent again, by this process or after a restart. What is left is
the moment between the receiver's acceptance and that write: a crash there sends again at the next start
(at least once). The mail's Message-ID and the webhook's Idempotency-Key are the same at every attempt at a
revision, so a receiver can drop that second copy.

A channel that fails is tried again BACKOFF later, doubling up to MAX_BACKOFF, until it has failed for
GIVE_UP since its first failure (about 50 attempts): then it is recorded as failed and left (the alert
SLAReportDeliveryFailing stays on until a later delivery on that channel succeeds). Attempts, the first
failure and the last error are recorded too: a restart goes on with the same schedule. Waits are on the
injected clock; smtplib runs in a worker thread, awaited to its end (its socket timeout bounds it): a
thread left running could still hand over a mail recorded as failed, and the next attempt would send it
again."""
from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import aiohttp

from ..clock import Clock
from ..config.model import DeliverSettings
from . import mail
from .http import Poster, where
from .letter import Letter, attachments

log = logging.getLogger("sla_agent.deliver")
RECORD = "delivery.json"
BACKOFF, MAX_BACKOFF, GIVE_UP = 30.0, 1800.0, 86400.0
TIMEOUT = 30.0  # a webhook's answer, whole; each step of the SMTP dialogue
PENDING, SENT, FAILED = "pending", "sent", "failed"
RETRIED = (mail.MailError, aiohttp.ClientError, OSError, TimeoutError, ValueError)


def backoff(attempts: int) -> float:
    """The wait after the `attempts`-th failed attempt in a row."""
    return min(MAX_BACKOFF, BACKOFF * 2 ** (attempts - 1))


def read_record(folder: Path) -> dict[str, Any]:
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"channels": {}}
    if not isinstance(record, dict) or not isinstance(record.get("channels"), dict):
        raise ValueError(f"{folder / RECORD} is not a delivery record")
    return record


def write_atomically(path: Path, data: bytes) -> None:
    """The file whole or not at all, on disk before it returns: a crash never leaves a half-written record."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself
    finally:
        os.close(fd)


class Delivery:
    """`settings`: the current `reports.deliver` (read at each attempt: a reload applies to the next one).
    `metrics_factory()`: the DeliveryMetrics (export/metrics.py), made here: its families are served from the
    start, before the first month closes. `redact`: the
    agent's redactor of the config's secrets."""

    def __init__(self, settings: Callable[[], DeliverSettings], metrics_factory: Callable[[], Any], clock: Clock,
                 redact: Callable[[str], str], smtp_context: object | None = None) -> None:
        self.settings, self.clock, self.redact = settings, clock, redact
        self.smtp_context = smtp_context  # STARTTLS's TLS context; None: the system's CAs
        self._metrics: Any = metrics_factory()
        self._poster = Poster(TIMEOUT)
        self._locks: dict[Path, asyncio.Lock] = {}
        self._writing = asyncio.Lock()  # the channels of one revision share its record
        self._shown: dict[str, dict[str, Any]] = {}  # channel -> its latest delivery, for status()

    async def deliver(self, folder: Path, summary: dict[str, Any]) -> None:
        """Sends the revision on every configured channel not yet recorded as sent or failed; returns once
        each is one of those (or was dropped from the config meanwhile). Safe to call again, at any time."""
        folder = Path(folder)
        async with self._locks.setdefault(folder.resolve(), asyncio.Lock()):
            record = await asyncio.to_thread(read_record, folder)
            letter = await asyncio.to_thread(Letter.of, folder, summary, self.settings().base_url)
            record.update(month=letter.month, revision=letter.revision)
            async with asyncio.TaskGroup() as tg:
                for name in self.settings().channels:
                    tg.create_task(self._channel(folder, record, name, letter))

    def finished(self, folder: Path) -> bool:
        """Every configured channel is recorded as sent or failed (what the close asks at a start)."""
        channels = read_record(Path(folder))["channels"]
        return all(channels.get(n, {}).get("state") in (SENT, FAILED) for n in self.settings().channels)

    def status(self) -> dict[str, Any]:
        """Per channel, its latest delivery: month, revision, state (sent, retrying, failed), attempts, the
        last error (redacted), when it was sent or is tried next (Unix time)."""
        return {name: dict(shown) for name, shown in self._shown.items()}

    async def _channel(self, folder: Path, record: dict[str, Any], name: str, letter: Letter) -> None:
        ch = record["channels"].setdefault(name, {"state": PENDING, "attempts": 0})
        self._show(name, letter, ch)
        while ch["state"] == PENDING:
            await self._turn(ch)
            s = self.settings()
            if name not in s.channels:
                return  # dropped by a reload: left pending, for the config that names it again
            now, ch["to"] = self.clock.time(), self._where(s, name)
            try:
                await (self._mail(s, folder, letter) if name == "email" else self._post(s, letter))
            except RETRIED as exc:
                await self._failed(folder, record, name, letter, self._why(exc, s), now)
            else:
                ch.update(state=SENT, attempts=ch["attempts"] + 1, last_attempt=now, sent_at=now, error="")
                ch.pop("first_failure", None)
                await self._save(folder, record)  # first: the window of a second copy is this write
                self._observe(name, "ok", now, 0.0)
                log.info("report %s/%s delivered by %s to %s (attempt %d)", letter.month, letter.revision, name,
                         ch["to"], ch["attempts"])
            self._show(name, letter, ch)

    async def _failed(self, folder: Path, record: dict[str, Any], name: str, letter: Letter, why: str,
                      now: float) -> None:
        ch = record["channels"][name]
        ch.update(attempts=ch["attempts"] + 1, last_attempt=now, error=why)
        first = ch.setdefault("first_failure", now)
        if now - first >= GIVE_UP:
            ch["state"] = FAILED
        await self._save(folder, record)
        self._observe(name, "error", now, first)
        what = f"report {letter.month}/{letter.revision} not delivered by {name} (attempt {ch['attempts']}): {why}"
        if ch["state"] == FAILED:
            self._observe(name, "gave_up", now, first)
            log.error("%s; given up after %.0f h of failures (a later revision or month tries again)", what,
                      (now - first) / 3600)
        else:
            log.warning("%s; next attempt in %.0f s", what, backoff(ch["attempts"]))

    async def _turn(self, ch: dict[str, Any]) -> None:
        """Waits out the backoff after the channel's failed attempts (recorded in wall time: across restarts)."""
        if not ch["attempts"]:
            return
        delay = ch["last_attempt"] + backoff(ch["attempts"]) - self.clock.time()
        if delay > 0:
            await self.clock.sleep_until(self.clock.monotonic() + delay)

    @staticmethod
    def _where(s: DeliverSettings, name: str) -> str:
        """Where the channel sends, as the log and the status show it."""
        if name == "email":
            return ", ".join(s.email.to) if s.email else ""
        return where(s.webhook.url) if s.webhook else ""

    async def _mail(self, s: DeliverSettings, folder: Path, letter: Letter) -> None:
        e = s.email
        assert e is not None  # only a configured channel is tried

        def send() -> None:
            attached = letter.attached(e.attach_bundle_max)
            msg = mail.message(e.smtp, list(e.to), letter.subject, letter.text(e.attach_bundle_max),
                               attachments(folder, attached))
            msg["Message-ID"] = f"<{letter.key}@{e.smtp.from_addr.rpartition('@')[2] or 'sla-agent'}>"
            mail.send(e.smtp, msg, TIMEOUT, self.smtp_context)  # type: ignore[arg-type]

        await asyncio.to_thread(send)

    async def _post(self, s: DeliverSettings, letter: Letter) -> None:
        assert s.webhook is not None
        body = json.dumps(letter.payload()).encode()
        await self._poster.post(s.webhook.url, body, {"Content-Type": "application/json",
                                                      "Idempotency-Key": letter.key})

    def _why(self, exc: BaseException, s: DeliverSettings) -> str:
        """The error in a few words, without a URL's userinfo or query (tokens) nor the config's secrets."""
        why = f"no answer within {TIMEOUT:g}s" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        if s.webhook is not None:
            url = s.webhook.url
            why = why.replace(url, where(url))
            query = urlsplit(url).query
            why = why.replace(query, "<redacted>") if query else why
        return self.redact(why)

    async def _save(self, folder: Path, record: dict[str, Any]) -> None:
        async with self._writing:
            data = json.dumps(record, indent=1, sort_keys=True).encode()
            await asyncio.to_thread(write_atomically, folder / RECORD, data)

    def _observe(self, name: str, result: str, now: float, failing_since: float) -> None:
        self._metrics.observe(name, result, now, failing_since)

    def _show(self, name: str, letter: Letter, ch: dict[str, Any]) -> None:
        state = "retrying" if ch["state"] == PENDING and ch["attempts"] else ch["state"]
        self._shown[name] = {
            "month": letter.month, "revision": letter.revision, "state": state, "attempts": ch["attempts"],
            "error": ch.get("error", ""), "to": ch.get("to", ""), "sent_at": ch.get("sent_at"),
            "failing_since": ch.get("first_failure"),
            "next_attempt": ch["last_attempt"] + backoff(ch["attempts"]) if state == "retrying" else None}
        if ch.get("first_failure"):  # after a restart too: the alert goes on from the first failure
            self._metrics.failing(name, ch["first_failure"])

    async def close(self) -> None:
        await self._poster.close()
