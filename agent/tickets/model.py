"""A support ticket as the contract sees it (rows 4-6): when it was opened and first answered."""
from __future__ import annotations

from dataclasses import dataclass

FIELDS = ("id", "priority", "opened_at", "responded_at", "workaround_at", "resolved_at", "closed_at")
REQUIRED = ("id", "priority", "opened_at")


@dataclass(frozen=True)
class Ticket:
    id: str
    priority: str
    opened_at: float  # epoch seconds
    responded_at: float | None = None
    workaround_at: float | None = None
    resolved_at: float | None = None
    closed_at: float | None = None
