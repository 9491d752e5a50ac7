"""What the agent POSTs to a receiver's URL (a witness, a report's webhook): one shared session without
cookies, no redirect followed (a receiver that moved is a failure the log names, not a body sent to
wherever it points), a bounded wait, and the URL as it may be shown (no userinfo nor query: tokens)."""
from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp


def where(url: str) -> str:
    try:
        p = urlsplit(url)
        return f"{p.scheme}://{p.hostname}{f':{p.port}' if p.port else ''}{p.path}"
    except ValueError:
        return "<an invalid URL>"


class Poster:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """Raises ValueError on an answer other than 2xx, TimeoutError past the timeout, aiohttp's errors."""
        if self._session is None:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                                  connector=aiohttp.TCPConnector(limit=4))
        async with asyncio.timeout(self.timeout):
            async with self._session.post(url, data=body, allow_redirects=False, headers=headers) as r:
                await r.read()
                if not 200 <= r.status < 300:
                    raise ValueError(f"HTTP {r.status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
