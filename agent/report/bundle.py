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
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import Config, ConfigError, parse_config
from ..config.model import LOCATION_NAME_RULE, is_location_name
from ..redact import Redactor
from ..store import Store, StoreError
from . import signing
from .build import ReportError, build, open_store
from .formats import render
from .verify import check_signature, compare

MAX_BUNDLE_BYTES = 16 << 30  # what a bundle may unpack to: a bound against a crafted archive
MAX_FILE_BYTES = 64 << 20  # each file but the ledgers and journals: far above what the agent writes
MEMBERS = ("report.json", "report.html", "journal.jsonl", "ledger.db", "config.yaml", "README.txt", "public_key.pem",
           "MANIFEST.json")
PER_LOCATION = re.compile(r"(ledger|journal)-([A-Za-z0-9._-]{1,63})\.(db|jsonl)")  # a report over locations


def _member(name: str) -> bool:
    return name in MEMBERS or PER_LOCATION.fullmatch(name) is not None


def _order(name: str) -> tuple[int, str]:
    return (MEMBERS.index(name) if name in MEMBERS else 3), name
README = """This is the evidence of an SLA report made by sla-agent.

Check it with:   sla-agent evidence verify {name}

That checks each file against MANIFEST.json (and the manifest's signature, when there is one, with
public_key.pem: compare its fingerprint, printed by the check, with the one the agent's owner gave you);
walks the hash chain in ledger.db, which seals the stored rows; builds the report again from ledger.db and
config.yaml and compares every field with report.json; and checks report.json's signature.

When the agent had its chain time-stamped (RFC 3161), ledger.db carries the tokens: add --tsa-ca FILE,
the certificates of the time-stamping authorities you trust, and each token is checked against them and
against the chain; the check prints the time each run of links is proven to have existed by.

A report over several locations carries one ledger-NAME.db and journal-NAME.jsonl per location instead
of ledger.db and journal.jsonl; each is checked the same way, and the report is built again from all of them.

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


def _write_ledger(cfg: Config, store: Store, doc: dict[str, Any], folder: Path, suffix: str = "") -> None:
    """The extract of the rows the report reads and the month's journal, as ledger{suffix}.db and
    journal{suffix}.jsonl."""
    start, until = _span(cfg, doc)
    rows_from = min([start] + [_epoch(p["start"]) for p in doc["periods"]])
    store.extract(folder / "extract", rows_from, start, until)
    (folder / "extract" / "ledger.db").rename(folder / f"ledger{suffix}.db")
    shutil.rmtree(folder / "extract")
    ids = _scope_ids(folder / f"ledger{suffix}.db", cfg)
    store.journal_lines(folder / f"journal{suffix}.jsonl", start, until, ids)


def _write_common(cfg: Config, doc: dict[str, Any], folder: Path) -> None:
    (folder / "report.json").write_text(render(doc, "json"), encoding="utf-8")
    (folder / "report.html").write_text(render(doc, "html"), encoding="utf-8")
    (folder / "config.yaml").write_text(Redactor(cfg.secrets)(Path(cfg.source).read_text(encoding="utf-8")),
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
    files = {p.name: _sha256(p) for p in sorted(folder.iterdir()) if _member(p.name)}
    manifest: dict[str, Any] = {"month": doc["month"], "created_at": time.time(), "files": files}
    if key is not None:
        manifest["signature"] = signing.sign(signing.canonical(manifest), key)
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")


def export_bundle(cfg: Config, state_dir: str, month: str, now: float, output: Path,
                  locations: list[str] | None = None, ca_file: str | None = None) -> dict[str, Any]:
    """Writes the bundle of one agent's report, or of the report over `locations` (NAME=URL|PATH);
    returns the report it holds."""
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
                doc = build(cfg, store, month, now)
                _write_ledger(cfg, store, doc, folder)
            finally:
                store.close()
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


def _unpack(path: Path, dest: Path) -> list[str]:
    """The bundle's files into `dest`, by their base name only. Stops at the first member it refuses
    (_refused) and returns the problem naming it; nothing of that member is written."""
    names: list[str] = []
    total = 0
    try:
        with tarfile.open(path, "r:gz") as tar:
            for m in tar:
                name = PurePosixPath(m.name).name
                why = _refused(m, name, names, total, dest)
                if why:
                    return [f"{m.name!r} in the archive: {why}; the bundle is not checked further"]
                if not m.isfile() or not _member(name):
                    continue
                total += m.size
                with tar.extractfile(m) as src, open(dest / name, "wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, out, 1 << 20)
                names.append(name)
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise ReportError(f"{path}: not a readable .tar.gz: {exc}") from None
    return []


_NOT_FILES = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a device",
              tarfile.BLKTYPE: "a device", tarfile.FIFOTYPE: "a named pipe"}


def _refused(m: tarfile.TarInfo, name: str, unpacked: list[str], total: int, dest: Path) -> str:
    """Why a member is refused ("": it is not): what the agent never writes into a bundle (anything but
    plain files and folders, a path leaving the bundle's folder, a file twice), or a file larger than its
    kind can be, judged on its header before any of it is read."""
    path = PurePosixPath(m.name)
    if path.is_absolute():
        return "an absolute path"
    if ".." in path.parts:
        return "a '..' in its path"
    if not (m.isfile() or m.isdir()):
        return _NOT_FILES.get(m.type, "not a plain file")
    if m.isdir() or not _member(name):
        return ""
    if name in unpacked:
        return f"a second {name}"
    if name not in ("ledger.db", "journal.jsonl") and not PER_LOCATION.fullmatch(name) and m.size > MAX_FILE_BYTES:
        return f"{m.size} bytes, more than the {MAX_FILE_BYTES} bytes a {name} may hold"
    if total + m.size > MAX_BUNDLE_BYTES:
        return f"the bundle would unpack to more than {MAX_BUNDLE_BYTES} bytes"
    free = shutil.disk_usage(dest).free
    return f"{m.size} bytes, more than the {free} bytes free where it is unpacked" if m.size > free else ""


def _read_report(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """report.json, and what in it cannot be a report's (before any of it names a file or a folder)."""
    try:
        doc = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except ValueError as exc:  # UnicodeDecodeError too
        return {}, [f"report.json: not a report: {exc}"]
    ev = doc.get("evidence") if isinstance(doc, dict) else None
    if not isinstance(ev, dict) or not isinstance(doc.get("month"), str) or \
            not isinstance(ev.get("generated_epoch"), (int, float)) or not isinstance(ev.get("chain") or {}, dict):
        return {}, ["report.json: not a report: it lacks month, evidence or evidence.generated_epoch"]
    if "locations" not in doc:
        return doc, []
    names = (doc["locations"] or {}).get("names") if isinstance(doc["locations"], dict) else None
    if not isinstance(names, list) or not isinstance(ev.get("locations"), dict):
        return {}, ["report.json: locations.names: must be a list of location names"]
    bad = [f"{n!r} is not a location name ({LOCATION_NAME_RULE})" for n in names if not is_location_name(n)]
    bad += [f"{n!r} is named twice" for i, n in enumerate(names) if n in names[:i] and is_location_name(n)]
    return ({}, [f"report.json: locations.names: {b}" for b in bad]) if bad else (doc, [])


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


def _check_ledger(folder: Path, doc: dict[str, Any], cfg: Config,
                  tsa_roots: list[Any] | None = None) -> tuple[list[str], dict[str, Any]]:
    """The extract's chain walked, its journal and journal.jsonl compared, the report built again and compared."""
    try:
        store = Store(folder, thresholds=cfg.contract.thresholds, readonly=True)
    except StoreError as exc:
        return [f"ledger.db: {exc}"], {}
    try:
        problems, stats = _check_extract(store, folder / "journal.jsonl", doc["evidence"].get("chain"), tsa_roots)
        fresh = build(cfg, store, doc["month"], float(doc["evidence"]["generated_epoch"]), sign=False)
    except (zlib.error, ValueError) as exc:  # a crafted row: a finding, not a crash
        return [f"ledger.db: a row cannot be read: {exc}"], {}
    finally:
        store.close()
    return [f"ledger.db: {p}" for p in problems] + [f"report.json: {p}" for p in compare(doc, fresh)], stats


def _check_extract(store: Store, journal_file: Path, head: dict[str, Any] | None,
                   tsa_roots: list[Any] | None = None) -> tuple[list[str], dict[str, Any]]:
    """One extract: its chain walked, its journal against the journal file, the report's chain head in it,
    its time-stamp tokens against its chain (and the authorities' certificates trusted, when given)."""
    scope = store.extract_scope() or {}
    problems, stats = store.verify(scope.get("journal_from"), scope.get("until"))
    proof = store.check_timestamps(tsa_roots)
    problems += proof.problems
    stats.update({"time-stamps": proof.tokens, "time-stamped": proof.proven})
    problems += [f"{o.text()}: not sealed (outside the chain, an edit of them cannot be found)"
                 for o in store.outside() if not o.provisional]
    ids = tuple(scope.get("journal_ids", (0, -1)))
    if not journal_file.exists() or store.journal_lines_digest(scope.get("journal_from", 0), scope.get("until", 0),
                                                               ids) != _sha256(journal_file):
        problems.append(f"{journal_file.name} differs from the journal in the ledger")
    if head and store.chain_link(int(head["seq"])) != head.get("link"):
        problems.append(f"the chain link the report was built on ({head['seq']}) is not in the chain")
    return problems, stats


def _check_locations(folder: Path, doc: dict[str, Any], cfg: Config,
                     tsa_roots: list[Any] | None = None) -> tuple[list[str], dict[str, Any]]:
    """Each location's extract checked, then the report over them built again and compared."""
    from .combined import build_locations
    from .sources import Location

    problems: list[str] = []
    locs: list[Location] = []
    try:
        for name in doc["locations"]["names"]:
            db = folder / f"ledger-{name}.db"
            if not db.exists():
                return problems + [f"ledger-{name}.db is missing"], {}
            place = folder.parent / "locations" / name  # a checked name (_read_report), beside the files
            place.mkdir(parents=True)
            db.rename(place / "ledger.db")
            locs.append(Location(name, db.name, Store(place, thresholds=cfg.contract.thresholds, readonly=True)))
            found, _ = _check_extract(locs[-1].store, folder / f"journal-{name}.jsonl",
                                      doc["evidence"]["locations"].get(name, {}).get("chain"), tsa_roots)
            problems += [f"ledger-{name}.db: {p}" for p in found]
        fresh = build_locations(cfg, locs, doc["month"], float(doc["evidence"]["generated_epoch"]), sign=False)
    except (StoreError, zlib.error, ValueError) as exc:  # a crafted file: a finding, not a crash
        return problems + [f"a ledger cannot be read: {exc}"], {}
    finally:
        for loc in locs:
            loc.store.close()
    return problems + [f"report.json: {p}" for p in compare(doc, fresh)], {"locations": len(locs)}


def verify_bundle(path: Path, tsa_roots: list[Any] | None = None) -> tuple[list[str], dict[str, Any]]:
    """Everything a bundle claims, checked offline (time-stamps against `tsa_roots`, the certificates of the
    authorities the user trusts). Returns (problems, facts to print)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "files"  # a location's folder is made beside it, never among the files
        folder.mkdir()
        refused = _unpack(path, folder)
        if refused:
            return refused, {}
        problems, key = _check_manifest(folder)
        facts: dict[str, Any] = {"signed by key": signing.key_id(key) if key is not None else "not signed"}
        needed = ("report.json", "config.yaml")
        if problems or not all((folder / n).exists() for n in needed):
            return problems or [f"one of {', '.join(needed)} is missing"], facts
        doc, problems = _read_report(folder)
        if problems:
            return problems, facts
        try:
            cfg = parse_config((folder / "config.yaml").read_text(encoding="utf-8"), "config.yaml", environ={},
                               offline=True)
        except (ConfigError, ValueError) as exc:  # UnicodeDecodeError too
            return [f"config.yaml: not a config this agent reads: {exc}"], facts
        if "locations" in doc:
            found, stats = _check_locations(folder, doc, cfg, tsa_roots)
        elif (folder / "ledger.db").exists():
            found, stats = _check_ledger(folder, doc, cfg, tsa_roots)
        else:
            found, stats = ["ledger.db is missing"], {}
        facts.update(stats)
        return found + [f"report.json {p}" for p in check_signature(doc, key)], facts
