"""What the ledger has changed and the database does not hold yet.

Each flush takes the ledger's changes, adds what an earlier failed write left, and writes it all in one
transaction. When the write fails (disk full, I/O error) the batch is kept and goes out with the next
flush; anything changed meanwhile is newer and wins. Probing never waits for the disk.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

from ..ledger import Ledger
from ..ledger.journal import Journal, Record
from .store import Store


@dataclass
class Batch:
    hours: dict[tuple[str, int], tuple[bytes, str]] = field(default_factory=dict)
    digests: dict[tuple[str, int, int], bytes] = field(default_factory=dict)
    compactions: list[tuple[str, int, list[int]]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    services: dict[str, str] = field(default_factory=dict)


class Flusher:
    def __init__(self, store: Store, *, journal: Journal | None = None, location: str = "",
                 redact: Callable[[str], str] = str, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.journal = journal
        self.location = location
        self.redact = redact  # journal text is redacted as it is written, off the probe loop
        self.clock = clock
        self._pending = Batch()
        self.failing = False
        self.last_error: str | None = None

    def _take(self, ledger: Ledger, compactions: list[tuple[str, int, list[int]]]) -> Batch:
        """On the loop: the ledger's changes on top of what is pending; nothing stays pending."""
        batch, self._pending = self._pending, Batch()
        hours, digests = ledger.take_dirty()
        batch.hours.update({(t, h): (blob, errors) for t, h, blob, errors in hours})
        batch.digests.update({(t, s, span): data for t, s, span, data in digests})
        batch.compactions.extend(compactions)
        if self.journal is not None:
            batch.records.extend(self.journal.take(self.clock()))
        batch.services = {name: s.service for name, s in ledger.series.items()}
        return batch

    def _give_back(self, batch: Batch) -> None:
        """After a failed write: keep the batch, except where something newer is pending already."""
        newer = self._pending
        batch.hours.update(newer.hours)
        batch.digests.update(newer.digests)
        batch.compactions.extend(newer.compactions)
        batch.records.extend(newer.records)
        self._pending = batch

    async def flush(self, ledger: Ledger, compactions: list[tuple[str, int, list[int]]] = ()) -> None:
        """Writes every change not yet stored; raises the write's error after keeping the batch."""
        batch = self._take(ledger, list(compactions))
        hours = [(t, h, blob, errors) for (t, h), (blob, errors) in batch.hours.items()]
        digests = [(t, s, span, data) for (t, s, span), data in batch.digests.items()]
        try:
            await asyncio.to_thread(self.store.write, hours, digests, batch.services, batch.compactions,
                                    batch.records, self.clock(), self.location, self.redact)
        except Exception as exc:
            self._give_back(batch)
            self.failing, self.last_error = True, str(exc)
            raise
        self.failing, self.last_error = False, None
