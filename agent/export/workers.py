"""Threads for the work a client of the endpoint can ask for at will (bcrypt verifications, ledger
extracts): a pool of their own, so that they never take the threads the flushes, renders and
evaluations use, and the CPU only when the probe loop does not want it.

On Linux the threads run under SCHED_IDLE: the loop's thread (or any other) that wakes takes the CPU
from them at once, where with a nice value alone the scheduler may first let them finish their time
slice, and a probe wakes the loop several times. SCHED_IDLE threads still get a small share when the
machine is busy: they are slowed down, never stopped."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

NICE = 19  # where SCHED_IDLE is not there: the lowest priority a nice value gives


def _lower_priority() -> None:
    tid = threading.get_native_id()
    try:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError):  # not Linux
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, tid, NICE)
    except (AttributeError, OSError):  # not allowed: the threads run at the loop's priority
        pass


def pool(workers: int, name: str) -> ThreadPoolExecutor:
    """`workers` threads at the lowest priority, named `name`-N (py-spy and logs show them so)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=_lower_priority)
