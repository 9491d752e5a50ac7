"""`report --verify`: does a JSON report still match the stored ledger?"""
from __future__ import annotations

import json
from typing import Any

from ..config.model import Config
from .build import ReportError, build, open_store
from .evidence import report_hash

COMPARED = ("rows", "periods", "incidents", "tickets")


def verify_report(cfg: Config, state_dir: str, doc: dict[str, Any]) -> list[str]:
    """Checks a JSON report against the stored ledger. Returns the mismatches (empty: verified)."""
    ev = doc.get("evidence") or {}
    if "month" not in doc or "ledger_sha256" not in ev or "generated_epoch" not in ev:
        raise ReportError("not an sla-agent JSON report (no month or evidence block)")
    problems = []
    if report_hash(doc) != ev.get("report_sha256"):
        problems.append("the report's content does not match its report_sha256: numbers were edited")
    store = open_store(cfg, state_dir)
    try:
        fresh = build(cfg, store, doc["month"], float(ev["generated_epoch"]))
    finally:
        store.close()
    if fresh["evidence"]["ledger_sha256"] != ev["ledger_sha256"]:
        problems.append(f"the stored ledger rows differ from those the report was computed from "
                        f"(now {fresh['evidence']['ledger_sha256'][:16]}..., report "
                        f"{str(ev['ledger_sha256'])[:16]}...)")
    for key in COMPARED:
        if json.dumps(fresh.get(key), sort_keys=True) != json.dumps(doc.get(key), sort_keys=True):
            problems.append(f"`{key}` differs from what the stored ledger gives")
    return problems
