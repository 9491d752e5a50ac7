"""Logs a person can read: one line per event, UTC time, level, component, message; no secrets."""
from __future__ import annotations

import logging
import sys
import time

from .redact import Redactor


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        record.name = record.name.removeprefix("sla_agent.")
        return self.redact(super().format(record))


def setup(level: str = "info", redact: Redactor | None = None, stream=None) -> None:
    root = logging.getLogger("sla_agent")
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter(redact or Redactor()))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def set_redactor(redact: Redactor) -> None:
    for h in logging.getLogger("sla_agent").handlers:
        if isinstance(h.formatter, _Formatter):
            h.formatter.redact = redact
