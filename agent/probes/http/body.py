"""Reading a response body whole, within a bound. A body arrives in any number of pieces (chunked, or
one Content-Length body in several TCP segments): one read returns only what has arrived, so the reader
loops to the end. Shared by the probe, its OAuth2 token source and the ticket feed."""
from __future__ import annotations

import aiohttp

READ_CHUNK = 64 * 1024


async def read_limited(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """(the body, False), or (its first bytes, True) when it is larger than `limit`: the transfer is then
    cut, the rest never read."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await resp.content.read(min(READ_CHUNK, limit + 1 - size) if limit + 1 - size > 0 else 1)
        if not chunk:
            return b"".join(chunks), False
        size += len(chunk)
        if size > limit:
            resp.close()
            return b"".join(chunks), True
        chunks.append(chunk)
