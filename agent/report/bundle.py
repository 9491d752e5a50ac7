"""The evidence bundle of a month: what the vendor or an arbitrator needs to check the report without
the agent's ledger, in one .tar.gz.

    report.json, report.html   the report (signed when the agent has a key)
    journal.jsonl              (bundles made before the journal was packed) the month's failure journal
    ledger.db                  an extract of the ledger: the rows the report reads and the chain sealing them
    config.yaml                the agent's config (secrets redacted): the contract the report applies
    method.json                the agent's version, the config's hash, how the contract was read, what the
                               report was built from, Python, OpenSSL, the probes' TLS groups, the clocks
    public_key.pem             the key the report and this manifest are signed with (when signed)
    MANIFEST.json              the sha256 of each file above (signed when the agent has a key)
    README.txt                 how to check all this

`sla-agent evidence verify BUNDLE.tar.gz` (unbundle.py) checks the files against the manifest and its
signature, walks the extract's chain, builds the report again from the extract and compares every field.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..calendar import Calendar
from ..config import Config
from ..redact import Redactor
from ..store import Store
from ..timeutil import parse_month
from . import signing
from .build import ReportError, build_apart, open_store, span_of
from .evidence import mismatches_named
from .formats import render
from .method import NAME, method

MAX_BUNDLE_BYTES = 16 << 30  # what a bundle may unpack to: a bound against a crafted archive
MAX_FILE_BYTES = 64 << 20  # each file but the ledgers and journals: far above what the agent writes
MEMBERS = ("report.json", "report.html", "journal.jsonl", "ledger.db", "config.yaml", "method.json", "README.txt",
           "public_key.pem", "MANIFEST.json")
PER_LOCATION = re.compile(r"(ledger|journal)-([A-Za-z0-9._-]{1,63})\.(db|jsonl)")  # a report over locations


def member(name: str) -> bool:
    return name in MEMBERS or PER_LOCATION.fullmatch(name) is not None


def _order(name: str) -> tuple[int, str]:
    return (MEMBERS.index(name) if name in MEMBERS else 3), name
README = """This is the evidence of an SLA report made by sla-agent.

Check it with:   sla-agent evidence verify {name}

That checks each file against MANIFEST.json (and the manifest's signature, when there is one, with
public_key.pem: compare its fingerprint, printed by the check, with the one the agent's owner gave you);
walks the hash chain in ledger.db, which seals the stored rows; holds its minute counts against its
journal; builds the report again from ledger.db and config.yaml and compares every field with
report.json; checks report.json's signature, and that report.html is report.json rendered; and prints
method.json (the agent's version, Python, OpenSSL, the probes' TLS groups, the clocks) once it agrees
with the other files. Give the key's fingerprint the agent's owner sent you with --key FINGERPRINT.

When the agent had its chain time-stamped (RFC 3161), ledger.db carries the tokens: add --tsa-ca FILE,
the certificates of the time-stamping authorities you trust, and each token is checked against them and
against the chain; the check prints the time each run of links is proven to have existed by.

A report over several locations carries one ledger-NAME.db per location instead of ledger.db; each is
checked the same way, and the report is built again from all of them.

report.html is the report to read. The journal of failed probes (and one successful probe per target and
minute) the figures rest on (times, addresses, HTTP status, response headers, error text) is in ledger.db,
as the agent keeps it; write it out as JSON lines, one record a line, with:

                 sla-agent evidence journal {name} --output DIR
"""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _span(cfg: Config, doc: dict[str, Any]) -> tuple[float, float]:
    start, _ = Calendar(cfg.contract).month_bounds(*parse_month(doc["month"]))
    return start, float(doc["evidence"]["until_epoch"])


def _epoch(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text).timestamp()


Early = tuple[tuple[float, float, tuple[int, int]], Any]  # the span and runs a journal's pass was made over, its result


def _write_ledger(cfg: Config, store: Store, doc: dict[str, Any], folder: Path, suffix: str = "",
                  early: Early | None = None) -> None:
    """The extract of the rows the report reads and the month's journal, as ledger{suffix}.db (the journal
    in it as the ledger keeps it; `evidence journal` writes it out as JSON lines). `early`: the journal's pass,
    made while the report was built; made again here when its span is not the report's."""
    start, until = _span(cfg, doc)
    rows_from = min([start] + [_epoch(p["start"]) for p in doc["periods"]])
    ids = store.sealed_runs(start, until)
    with ThreadPoolExecutor(1) as pool:  # the journal's pass beside the extract's copy, each on a connection of its own
        checked = pool.submit(lambda: early[1] if early and early[0] == (start, until, ids) else
                              store.journal_checked(start, until, ids, apart=True, lines=False))
        store.extract(folder / "extract", rows_from, start, until)
        (folder / "extract" / "ledger.db").rename(folder / f"ledger{suffix}.db")
        shutil.rmtree(folder / "extract")
        _, found, n, _ = checked.result()
    scoped = _scope_ids(folder / f"ledger{suffix}.db", cfg)
    if scoped != ids:  # a run sealed in between: the records checked are those the extract holds
        _, found, n, _ = store.journal_checked(start, until, scoped, lines=False)
    edited = mismatches_named(found, n, Calendar(cfg.contract).tz)
    if edited:  # a bundle would ship hashes its own records contradict
        raise ReportError(f"{'location ' + suffix[1:] + ': ' if suffix else ''}the bundle is not made: "
                          + "; ".join(edited))


