"""A month's close in a process of its own. Building a month's report and bundle holds the GIL for long
stretches (the JSON of a month, digests merged, a million journal lines): in a thread of the agent's
process every probe in flight waited for it, and measured the wait as the vendor's latency. A child at
the lowest CPU priority leaves the event loop alone.

The child is a new interpreter that imports only what it unpickles (multiprocessing's spawn would run
the agent's main module again in it, which a script without a main guard cannot bear), dies with the
agent (PR_SET_PDEATHSIG: a killed agent leaves no close running behind it, whose temporary folder the
next start removes), and is killed when the awaiting task is cancelled (a stop). Its log lines are sent
to the agent and logged there, through the agent's own handlers and redaction."""
from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import traceback
from typing import Any, BinaryIO, Callable, TypeVar

T = TypeVar("T")
LOGGER = "sla_agent"
_PR_SET_PDEATHSIG = 1
# the child's first line of stdin is the agent's sys.path: what it unpickles imports as the agent does
_BOOT = "import json, sys; sys.path[:0] = json.loads(sys.stdin.buffer.readline()); " \
        "from agent.report.child import serve; serve()"


class ChildFailed(RuntimeError):
    """The child ended without an answer (killed, or out of memory)."""


async def in_child(fn: Callable[..., T], *args: Any, idle: bool = True) -> T:
    """fn(*args) in a new process; its return value, or its exception raised here. `fn`, its arguments and
    its result travel by pickle. `idle`: at the lowest CPU priority (beside a running agent), else at ours."""
    level = logging.getLogger(LOGGER).getEffectiveLevel()
    payload = pickle.dumps((os.getpid(), level, fn, args, idle))
    ours, theirs = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _BOOT, str(theirs), pass_fds=(theirs,),
                                                    stdin=subprocess.PIPE)
    finally:
        os.close(theirs)
    try:
        reader = await _reader(ours)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(sys.path).encode() + b"\n" + payload)
        await proc.stdin.drain()
        proc.stdin.close()
        return await _answer(reader, proc)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    return reader


async def _answer(reader: asyncio.StreamReader, proc: asyncio.subprocess.Process) -> Any:
    """Reads the child's messages as they come: its log lines, then its answer."""
    while True:
        try:
            size = int.from_bytes(await reader.readexactly(4), "big")
            kind, *rest = pickle.loads(await reader.readexactly(size))  # nosec B301 - our own child's pipe
        except asyncio.IncompleteReadError:
            code = await proc.wait()
            raise ChildFailed(f"the close's process ended without an answer (exit code {code})") from None
        if kind == "log":
            logging.getLogger(rest[0]).log(rest[1], "%s", rest[2])
            continue
        ok, value = rest
        if ok:
            return value
        raise value


def _send(out: BinaryIO, message: tuple) -> None:
    data = pickle.dumps(message)
    out.write(len(data).to_bytes(4, "big") + data)
    out.flush()


class _Forward(logging.Handler):
    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        _send(self.out, ("log", record.name, record.levelno, text))


def serve() -> None:
    """The child's side: reads the call from stdin, answers on the descriptor named in argv."""
    out = os.fdopen(int(sys.argv[1]), "wb")
    parent, level, fn, args, idle = pickle.loads(sys.stdin.buffer.read())  # nosec B301 - the agent's own call
    _tie_to_parent(parent)
    if idle:
        _lowest_priority()
    root = logging.getLogger(LOGGER)
    root.handlers[:] = [_Forward(out)]
    root.setLevel(level)
    root.propagate = False
    try:
        answer: tuple = (True, fn(*args))
    except BaseException as exc:  # noqa: BLE001 - handed to the agent, which raises it
        answer = (False, exc)
    try:
        _send(out, ("done", *answer))
    except Exception as exc:  # noqa: BLE001 - an answer that does not pickle
        _send(out, ("done", False, RuntimeError(f"{type(exc).__name__}: {exc} (answer: {answer[1]!r:.200})")))
    out.close()


def _tie_to_parent(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: a stop still kills the child
        return
    if os.getppid() != parent:  # the agent died before the line above: nobody awaits this child
        os._exit(1)


def running_idle() -> bool:
    """Whether this process runs at the lowest CPU priority (a month's close beside the agent): a child it
    starts for its own work should too."""
    try:
        return os.sched_getscheduler(0) == os.SCHED_IDLE
    except (AttributeError, OSError):
        return False


def _lowest_priority() -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass
