"""What the ledger has changed and the database does not hold yet.

Each flush takes the ledger's changes, adds what an earlier failed write left, and writes it all in one
transaction. When the write fails (disk full, I/O error) the batch is kept and goes out with the next
flush; anything changed meanwhile is newer and wins. Probing never waits for the disk. The minute counts
and digests are kept whole (one row per target and hour, however long writes fail); the journal's
records go back to the journal, which bounds what it holds (ledger/journal.py).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from ..ledger import Ledger
from ..ledger.journal import Journal, Record
from . import chain
from .store import Store

log = logging.getLogger("sla_agent.agent")


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
        self.refused = 0  # rows the store would not write over their seal
        self.renewed = 0  # times the database file was found lost and made anew from memory
        self.rewriting = False  # ...and what memory holds is not in the new file yet
        self._refused_results = 0  # the ledger's count, as last logged
        self._drops_seen = (0, 0)  # the journal's bodies and records dropped, as last seen
        self._drops_from: tuple[int, int] | None = None  # ...when the records held passed their bound

    def _take(self, ledger: Ledger, compactions: list[tuple[str, int, list[int]]]) -> Batch:
        """On the loop: the ledger's changes on top of what is pending; nothing stays pending."""
        batch, self._pending = self._pending, Batch()
        hours, digests = ledger.take_dirty()
        batch.hours.update({(t, h): (blob, errors) for t, h, blob, errors in hours})
        batch.digests.update({(t, s, span): data for t, s, span, data in digests})
        batch.compactions.extend(compactions)
        if self.journal is not None:
            batch.records = self.journal.take(self.clock())
        batch.services = {name: s.service for name, s in ledger.series.items()}
        return batch

    def _give_back(self, batch: Batch) -> None:
        """After a failed write: keep the batch, except where something newer is pending already; the
        journal's records go back to the journal, first in line."""
        newer = self._pending
        batch.hours.update(newer.hours)
        batch.digests.update(newer.digests)
        batch.compactions.extend(newer.compactions)
        if self.journal is not None:
            self.journal.put_back(batch.records)
        batch.records = []
        self._pending = batch

    async def flush(self, ledger: Ledger, compactions: list[tuple[str, int, list[int]]] = (),
                    seal_all: bool = False) -> None:
        """Writes every change not yet stored (and with `seal_all`, at a clean stop, seals every row: those
        not final yet provisionally); raises the write's error after keeping the batch."""
        if self.store.lost():
            self._renew(ledger)
        batch = self._take(ledger, list(compactions))
        hours = [(t, h, blob, errors) for (t, h), (blob, errors) in batch.hours.items()]
        digests = [(t, s, span, data) for (t, s, span), data in batch.digests.items()]
        now = self.clock()
        try:
            self.refused += await asyncio.to_thread(self.store.write, hours, digests, batch.services,
                                                    batch.compactions, batch.records, now, self.location, self.redact,
                                                    seal_all)
        except Exception as exc:
            self._give_back(batch)
            if not self.failing:
                log.error("cannot write the ledger to %s: %s; probing goes on, writes are retried", self.store.path,
                          exc)
            self.failing, self.last_error = True, str(exc)
            self._note_drops()
            raise
        if self.journal is not None:
            self.journal.written(batch.records)
        self._written(ledger, now)
        self._note_drops()

    def _note_drops(self) -> None:
        """Once when the journal starts dropping bodies or records, once when it keeps whole records again."""
        j = self.journal
        if j is None:
            return
        seen, self._drops_seen = self._drops_seen, (j.bodies_dropped, j.records_dropped)
        if self._drops_seen != seen and self._drops_from is None:
            self._drops_from = seen
            log.warning("the journal records waiting to be written%s passed %g MiB: the next are kept without their "
                        "body and files, then not at all (the minute counts and digests are all kept)",
                        " while the ledger cannot be written" if self.failing else "", j.held_bound / 2**20)
        elif self._drops_seen == seen and self._drops_from is not None and not self.failing:
            log.info("the journal keeps whole records again: %d bodies and %d records were dropped meanwhile",
                     seen[0] - self._drops_from[0], seen[1] - self._drops_from[1])
            self._drops_from = None

    def _written(self, ledger: Ledger, now: float) -> None:
        if self.failing:
            log.info("ledger writes resumed")
        if self.rewriting:
            log.info("the new ledger holds what memory held; readiness restored")
        self.failing, self.last_error, self.rewriting = False, None, False
        if ledger.refused_final > self._refused_results:
            log.error("%d probe results refused: their minute was sealed already (a sealed minute never changes)",
                      ledger.refused_final - self._refused_results)
            self._refused_results = ledger.refused_final
        self.settle(ledger, now)

    def _renew(self, ledger: Ledger) -> None:
        """The database file was deleted or replaced under the running agent: a new one is made and
        everything memory still holds is written to it at this flush."""
        log.error("the ledger %s was deleted or replaced while the agent ran: a new one is made from memory "
                  "(minute counts and digests of the last %d days); journal records, tickets and declared windows "
                  "stored before are not in memory and are gone: restore them from a backup", self.store.path,
                  ledger.capacity // 1440)
        self.store.reopen()
        ledger.mark_all_dirty()
        self.renewed += 1
        self.rewriting = True

    def settle(self, ledger: Ledger, now: float) -> None:
        """The minutes final at `now` take no more results: their rows are sealed at this flush (or the next,
        when they are many), and a sealed row never changes."""
        ledger.final_before = max(ledger.final_before, chain.final_hour(now, self.store.seal_delay) * 60)
