"""`report --verify`: does a JSON report still match the stored ledger, field for field?

The report is built again from the stored rows, with the same `now` and so the same cut-off, and every
field is compared; its own hash, the chain link it was built on, its signature and each journal record of
the month against its own hash are checked too."""
from __future__ import annotations

import json
from typing import Any

from ..calendar import Calendar
from ..config.model import Config
from ..timeutil import parse_month
from . import signing
from .build import ReportError, build, open_store
from .evidence import journal_mismatches, report_hash, unsigned

# The chain has grown since (its head is checked apart); a newer agent may verify an older report (the
# report's hash and signature cover its version).
NOT_COMPARED = {"evidence", "agent_version"}
EVIDENCE_COMPARED = ("ledger_sha256", "rows_hashed", "targets", "range", "until_epoch", "cutoff")


CONFIGURED = "the configuration's key"


def public_key(cfg: Config) -> Any:
    """The key to check signatures with: evidence.public_key_file, else the signing key's own."""
    ev = cfg.evidence
    if ev.public_key_file:
        return signing.load_public(ev.public_key_file)
    if ev.signing_key_file:
        return signing.load_private(ev.signing_key_file).public_key()
    return None


def report_key(cfg: Config, pin: signing.Trusted | None = None) -> signing.Trusted | None:
    """What `report --verify` checks signatures against: the key given with --key, else the configuration's."""
    return signing.trusted(pin, public_key(cfg), CONFIGURED)


def check_signature(doc: dict[str, Any], key: Any) -> list[str]:
    """`key`: a public key, a signing.Trusted, or None (nothing to check a signature with)."""
    sig = (doc.get("evidence") or {}).get("signature")
    if sig is None:
        if key is None:
            return []
        return [f"the report is not signed, and {getattr(key, 'origin', 'a key')} is there to check it with"]
    if key is None:
        return []
    why = signing.check(signing.canonical(unsigned(doc)), sig, key)
    return [f"signature: {why}"] if why else []


def compare(doc: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    problems = []
    if fresh["evidence"]["ledger_sha256"] != doc["evidence"]["ledger_sha256"]:
        problems.append(f"the stored ledger rows differ from those the report was computed from "
                        f"(now {fresh['evidence']['ledger_sha256'][:16]}..., report "
                        f"{str(doc['evidence']['ledger_sha256'])[:16]}...)")
    for name, ev in (fresh["evidence"].get("locations") or {}).items():  # which location's rows changed
        if ev.get("ledger_sha256") != ((doc["evidence"].get("locations") or {}).get(name) or {}).get("ledger_sha256"):
            problems.append(f"location {name}: its ledger rows differ from those the report was computed from")
    for key in sorted((set(doc) | set(fresh)) - NOT_COMPARED):
        if json.dumps(fresh.get(key), sort_keys=True) != json.dumps(doc.get(key), sort_keys=True):
            problems.append(f"`{key}` differs from what the stored ledger gives")
    for key in EVIDENCE_COMPARED[1:]:
        if json.dumps(fresh["evidence"].get(key)) != json.dumps(doc["evidence"].get(key)):
            problems.append(f"`evidence.{key}` differs from what the stored ledger gives")
    return problems


def own_problems(cfg: Config, doc: dict[str, Any], key: Any = None) -> list[str]:
    """What the document says of itself that does not hold: its content against its hash, its signature."""
    problems = []
    if report_hash(doc) != (doc.get("evidence") or {}).get("report_sha256"):
        problems.append("the report's content does not match its report_sha256: numbers were edited")
    return problems + check_signature(doc, key if key is not None else report_key(cfg))


def verify_report(cfg: Config, state_dir: str, doc: dict[str, Any], key: Any = None) -> list[str]:
    """Checks a JSON report against the stored ledger. Returns the mismatches (empty: verified). `key`:
    what the signature is checked against (a public key or a signing.Trusted; default: the configuration's)."""
    ev = doc.get("evidence") or {}
    if "month" not in doc or "ledger_sha256" not in ev or "generated_epoch" not in ev:
        raise ReportError("not an sla-agent JSON report (no month or evidence block)")
    problems = own_problems(cfg, doc, key)
    store = open_store(cfg, state_dir)
    try:
        fresh = build(cfg, store, str(doc["month"]), float(ev["generated_epoch"]), sign=False)
        chain = ev.get("chain")
        link = store.chain_link(int(chain["seq"])) if isinstance(chain, dict) and "seq" in chain else None
        cal = Calendar(cfg.contract)
        start, _ = cal.month_bounds(*parse_month(str(doc["month"])))
        problems += journal_mismatches(store, cal.tz, start, float(fresh["evidence"]["until_epoch"]))
    except (ReportError, TypeError, ValueError, OverflowError) as exc:
        return problems + [f"the report cannot be built again from its own month and time: {exc}"]
    finally:
        store.close()
    if isinstance(chain, dict) and link != chain.get("link"):
        problems.append(f"the chain link the report was built on ({chain.get('seq')}) is not in the ledger's chain")
    return problems + compare(doc, fresh)
