"""One agent per state directory: two agents writing one ledger overwrite each other's counts (each
upserts its own hour rows), so the daemon holds an exclusive lock on STATE_DIR/agent.lock while it runs.
Commands that only read (report, evidence) or add rows of their own (tickets, maintenance) do not take it."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .store import StoreError

LOCK_NAME = "agent.lock"


class StateLock:
    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock or raises StoreError naming the holder's PID. The kernel drops it when the
        process dies, however it dies: no stale lock after a SIGKILL."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(f"the state directory {self.path.parent} is in use by another sla-agent (PID {holder}): "
                             "two agents on one ledger overwrite each other's counts; stop it, or give this one "
                             "its own --state-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def in_use(state_dir: str | Path) -> bool:
    """Is an agent running on this state directory (holding its lock)? Asked without taking the lock, and
    without writing: a check may run where it may not write."""
    try:
        fd = os.open(Path(state_dir) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False  # no lock file: no agent ever ran here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock, if taken
