"""The evidence of a report: a hash of exactly the stored rows it was computed from, and a hash of its
own content."""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from ..calendar import Calendar, Window, iso
from ..config.model import Config
from ..store import Store
from . import signing

if TYPE_CHECKING:  # pragma: no cover
    from ..tickets import Ticket

def report_hash(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k not in ("generated_at", "evidence")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def evidence_hash(store: Store, targets: list[str], start: float, until: float, tickets: "list[Ticket]",
                  windows: list[Window], outcomes: tuple[str, ...] | None = None) -> tuple[str, int]:
    """sha256 over exactly the stored rows the report reads: minute counts in [start, until), the
    digests of complete buckets, the journal records (of `outcomes`; default all), the tickets opened in
    the month and the declared windows."""
    h = hashlib.sha256()
    n = 0
    rows_of = store.evidence_rows(targets, start, until, *(() if outcomes is None else (outcomes,)))
    for name, content, rows in rows_of:
        h.update(name.encode())
        h.update(content)
        n += rows
    n += records_hashed(h, tickets, windows)
    return h.hexdigest(), n


def records_hashed(h: Any, tickets: "list[Ticket]", windows: list[Window]) -> int:
    """Adds the tickets and declared windows to the hash `h`; returns how many. What can still change
    about a closed month once its rows are sealed final (a month's close watches it: report/closing.py)."""
    for t in tickets:
        h.update(f"t|{t.id}|{t.priority}|{t.opened_at}|{t.responded_at}|{t.workaround_at}|{t.resolved_at}|"
                 f"{t.closed_at}".encode())
    for w in windows:
        h.update(f"w|{w.kind}|{w.start}|{w.end}|{w.reason}".encode())
    return len(tickets) + len(windows)


def evidence_block(doc: dict[str, Any], store: Store, cfg: Config, cal: Calendar, span: tuple[float, float],
                   until: float, now: float, declared: list[Window], sign: bool = True) -> dict[str, Any]:
    """The month's evidence: `span` is the month, `until` the cut-off, `declared` the windows of the CLI
    and the config (the weekly ones follow from the config). Signed when a signing key is configured."""
    start, end = span
    targets = sorted(t.name for t in cfg.all_targets)
    digest, n = evidence_hash(store, targets, start, until, store.tickets(start, end), declared)
    head = store.chain_head()
    block = {"algorithm": "sha256", "ledger_sha256": digest, "rows_hashed": n, "targets": targets,
             "range": [iso(start, cal.tz), iso(until, cal.tz)], "until_epoch": until, "generated_epoch": now,
             "cutoff": iso(until, cal.tz),
             "chain": None if head is None else {"seq": head["seq"], "link": head["link"],
                                                 "at": iso(head["at"], cal.tz)}}
    return sealed(doc, block, cfg, sign)


def sealed(doc: dict[str, Any], block: dict[str, Any], cfg: Config, sign: bool = True) -> dict[str, Any]:
    """The evidence `block` with the hash of the document's content, and its signature over the document
    and the block when a signing key is configured and `sign` is on."""
    block["report_sha256"] = report_hash(doc)
    if sign and cfg.evidence.signing_key_file:
        key = signing.load_private(cfg.evidence.signing_key_file)
        block["signature"] = signing.sign(signing.canonical({**doc, "evidence": block}), key)
    return block


def journal_mismatches(store: Store, tz: Any, start: float, until: float, ids: tuple[int, int] = (0, -1)) -> list[str]:
    """The journal records of [start, until) (and with ids in `ids`) whose content no longer matches the
    hash written with them. The evidence hash is over the stored hashes, and a seal made after an edit
    covers the edit: only the record's content hashed again tells."""
    return mismatches_named(*store.journal_unmatched(start, until, ids), tz)


def mismatches_named(found: list[tuple[int, str, float]], n: int, tz: Any) -> list[str]:
    """The records Store.journal_unmatched() found, (id, target, at) of the first ones and how many, as problems."""
    out = [f"journal record {rid} ({target}, {iso(at, tz)}): its content differs from the hash written with it"
           for rid, target, at in found]
    if n > len(found):
        out.append(f"and {n - len(found)} more journal records whose content differs from the hash written with them")
    return out


def unsigned(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as it was signed: everything but the signature."""
    return {**doc, "evidence": {k: v for k, v in (doc.get("evidence") or {}).items() if k != "signature"}}
