"""Browser worker processes, as the agent sees them: a bounded pool, one check at a time per worker.

A worker is `python -m agent.probes.browser.worker` in its own session (process group); Chromium, which
Playwright starts detached, exits when its pipe to the killed driver closes. A worker that does not
answer by the check's deadline is killed with its group and replaced; so is one that dies, and one whose
answer cannot be read or names another job: once out of step, its answers would land on other targets.
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
from typing import Any, AsyncIterator, Awaitable, Callable

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
        self.line_limit = LINE_LIMIT  # the worker is told, and keeps its answers within it
        self.proc: asyncio.subprocess.Process | None = None
        self.version = ""
        self._stderr: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.probes.browser.worker", self.executable, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
            limit=self.line_limit)
        self._stderr = asyncio.get_running_loop().create_task(self._drain_stderr(self.proc))
        doc = await self._answer(START_SECONDS, f"the browser worker did not start within {START_SECONDS:g}s")
        if "ready" not in doc:
            await self.kill()
            raise BrowserUnavailable("the browser worker did not start")
        self.version = str(doc["ready"])
        log.info("browser worker %d started: Chromium %s", self.proc.pid, self.version)

    @staticmethod
    async def _drain_stderr(proc: asyncio.subprocess.Process) -> None:
        """What Chromium and Playwright say goes to the log (a full pipe would block the worker)."""
        assert proc.stderr is not None  # noqa: S101
        while line := await proc.stderr.readline():
            log.debug("browser worker %d: %s", proc.pid, line.decode(errors="replace").rstrip())

    async def run(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The job's result; BrowserUnavailable when the worker dies, is late or answers out of step (then
        it is killed: whatever it says next could be taken for the next job's answer)."""
        if not self.alive:
            await self.start()
        assert self.proc is not None and self.proc.stdin is not None  # noqa: S101
        job = {**job, "answer_bytes": self.line_limit}
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            await self.proc.stdin.drain()
        except (ConnectionError, OSError) as exc:
            await self.kill()
            raise BrowserUnavailable(f"the browser worker is gone: {exc}") from None
        except asyncio.CancelledError:
            self._signal()
            raise
        wait = timeout + ANSWER_SLACK
        doc = await self._answer(wait, f"the browser did not answer within {wait:g}s: killed and restarted")
        if doc.get("id") != job["id"]:
            await self.kill()
            raise BrowserUnavailable(f"the browser answered check {str(doc.get('id'))[:40]!r} instead of "
                                     f"{job['id']}: killed and restarted")
        return doc

    async def _answer(self, seconds: float, late: str) -> dict[str, Any]:
        """The worker's next line, a JSON object. Failing to read one kills the worker: the rest of a line
        over the limit, or an answer still coming, would otherwise be read as a later job's."""
        assert self.proc is not None and self.proc.stdout is not None  # noqa: S101
        try:
            async with asyncio.timeout(seconds):
                line = await self.proc.stdout.readline()
            doc = json.loads(line) if line else {"fatal": "the browser worker exited"}
        except TimeoutError:
            problem = late
        except (ConnectionError, OSError) as exc:
            problem = f"the browser worker is gone: {exc}"
        except ValueError as exc:  # over the line limit, or not JSON
            problem = f"unreadable answer from the browser ({str(exc)[:200]}): killed and restarted"
        except asyncio.CancelledError:
            self._signal()
            raise
        else:
            if isinstance(doc, dict) and "fatal" not in doc:
                return doc
            problem = str(doc["fatal"]) if isinstance(doc, dict) else "the browser worker's answer is not an object"
        await self.kill()
        raise BrowserUnavailable(problem)

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

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[Callable[[dict[str, Any], float], Awaitable[dict[str, Any]]]]:
        """A free worker for one check. The check starts once it has one: a wait for a busy pool is the
        agent's, not the vendor's, and a result stamped before it could land behind its hour's seal."""
        worker = await self._idle.get()
        try:
            yield lambda job, timeout: worker.run({**job, "id": next(self._ids)}, timeout)
        finally:
            self._idle.put_nowait(worker)

    async def run(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        async with self.lease() as run:
            return await run(job, timeout)

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
