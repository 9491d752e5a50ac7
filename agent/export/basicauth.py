"""Basic auth against the bcrypt hashes of web.yml, without handing the event loop to a client.

bcrypt is slow on purpose (70 ms at cost 10, 300 ms at 12): verified on the loop, eight clients sending
wrong passwords, no credentials needed, held it long enough to make most probes inconclusive. Here a
verification runs in a worker thread (bcrypt lets go of the GIL), one at a time, with a short queue
beyond which an attempt is refused (429) rather than kept waiting. A pair that passed is remembered as
a keyed digest (as the exporter-toolkit does), so a scrape every 15 s pays bcrypt once; identical
attempts in flight share one verification. An unknown user, or a password bcrypt cannot take (over 72
bytes: bcrypt 5 raises there), costs one verification against a hash of the same cost as the
users' own, and is refused: the time of an answer does not tell which user names exist.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
from collections import Counter, OrderedDict

import bcrypt

from . import workers

VERIFIERS = 1  # bcrypt verifications at once (each takes a CPU while it runs)
MAX_WAITING = 16  # distinct verifications queued or running; an attempt beyond is refused (429)
CACHE_SIZE = 256  # pairs remembered as having passed
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further; exporter-toolkit refuses longer ones too


class TooManyAttempts(Exception):
    """More verifications are waiting than MAX_WAITING: try again later."""


def _verify(password: bytes, hashed: bytes) -> bool:
    """In a worker thread."""
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a hash or password bcrypt refuses: not a match
        return False


def _dummy(users: dict[str, bytes]) -> bytes:
    """A hash no password matches, of the cost most users' hashes have: a valid salt of that cost and a
    made-up checksum (making a real one would cost a verification's time at start)."""
    costs = Counter(int(h[4:6]) for h in users.values() if h[4:6].isdigit())
    cost = min(31, max(4, costs.most_common(1)[0][0] if costs else 10))
    return bcrypt.gensalt(rounds=cost) + b"." * 31


def _credentials(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class BasicAuth:
    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = dict(users)
        self.dummy = _dummy(self.users)
        self.refused = 0  # attempts refused with 429
        self._key = os.urandom(32)
        self._passed: OrderedDict[bytes, None] = OrderedDict()
        self._flight: dict[bytes, asyncio.Future[bool]] = {}
        self._pool = workers.pool(VERIFIERS, "sla-bcrypt")

    async def check(self, header: str) -> bool:
        """Does this Authorization header name a user and its password? Raises TooManyAttempts."""
        pair = _credentials(header)
        if pair is None:
            return False
        user, password = pair
        key = hmac.new(self._key, f"{len(user)}:{user}:{password}".encode(), hashlib.sha256).digest()
        if key in self._passed:
            self._passed.move_to_end(key)
            return True
        flight = self._flight.get(key)
        if flight is None:
            if len(self._flight) >= MAX_WAITING:
                self.refused += 1
                raise TooManyAttempts()
            flight = self._start(key, user, password.encode("utf-8"))
        if not await asyncio.shield(flight):  # shielded: one client hanging up must not cancel the others'
            return False
        self._passed[key] = None
        if len(self._passed) > CACHE_SIZE:
            self._passed.popitem(last=False)
        return True

    def _start(self, key: bytes, user: str, password: bytes) -> asyncio.Future[bool]:
        hashed = self.users.get(user)
        valid = hashed is not None and len(password) <= MAX_PASSWORD_BYTES
        # the same single verification whatever is wrong, of the same cost; its result counts only if valid
        work = asyncio.get_running_loop().run_in_executor(
            self._pool, _verify, password[:MAX_PASSWORD_BYTES], self.dummy if hashed is None else hashed)
        flight = asyncio.ensure_future(_only_if(valid, work))
        self._flight[key] = flight
        flight.add_done_callback(lambda _: self._flight.pop(key, None))
        return flight

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _only_if(valid: bool, work: asyncio.Future[bool]) -> bool:
    return await work and valid
