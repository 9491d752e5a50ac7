"""The evidence bundle of a month: what the vendor or an arbitrator needs to check the report without
the agent's ledger, in one .tar.gz.

    report.json, report.html   the report (signed when the agent has a key)
    journal.jsonl              the month's failure journal, one record a line
    ledger.db                  an extract of the ledger: the rows the report reads and the chain sealing them
    config.yaml                the agent's config (secrets redacted): the contract the report applies
    public_key.pem             the key the report and this manifest are signed with (when signed)
    MANIFEST.json              the sha256 of each file above (signed when the agent has a key)
    README.txt                 how to check all this

`sla-agent evidence verify BUNDLE.tar.gz` checks the files against the manifest and its signature, walks
the extract's chain, builds the report again from the extract and compares every field.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from ..config import Config, parse_config
from ..redact import Redactor
from ..store import Store, StoreError
from . import signing
from .build import ReportError, build, open_store
from .formats import render
from .verify import check_signature, compare

MAX_BUNDLE_BYTES = 16 << 30  # what a bundle may unpack to: a bound against a crafted archive
MEMBERS = ("report.json", "report.html", "journal.jsonl", "ledger.db", "config.yaml", "README.txt", "public_key.pem",
           "MANIFEST.json")
README = """This is the evidence of an SLA report made by sla-agent.

Check it with:   sla-agent evidence verify {name}

