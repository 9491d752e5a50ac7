"""/api/v1/ledger's extracts under hostile (or merely impatient) clients.

An extract copies a span of the ledger into a temporary database, gzips it and streams it: seconds of
disk and CPU and up to twice the ledger's size in temporary files. Twenty at once on a 250 MB ledger
wrote 1.7 GB, kept the worker threads the flushes and /metrics need, and ran on after their clients
had gone. Here at most MAX_EXTRACTS run at once (beyond: 503 with Retry-After), each in a thread of
its own pool (view.py: `Served`) that reads on a connection of its own, the temporary space is checked
first (507 when short), and an extract whose client hangs up is stopped at its next statement or chunk.
"""
from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web

from ..store.extract import Cancel, Cancelled
from .connections import client_gone

log = logging.getLogger("sla_agent.http")
MAX_EXTRACTS = 2
RETRY_AFTER = 10  # seconds: about what a month's extract takes
# The temporary space an extract may take: its database (at most the ledger's rows) and, while it is
# gzip'd, the gzip'd copy (smaller), both within SPACE_FACTOR times the ledger's size; beyond that,
# SPACE_RESERVE stays free for the ledger's own writes when both share a file system.
SPACE_FACTOR = 2
SPACE_RESERVE = 64 << 20

Make = Callable[[Path, Cancel], Awaitable[tuple[Path, dict[str, str]]]]  # (folder, cancel) -> gzip'd file, headers


class NoSpace(Exception):
    """Too little temporary space for an extract; the message says how much it needs and has."""


@dataclass
class Extracts:
    """The extracts of one endpoint: how many run now, and what became of the others."""
    running: int = 0
    served: int = 0
    refused: int = 0  # MAX_EXTRACTS were running
    abandoned: int = 0  # stopped: the client went away
    no_space: int = 0

    async def serve(self, request: web.Request, make: Make) -> web.StreamResponse:
        if self.running >= MAX_EXTRACTS:
            self.refused += 1
            return web.json_response({"error": f"{MAX_EXTRACTS} ledger extracts are running: try again later"},
                                     status=503, headers={"Retry-After": str(RETRY_AFTER)})
        self.running += 1
        started = time.monotonic()
        try:
            with tempfile.TemporaryDirectory(prefix="sla-ledger-") as tmp:
                path, headers = await _made(request, make, Path(tmp))
                resp = await _send(request, path, headers)
                self.served += 1
                return resp
        except (Cancelled, ConnectionError):
            self.abandoned += 1
            log.info("a ledger extract stopped after %.1f s: its client went away", time.monotonic() - started)
            return web.Response(status=503, text="the client went away\n")
        except NoSpace as exc:
            self.no_space += 1
            log.warning("a ledger extract was refused: %s", exc)
            return web.json_response({"error": str(exc)}, status=507)
        finally:
            self.running -= 1


async def _made(request: web.Request, make: Make, folder: Path) -> tuple[Path, dict[str, str]]:
    """The extract, stopped when the client hangs up first."""
    cancel = Cancel()
    work = asyncio.ensure_future(make(folder, cancel))
    try:
        await asyncio.wait({work, client_gone(request)}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # the client went away, or the server stops: the files may go only once the thread is done
        if not work.done():
            cancel.set()
            await asyncio.wait({work})
    return work.result()


async def _send(request: web.Request, path: Path, headers: dict[str, str]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={**headers, "Content-Type": "application/gzip",
                                       "Content-Disposition": 'attachment; filename="ledger.db.gz"'})
    resp.content_length = path.stat().st_size
    await resp.prepare(request)
    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, 1 << 20):
            await resp.write(chunk)
    await resp.write_eof()
    return resp
