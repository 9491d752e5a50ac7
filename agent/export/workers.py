"""Threads for the work a client of the endpoint can ask for at will (bcrypt verifications, ledger
extracts): a pool of their own, so that they never take the threads the flushes, renders and
evaluations use, and a lower CPU priority than the probe loop, so that a flood of them on a small
machine leaves the loop the CPU it needs to time its probes."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

NICE = 10  # added to the worker threads' nice value (Linux: per thread); the loop keeps its own


def _lower_priority() -> None:
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE))
    except (AttributeError, OSError):  # not Linux, or not allowed: the threads run at the loop's priority
        pass


def pool(workers: int, name: str) -> ThreadPoolExecutor:
    """`workers` threads at a lower priority, named `name`-N (py-spy and logs show them so)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=_lower_priority)