That checks each file against MANIFEST.json (and the manifest's signature, when there is one, with
public_key.pem: compare its fingerprint, printed by the check, with the one the agent's owner gave you);
walks the hash chain in ledger.db, which seals the stored rows; builds the report again from ledger.db and
config.yaml and compares every field with report.json; and checks report.json's signature.

report.html is the report to read; journal.jsonl lists the failed probes (and one successful probe per
target and minute) the figures rest on: times, addresses, HTTP status, response headers, error text.
"""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _span(cfg: Config, doc: dict[str, Any]) -> tuple[float, float]:
    from ..calendar import Calendar
    from ..timeutil import parse_month

    start, _ = Calendar(cfg.contract).month_bounds(*parse_month(doc["month"]))
    return start, float(doc["evidence"]["until_epoch"])


def _epoch(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text).timestamp()


def _write_members(cfg: Config, store: Store, doc: dict[str, Any], folder: Path) -> None:
    start, until = _span(cfg, doc)
    rows_from = min([start] + [_epoch(p["start"]) for p in doc["periods"]])
    store.extract(folder / "extract", rows_from, start, until)
    (folder / "extract" / "ledger.db").rename(folder / "ledger.db")
    shutil.rmtree(folder / "extract")
    ids = _scope_ids(folder / "ledger.db", cfg)
    store.journal_lines(folder / "journal.jsonl", start, until, ids)
    (folder / "report.json").write_text(render(doc, "json"), encoding="utf-8")
    (folder / "report.html").write_text(render(doc, "html"), encoding="utf-8")
    (folder / "config.yaml").write_text(Redactor(cfg.secrets)(Path(cfg.source).read_text(encoding="utf-8")),
                                        encoding="utf-8")
    (folder / "README.txt").write_text(README.format(name=f"sla-{doc['month']}-evidence.tar.gz"), encoding="utf-8")
    if doc["evidence"].get("signature"):
        (folder / "public_key.pem").write_bytes(signing.public_pem(signing.load_private(cfg.evidence.signing_key_file)))


def _scope_ids(db: Path, cfg: Config) -> tuple[int, int]:
    extract = Store(db.parent, thresholds=cfg.contract.thresholds, readonly=True)
    try:
        lo, hi = (extract.extract_scope() or {}).get("journal_ids", (0, -1))
    finally:
        extract.close()
    return int(lo), int(hi)


def _manifest(folder: Path, doc: dict[str, Any], key: Any) -> None:
    files = {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.name in MEMBERS}
    manifest: dict[str, Any] = {"month": doc["month"], "created_at": time.time(), "files": files}
    if key is not None:
        manifest["signature"] = signing.sign(signing.canonical(manifest), key)
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")


def export_bundle(cfg: Config, state_dir: str, month: str, now: float, output: Path) -> dict[str, Any]:
    """Writes the bundle; returns the report it holds."""
    if not cfg.source or not Path(cfg.source).is_file():
        raise ReportError("the bundle carries the config file: give it with --config")
    key = signing.load_private(cfg.evidence.signing_key_file) if cfg.evidence.signing_key_file else None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = open_store(cfg, state_dir)
        try:
            doc = build(cfg, store, month, now)
            _write_members(cfg, store, doc, folder)
        finally:
            store.close()
        _manifest(folder, doc, key)
        with tarfile.open(output, "w:gz", compresslevel=1) as tar:  # a month of journal: speed over size
            for path in sorted(folder.iterdir(), key=lambda p: MEMBERS.index(p.name) if p.name in MEMBERS else 99):
                tar.add(path, arcname=f"sla-{doc['month']}-evidence/{path.name}", recursive=False,
                        filter=lambda info: _plain(info, now))
    return doc


def _plain(info: tarfile.TarInfo, now: float) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime, info.mode = int(now), 0o644
    return info


def _unpack(path: Path, dest: Path) -> list[str]:
    """The bundle's regular files into `dest`, by their base name only; returns their names."""
    names, total = [], 0
    try:
        with tarfile.open(path, "r:gz") as tar:
            for m in tar:
                name = Path(m.name).name
                if not m.isfile() or name not in MEMBERS:
                    continue
                total += m.size
                if total > MAX_BUNDLE_BYTES:
                    raise ReportError(f"{path}: unpacks to more than {MAX_BUNDLE_BYTES} bytes")
                with tar.extractfile(m) as src, open(dest / name, "wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, out, 1 << 20)
                names.append(name)
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise ReportError(f"{path}: not a readable .tar.gz: {exc}") from None
    return names


def _check_manifest(folder: Path) -> tuple[list[str], Any]:
    """Problems with the files against the manifest, and the bundled public key (None: unsigned)."""
    try:
        manifest = json.loads((folder / "MANIFEST.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ["MANIFEST.json is missing or not JSON"], None
    listed = manifest.get("files", {})
    present = {p.name for p in folder.iterdir()}
    problems = [f"{name}: {'missing' if name not in present else 'changed since the bundle was made'}"
                for name, digest in listed.items() if name not in present or _sha256(folder / name) != digest]
    problems += [f"{name}: not listed in the manifest" for name in present - set(listed) - {"MANIFEST.json"}]
    key = signing.load_public(folder / "public_key.pem") if "public_key.pem" in present else None
    sig = manifest.get("signature")
    if key is not None and sig is None:
        problems.append("MANIFEST.json is not signed, but the bundle has a public key")
    elif key is not None:
        why = signing.check(signing.canonical({k: v for k, v in manifest.items() if k != "signature"}), sig, key)
        if why:
            problems.append(f"MANIFEST.json signature: {why}")
    return problems, key


def _check_ledger(folder: Path, doc: dict[str, Any], cfg: Config) -> tuple[list[str], dict[str, Any]]:
    """The extract's chain walked, its journal and journal.jsonl compared, the report built again and compared."""
    try:
        store = Store(folder, thresholds=cfg.contract.thresholds, readonly=True)
    except StoreError as exc:
        return [f"ledger.db: {exc}"], {}
    try:
        scope = store.extract_scope() or {}
        problems, stats = store.verify(scope.get("journal_from"), scope.get("until"))
        ids = tuple(scope.get("journal_ids", (0, -1)))
        if store.journal_lines_digest(scope.get("journal_from", 0), scope.get("until", 0), ids) != \
                _sha256(folder / "journal.jsonl"):
            problems.append("journal.jsonl differs from the journal in ledger.db")
        head = doc["evidence"].get("chain") or {}
        if head and store.chain_link(int(head["seq"])) != head.get("link"):
            problems.append(f"the chain link the report was built on ({head['seq']}) is not in the chain")
        fresh = build(cfg, store, doc["month"], float(doc["evidence"]["generated_epoch"]), sign=False)
    finally:
        store.close()
    return [f"ledger.db: {p}" for p in problems] + [f"report.json: {p}" for p in compare(doc, fresh)], stats


def verify_bundle(path: Path) -> tuple[list[str], dict[str, Any]]:
    """Everything a bundle claims, checked offline. Returns (problems, facts to print)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _unpack(path, folder)
        problems, key = _check_manifest(folder)
        facts: dict[str, Any] = {"signed by key": signing.key_id(key) if key is not None else "not signed"}
        needed = ("report.json", "ledger.db", "config.yaml", "journal.jsonl")
        if problems or not all((folder / n).exists() for n in needed):
            return problems or [f"one of {', '.join(needed)} is missing"], facts
        doc = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        cfg = parse_config((folder / "config.yaml").read_text(encoding="utf-8"), "config.yaml", environ={},
                           offline=True)
        found, stats = _check_ledger(folder, doc, cfg)
        facts.update(stats)
        return found + [f"report.json {p}" for p in check_signature(doc, key)], facts
