"""Work a probe does over a vendor's answer that could hold the event loop every probe shares: its regular
expressions, and the JSON of a large body.

RE2 takes time linear in the text, at a cost per byte that the pattern sets: from nanoseconds to about
100 µs (`(.+){1,1000}zzz` searched 16 KiB in 1.2 s). So a search over more than a few hundred bytes, or
JSON beyond INLINE_BYTES, runs in a thread of the probe's own (RE2 lets go of the GIL while it searches),
one at a time: never queued behind another target's work (four long searches in threads that all targets
shared made every other target's checks wait past their deadline: healthy targets counted down). A probe
whose last search still runs waits for it within its own deadline, so that a probe holds one thread at
most. A search cannot be stopped: `sla-agent run` leaves those still running at exit, once the ledger is
flushed (a search of minutes held SIGTERM), rather than wait for them.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")
INLINE_BYTES = 16 * 1024  # JSON decoded on the loop up to this size (about a millisecond)
INLINE_SEARCH = 256  # bytes searched on the loop, all patterns together: 30 ms at the costliest per byte
THREAD_NAME = "sla-checks"


def inline(size: int, searches: int) -> bool:
    """Whether work over `size` bytes, with `searches` regular expressions to run, is done on the loop."""
    return size <= INLINE_BYTES and size * searches <= INLINE_SEARCH


def running() -> bool:
    """Whether some probe's work is still running in its thread."""
    return any(t.name == THREAD_NAME for t in threading.enumerate())


class OffLoop:
    """One probe's work off the loop."""

    def __init__(self) -> None:
        self._running: concurrent.futures.Future[Any] | None = None

    async def run(self, on_loop: bool, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args): at once when `on_loop`, else in a thread of its own, awaited (a cancelled wait
        leaves the thread to finish, and the probe's next call waits for it)."""
        if on_loop:
            return fn(*args)
        if self._running is not None and not self._running.done():
            await asyncio.wait([asyncio.wrap_future(self._running)])
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        threading.Thread(target=_work, args=(done, fn, args), name=THREAD_NAME).start()
        self._running = done  # once started: a thread that could not start leaves nothing to wait for
        return await asyncio.wrap_future(done)


def _work(done: concurrent.futures.Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    if not done.set_running_or_notify_cancel():
        return
    try:
        done.set_result(fn(*args))
    except BaseException as exc:  # noqa: BLE001 - handed to the awaiting probe
        done.set_exception(exc)