def _report_and_pass(cfg: Config, store: Store, month: str, now: float) -> tuple[dict[str, Any], Early]:
    """The report, built in a process of its own, and meanwhile the journal's pass over the span it will have."""
    rebuilt = build_apart(cfg, store.dir, month, now)
    start, until = span_of(cfg, month, now)
    ids = store.sealed_runs(start, until)
    early = ((start, until, ids), store.journal_checked(start, until, ids, lines=False))
    return rebuilt.result(), early


def write_journals(folder: Path, cfg: Config, dest: Path) -> list[tuple[Path, int]]:
    """The journal of each ledger extract in `folder` (a bundle's files) as JSON lines in `dest`:
    journal.jsonl for ledger.db, journal-NAME.jsonl for ledger-NAME.db, as bundles once carried them; and how
    many records each holds."""
    written = []
    for db in sorted(folder.glob("ledger*.db")):
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            (Path(tmp) / "ledger.db").symlink_to(db.resolve())
            extract = Store(Path(tmp), thresholds=cfg.contract.thresholds, readonly=True)
            try:
                scope = extract.extract_scope() or {}
                out = dest / db.name.replace("ledger", "journal", 1).replace(".db", ".jsonl")
                n = extract.journal_lines(out, scope.get("journal_from") or 0, scope.get("until") or 0,
                                          tuple(scope.get("journal_ids", (0, -1))))
            finally:
                extract.close()
        written.append((out, n))
    return written


def _write_common(cfg: Config, doc: dict[str, Any], folder: Path) -> None:
    (folder / "report.json").write_text(render(doc, "json"), encoding="utf-8")
    (folder / "report.html").write_text(render(doc, "html"), encoding="utf-8")
    (folder / "config.yaml").write_text(Redactor(cfg.secrets)(Path(cfg.source).read_text(encoding="utf-8")),
                                        encoding="utf-8")
    (folder / NAME).write_text(json.dumps(method(cfg, doc, folder / "config.yaml"), indent=2, sort_keys=True),
                               encoding="utf-8")
    (folder / "README.txt").write_text(README.format(name=f"sla-{doc['month']}-evidence.tar.gz"), encoding="utf-8")
    if doc["evidence"].get("signature"):
        (folder / "public_key.pem").write_bytes(signing.public_pem(signing.load_private(cfg.evidence.signing_key_file)))


def _scope_ids(db: Path, cfg: Config) -> tuple[int, int]:
    with tempfile.TemporaryDirectory(dir=db.parent) as tmp:  # a store is a folder holding ledger.db
        (Path(tmp) / "ledger.db").symlink_to(db.resolve())
        return _ids_of(Path(tmp), cfg)


def _ids_of(folder: Path, cfg: Config) -> tuple[int, int]:
    extract = Store(folder, thresholds=cfg.contract.thresholds, readonly=True)
    try:
        lo, hi = (extract.extract_scope() or {}).get("journal_ids", (0, -1))
    finally:
        extract.close()
    return int(lo), int(hi)


def _manifest(folder: Path, doc: dict[str, Any], key: Any) -> None:
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if member(p.name)}
    manifest: dict[str, Any] = {"month": doc["month"], "created_at": time.time(), "files": files}
    if key is not None:
        manifest["signature"] = signing.sign(signing.canonical(manifest), key)
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")


def export_bundle(cfg: Config, state_dir: str, month: str, now: float, output: Path,
                  locations: list[str] | None = None, ca_file: str | None = None,
                  journal_lines: bool = False) -> dict[str, Any]:
    """Writes the bundle of one agent's report, or of the report over `locations` (NAME=URL|PATH);
    returns the report it holds. `journal_lines`: the journal written out as JSON lines too (journal.jsonl,
    as bundles were before the journal was packed; its check compares it with the ledger's)."""
    if not cfg.source or not Path(cfg.source).is_file():
        raise ReportError("the bundle carries the config file: give it with --config")
    key = signing.load_private(cfg.evidence.signing_key_file) if cfg.evidence.signing_key_file else None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if locations:
            doc = _write_locations(cfg, state_dir, month, now, folder, locations, ca_file)
        else:
            store = open_store(cfg, state_dir)
            try:
                doc, early = _report_and_pass(cfg, store, month, now)
                _write_ledger(cfg, store, doc, folder, early=early)
            finally:
                store.close()
        if journal_lines:
            write_journals(folder, cfg, folder)
        _write_common(cfg, doc, folder)
        _manifest(folder, doc, key)
        with tarfile.open(output, "w:gz", compresslevel=1) as tar:  # a month of journal: speed over size
            for path in sorted(folder.iterdir(), key=lambda p: _order(p.name)):
                tar.add(path, arcname=f"sla-{doc['month']}-evidence/{path.name}", recursive=False,
                        filter=lambda info: _plain(info, now))
    return doc


def _write_locations(cfg: Config, state_dir: str, month: str, now: float, folder: Path, specs: list[str],
                     ca_file: str | None) -> dict[str, Any]:
    from .combined import build_locations, opened

    with opened(cfg, specs, state_dir, month, now, ca_file, journal="all") as locs:
        doc = build_locations(cfg, locs, month, now)
        for loc in locs:
            _write_ledger(cfg, loc.store, doc, folder, f"-{loc.name}")
    return doc


def _plain(info: tarfile.TarInfo, now: float) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime, info.mode = int(now), 0o644
    return info
