"""Logs a person can read: one line per event, UTC time, level, component, message; no secrets."""
from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from .redact import Redactor

# Libraries whose records a remote client can cause: every malformed request made aiohttp log a
# multi-line traceback past this module's redacting formatter.
FOREIGN = ("aiohttp", "asyncio")
FOREIGN_LINES_PER_MINUTE = 10  # per library; beyond, a count on the next line that passes
FOREIGN_LINE_CHARS = 300  # the text of a record is the client's request line or header, at any length
_POINTER = re.compile(r"^[\s^~]*$")  # the caret under the offending byte in aiohttp's parser errors


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        record.name = record.name.removeprefix("sla_agent.")
        return self.redact(super().format(record))


class _OneLine(_Formatter):
    """A library's record on one line: its message, then the exception's type, text and innermost frame
    instead of the traceback; cut to FOREIGN_LINE_CHARS (before redaction, which only shortens)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            frames = traceback.extract_tb(exc.__traceback__)
            where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
            text += f" ({type(exc).__name__}: {_flat(str(exc))}{where})"
        dropped = getattr(record, "dropped", 0)
        if dropped:
            text += f" [{dropped} more lines of {record.name.split('.')[0]} dropped in the minute before]"
        text = _flat(text)
        if len(text) > FOREIGN_LINE_CHARS:
            text = text[:FOREIGN_LINE_CHARS] + "..."
        line = logging.makeLogRecord({**record.__dict__, "msg": text, "args": (), "exc_info": None,
                                      "exc_text": None, "stack_info": None})
        return super().format(line)


def _flat(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if not _POINTER.match(part))


class _RateLimit(logging.Filter):
    """At most `limit` records of each library a minute: a flood of bad requests is a few lines and a count."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.limit = limit
        self.clock = clock
        self.windows: dict[str, list] = {}  # library -> [window start, passed, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        w = self.windows.setdefault(record.name.split(".")[0], [now, 0, 0])
        if now - w[0] >= 60:
            if w[2]:
                record.dropped = w[2]
            w[:] = [now, 0, 0]
        if w[1] >= self.limit:
            w[2] += 1
            return False
        w[1] += 1
        return True


def setup(level: str = "info", redact: Redactor | None = None, stream=None) -> None:
    redact = redact or Redactor()
    root = logging.getLogger("sla_agent")
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter(redact))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    foreign = logging.StreamHandler(stream or sys.stderr)
    foreign.setFormatter(_OneLine(redact))
    foreign.addFilter(_RateLimit(FOREIGN_LINES_PER_MINUTE))
    for name in FOREIGN:
        lib = logging.getLogger(name)
        for h in list(lib.handlers):
            if isinstance(h.formatter, _OneLine):
                lib.removeHandler(h)
        lib.addHandler(foreign)
        lib.setLevel(level.upper())
        lib.propagate = False  # past here only Python's last-resort handler: raw, multi-line, unredacted


def set_redactor(redact: Redactor) -> None:
    for name in ("sla_agent",) + FOREIGN:
        for h in logging.getLogger(name).handlers:
            if isinstance(h.formatter, _Formatter):
                h.formatter.redact = redact
