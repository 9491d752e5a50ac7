"""Browser worker processes, as the agent sees them: a bounded pool, one check at a time per worker.

A worker is `python -m agent.probes.browser.worker` in its own session (process group); Chromium, which
Playwright starts detached, exits when its pipe to the killed driver closes. A worker that does not
answer by the check's deadline is killed with its group and replaced; so is one that dies.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
from typing import Any

from .worker import ARTIFACT_SECONDS, CLOSE_SECONDS

log = logging.getLogger("sla_agent.browser")
START_SECONDS = 30.0  # a cold Chromium start on a small machine
ANSWER_SLACK = ARTIFACT_SECONDS + CLOSE_SECONDS + 5.0  # past the check's timeout, before the worker is killed
LINE_LIMIT = 256 << 20  # a result line carries the artifacts, base64


class BrowserUnavailable(Exception):
    """The worker could not start (no playwright, no Chromium) or died: the check is inconclusive."""


class Worker:
    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.proc: asyncio.subprocess.Process | None = None
        self.version = ""
        self._stderr: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.probes.browser.worker", self.executable, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True, limit=LINE_LIMIT)
        self._stderr = asyncio.get_running_loop().create_task(self._drain_stderr(self.proc))
        try:
            first = await asyncio.wait_for(self.proc.stdout.readline(), START_SECONDS)  # type: ignore[union-attr]
        except TimeoutError:
            await self.kill()
            raise BrowserUnavailable(f"the browser worker did not start within {START_SECONDS:g}s") from None
        doc = json.loads(first) if first else {"fatal": "the browser worker exited at start"}
        if "ready" not in doc:
            await self.kill()
            raise BrowserUnavailable(doc.get("fatal", "the browser worker did not start"))
        self.version = doc["ready"]
        log.info("browser worker %d started: Chromium %s", self.proc.pid, self.version)

    @staticmethod
    async def _drain_stderr(proc: asyncio.subprocess.Process) -> None:
        """What Chromium and Playwright say goes to the log (a full pipe would block the worker)."""
        assert proc.stderr is not None  # noqa: S101
        while line := await proc.stderr.readline():
            log.debug("browser worker %d: %s", proc.pid, line.decode(errors="replace").rstrip())

    async def run(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The job's result; BrowserUnavailable when the worker dies or is late (then it is killed)."""
        if not self.alive:
            await self.start()
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None  # noqa: S101
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout + ANSWER_SLACK)
        except TimeoutError:
            await self.kill()
            raise BrowserUnavailable(f"the browser did not answer within {timeout + ANSWER_SLACK:g}s: "
                                     "killed and restarted") from None
        except (ConnectionError, OSError) as exc:
            await self.kill()
            raise BrowserUnavailable(f"the browser worker is gone: {exc}") from None
        except asyncio.CancelledError:  # its answer would be read as the next job's: the worker goes
            self._signal()
            raise
        doc = json.loads(line) if line else {"fatal": "the browser worker exited"}
        if "fatal" in doc:
            await self.kill()
            raise BrowserUnavailable(doc["fatal"])
        return doc

    def _signal(self) -> asyncio.subprocess.Process | None:
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        return proc

    async def kill(self) -> None:
        proc = self._signal()
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            await asyncio.wait_for(proc.wait(), 10)
        if self._stderr is not None:
            self._stderr.cancel()
        log.info("browser worker %d stopped", proc.pid)


class BrowserPool:
    """`size` workers for one Chromium executable; a check waits for a free one."""

    def __init__(self, executable: str, size: int) -> None:
        self.executable = executable
        self.size = size
        self._idle: asyncio.Queue[Worker] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(Worker(executable))
        self._workers: list[Worker] = list(self._idle._queue)  # type: ignore[attr-defined]
        self._ids = itertools.count(1)
        self.users = 0

    async def run(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        worker = await self._idle.get()
        try:
            return await worker.run({**job, "id": next(self._ids)}, timeout)
        finally:
            self._idle.put_nowait(worker)

    async def close(self) -> None:
        for w in self._workers:
            await w.kill()


_POOLS: dict[tuple[int, str], BrowserPool] = {}


def pool_for(executable: str, size: int) -> BrowserPool:
    """The pool of this event loop for this Chromium: shared by every browser target."""
    key = (id(asyncio.get_running_loop()), executable)
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = BrowserPool(executable, size)
    pool.users += 1
    return pool


async def release(pool: BrowserPool) -> None:
    """One target lets go of its pool; the last one stops the workers."""
    pool.users -= 1
    if pool.users <= 0:
        for key, p in list(_POOLS.items()):
            if p is pool:
                del _POOLS[key]
        await pool.close()
