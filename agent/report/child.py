"""A month's close in a process of its own. Building a month's report and bundle holds the GIL for long
stretches (the JSON of a month, digests merged, a million journal lines): in a thread of the agent's
process every probe in flight waited for it, and measured the wait as the vendor's latency. A child at
the lowest CPU priority leaves the event loop alone.

The child is started fresh (spawn: nothing of the agent's threads, sockets or locks is copied into it),
dies with the agent (PR_SET_PDEATHSIG: a killed agent leaves no close running behind it, whose temporary
folder the next start removes), and is killed when the awaiting task is cancelled (a stop). Its log
lines are sent to the agent and logged there, through the agent's own handlers and redaction."""
from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable, TypeVar

T = TypeVar("T")
LOGGER = "sla_agent"
_PR_SET_PDEATHSIG = 1


class ChildFailed(RuntimeError):
    """The child ended without an answer (killed, or out of memory)."""


async def in_child(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in a new process; its return value, or its exception raised here. `fn`, its arguments and
    its result travel by pickle."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe(duplex=False)
    level = logging.getLogger(LOGGER).getEffectiveLevel()
    proc = ctx.Process(target=_main, args=(theirs, os.getpid(), level, fn, args), name="sla-agent-close", daemon=True)
    proc.start()
    theirs.close()
    try:
        return await _answer(ours, proc)
    finally:
        if proc.is_alive():
            proc.kill()
        ours.close()
        await asyncio.to_thread(proc.join)


async def _answer(conn: Connection, proc: Any) -> Any:
    """Reads the child's messages as they come: its log lines, then its answer."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(conn.fileno(), ready.set)
    try:
        while True:
            await ready.wait()
            ready.clear()
            while conn.poll():
                try:
                    kind, *rest = conn.recv()
                except EOFError:
                    await asyncio.to_thread(proc.join)
                    raise ChildFailed(f"the close's process ended without an answer (exit code {proc.exitcode})")
                if kind == "log":
                    logging.getLogger(rest[0]).log(rest[1], "%s", rest[2])
                    continue
                ok, value = rest
                if ok:
                    return value
                raise value
    finally:
        loop.remove_reader(conn.fileno())


class _Forward(logging.Handler):
    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        self.conn.send(("log", record.name, record.levelno, text))


def _main(conn: Connection, parent: int, level: int, fn: Callable[..., Any], args: tuple) -> None:
    _tie_to_parent(parent)
    _lowest_priority()
    root = logging.getLogger(LOGGER)
    root.handlers[:] = [_Forward(conn)]
    root.setLevel(level)
    root.propagate = False
    try:
        answer: tuple = (True, fn(*args))
    except BaseException as exc:  # noqa: BLE001 - handed to the agent, which raises it
        answer = (False, exc)
    try:
        conn.send(("done", *answer))
    except Exception as exc:  # noqa: BLE001 - an answer that does not pickle
        conn.send(("done", False, RuntimeError(f"{type(exc).__name__}: {exc} (answer: {answer[1]!r:.200})")))
    conn.close()


def _tie_to_parent(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: a stop still kills the child
        return
    if os.getppid() != parent:  # the agent died before the line above: nobody awaits this child
        os._exit(1)


def _lowest_priority() -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass
