"""`sla-agent evidence verify BUNDLE.tar.gz`: everything a bundle (bundle.py) claims, checked offline."""
from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any

from .. import __version__
from ..calendar import Calendar
from ..config import Config, ConfigError, parse_config
from ..config.model import LOCATION_NAME_RULE, is_location_name
from ..slo import seal_delay_of
from ..store import Store, StoreError
from ..store.extract import JOURNAL_PARTS
from . import rotation, signing
from .agreement import count_mismatches
from .build import ReportError, build_apart
from .bundle import MAX_BUNDLE_BYTES, MAX_FILE_BYTES, PER_LOCATION, member, sha256_file, write_journals
from .evidence import mismatches_named
from .formats import render
from .method import NAME as METHOD, check as check_method
from .verify import check_signature, compare

BUNDLED = "the key the bundle carries in public_key.pem"


def _unpack(path: Path, dest: Path) -> list[str]:
    """The bundle's files into `dest`, by their base name only. Stops at the first member it refuses
    (_refused) and returns the problem naming it; nothing of that member is written. The gzip stream is
    read to its end, where its CRC-32 and length are checked: tarfile stops at the end-of-archive blocks,
    before them, and an archive cut short there read as whole."""
    names: list[str] = []
    total = 0
    try:
        with gzip.open(path, "rb") as gz:
            with tarfile.open(fileobj=gz, mode="r:") as tar:
                for m in tar:
                    name = PurePosixPath(m.name).name
                    why = _refused(m, name, names, total, dest)
                    if why:
                        return [f"{m.name!r} in the archive: {why}; the bundle is not checked further"]
                    if not m.isfile() or not member(name):
                        continue
                    total += m.size
                    with tar.extractfile(m) as src, open(dest / name, "wb") as out:  # type: ignore[union-attr]
                        shutil.copyfileobj(src, out, 1 << 20)
                    names.append(name)
            while gz.read(1 << 20):
                pass
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise ReportError(f"{path}: not a whole .tar.gz (cut short or damaged): {exc}") from None
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
    if m.isdir() or not member(name):
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
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError too; nested deeper than the parser goes
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


@dataclass
class Checked:
    """What `evidence verify BUNDLE` found."""

    problems: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)  # how much was checked: links, rows, records
    key: signing.Trusted | None = None  # what the signatures were checked against
    signed: bool = False  # the manifest is signed, or the bundle carries a key
    warnings: list[str] = field(default_factory=list)  # accepted, but the reader must know
    method: dict[str, Any] | None = None  # method.json, when it agrees with the other files


def _check_manifest(folder: Path, pin: signing.Trusted | None) -> Checked:
    """Problems with the files against the manifest, whether it is signed, and what the signatures are
    checked against: the key given with --key, else the bundle's own public_key.pem (None: neither)."""
    try:
        manifest = json.loads((folder / "MANIFEST.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Checked(["MANIFEST.json is missing or not JSON"])
    listed = manifest.get("files", {})
    present = {p.name for p in folder.iterdir()}
    problems = [f"{name}: {'missing' if name not in present else 'changed since the bundle was made'}"
                for name, digest in listed.items() if name not in present or sha256_file(folder / name) != digest]
    problems += [f"{name}: not listed in the manifest" for name in present - set(listed) - {"MANIFEST.json"}]
    sig = manifest.get("signature")
    try:
        found = signing.load_public(folder / "public_key.pem") if "public_key.pem" in present else None
    except signing.SigningError as exc:
        return Checked(problems + [f"public_key.pem: {exc}"], signed=True)
    key = signing.trusted(_reached(folder, pin, found), found, BUNDLED)
    if sig is None and found is not None:
        problems.append("MANIFEST.json is not signed, but the bundle has a public key")
    elif sig is not None and key is None:
        problems.append("MANIFEST.json is signed, but the bundle has no public key to check it with")
    elif sig is not None:
        why = signing.check(signing.canonical({k: v for k, v in manifest.items() if k != "signature"}), sig, key)
        if why:
            problems.append(f"MANIFEST.json signature: {why}")
    signed = sig is not None or found is not None
    return Checked(problems, key=key if signed else None, signed=signed)


def _reached(folder: Path, pin: signing.Trusted | None, found: Any) -> signing.Trusted | None:
    """The bundle's own key in place of the pinned one when the chain's key rotation records (signed each by
    the key before) lead to it from the pinned key: the vendor pins the first key once, for good."""
    if pin is None or found is None or signing.key_id(found) == pin.fingerprint or not (folder / "ledger.db").exists():
        return pin
    conn = sqlite3.connect(f"file:{folder / 'ledger.db'}?mode=ro", uri=True)
    try:
        spans, problems = rotation.trusted(conn, pin.fingerprint, [], True)
    except sqlite3.Error:  # an extract from before rotation records: the pinned key alone
        return pin
    finally:
        conn.close()
    if problems or not any(s.id == signing.key_id(found) for s in spans):
        return pin
    return signing.Trusted(signing.key_id(found), found, "the bundle's key, reached from the key given with --key "
                                                         "by the chain's rotation records")


Found = tuple[list[str], dict[str, Any], list[str]]  # problems, how much was checked, what could not be


def _check_ledger(folder: Path, doc: dict[str, Any], cfg: Config, tsa_roots: list[Any] | None) -> Found:
    """The extract's chain walked, its journal and journal.jsonl compared, the report built again and compared."""
    try:
        store = Store(folder, thresholds=cfg.contract.thresholds, readonly=True)
    except StoreError as exc:
        return [f"ledger.db: {exc}"], {}, []
    try:
        rebuilt = build_apart(cfg, folder, doc["month"], float(doc["evidence"]["generated_epoch"]), sign=False)
        problems, stats, notes = _check_extract(store, folder / "journal.jsonl", doc["evidence"].get("chain"), cfg,
                                                tsa_roots)
        fresh = rebuilt.result()
    except (zlib.error, ValueError) as exc:  # a crafted row: a finding, not a crash
        return [f"ledger.db: a row cannot be read: {exc}"], {}, []
    finally:
        store.close()
    return ([f"ledger.db: {p}" for p in problems] + [f"report.json: {p}" for p in compare(doc, fresh)], stats,
            [f"ledger.db: {n}" for n in notes])


def _check_extract(store: Store, journal_file: Path, head: dict[str, Any] | None, cfg: Config,
                   tsa_roots: list[Any] | None) -> Found:
    """One extract: its chain walked (rows outside it named), its time-stamps against the chain and the
    authorities trusted, each journal record against its own hash, its minute counts against its journal,
    its journal against the journal file (which bundles carried before the journal was packed), the report's
    chain head in it."""
    scope = store.extract_scope() or {}
    ids = tuple(scope.get("journal_ids", (0, -1)))
    tz = Calendar(cfg.contract).tz
    since, until = scope.get("journal_from"), scope.get("until")
    with ThreadPoolExecutor(1) as pool:  # the journal's pass beside the counts and the chain's walk (journal_checked)
        lines = pool.submit(store.journal_checked, since or 0, until or 0, ids, apart=True,
                            runs=store.journal_runs(since, until), lines=journal_file.exists())
        disagree, notes = count_mismatches(store, cfg, max(since or 0, scope.get("from", 0)), until or 0,
                                           JOURNAL_PARTS.get(scope.get("journal", "all"), ()), tz)
        problems, stats = store.verify(since, until, seal_delay_of(cfg), hashed=lambda: lines.result().runs)
        proof = store.check_timestamps(tsa_roots)
        problems += proof.problems + [f"{o.text()}: not sealed (outside the chain, an edit of them cannot be found)"
                                      for o in store.outside() if not o.provisional]
        stats.update({"time-stamps": proof.tokens, "time-stamped": proof.proven})
        digest, found, n, _ = lines.result()
    problems += mismatches_named(found, n, tz)
    problems += disagree
    if journal_file.exists() and digest != sha256_file(journal_file):  # a bundle of before the journal was packed
        problems.append(f"{journal_file.name} differs from the journal in the ledger")
    if head and store.chain_link(int(head["seq"])) != head.get("link"):
        problems.append(f"the chain link the report was built on ({head['seq']}) is not in the chain")
    return problems, stats, notes


def _check_locations(folder: Path, doc: dict[str, Any], cfg: Config, tsa_roots: list[Any] | None) -> Found:
    """Each location's extract checked, then the report over them built again and compared."""
    from .combined import build_locations
    from .sources import Location

    problems: list[str] = []
    notes: list[str] = []
    locs: list[Location] = []
    try:
        for name in doc["locations"]["names"]:
            db = folder / f"ledger-{name}.db"
            if not db.exists():
                return problems + [f"ledger-{name}.db is missing"], {}, notes
            place = folder.parent / "locations" / name  # a checked name (_read_report), beside the files
            place.mkdir(parents=True)
            db.rename(place / "ledger.db")
            locs.append(Location(name, db.name, Store(place, thresholds=cfg.contract.thresholds, readonly=True)))
            found, _, said = _check_extract(locs[-1].store, folder / f"journal-{name}.jsonl",
                                            doc["evidence"]["locations"].get(name, {}).get("chain"), cfg, tsa_roots)
            problems += [f"ledger-{name}.db: {p}" for p in found]
            notes += [f"ledger-{name}.db: {n}" for n in said]
        fresh = build_locations(cfg, locs, doc["month"], float(doc["evidence"]["generated_epoch"]), sign=False)
    except (StoreError, zlib.error, ValueError) as exc:  # a crafted file: a finding, not a crash
        return problems + [f"a ledger cannot be read: {exc}"], {}, notes
    finally:
        for loc in locs:
            loc.store.close()
    return problems + [f"report.json: {p}" for p in compare(doc, fresh)], {"locations": len(locs)}, notes


class _Tables(HTMLParser):
    """The words of a page's tables (the figures, verdicts, incidents and tickets), whitespace folded: outside
    <style>, <script> and the charts (<svg>), which draw what the tables state."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self._hidden = self._tables = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._hidden += tag in ("style", "script", "svg")
        self._tables += tag == "table"

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "script", "svg") and self._hidden > 0
        self._tables -= tag == "table" and self._tables > 0

    def handle_data(self, data: str) -> None:
        if not self._hidden and self._tables:
            self.words += data.split()


def _tables(lines: list[str]) -> list[str]:
    parser = _Tables()
    parser.feed("\n".join(lines))
    return parser.words


def _check_html(folder: Path, doc: dict[str, Any]) -> list[str]:
    """report.html is what people read, and nothing else vouches for it: it must be report.json rendered."""
    try:
        want = render(doc, "html").splitlines()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:  # a crafted report.json
        return [f"report.html: report.json cannot be rendered to compare it with: {exc!r}"]
    try:
        have = (folder / "report.html").read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        return ["report.html: missing or not text"]
    if have == want:
        return []
    if doc.get("agent_version") != __version__ and _tables(have) == _tables(want):
        return []  # another version lays out, words and draws the page otherwise; its tables read the same
    line = next((i for i, (a, b) in enumerate(zip(have, want)) if a != b), min(len(have), len(want)))
    shown = have[line][:80] if line < len(have) else "(the file ends)"
    return [f"report.html: differs from report.json rendered again (first at line {line + 1}: {shown!r})"]


def _signer(out: Checked, pin: signing.Trusted | None, allow_unsigned: bool) -> Checked:
    """Says which key vouches for the bundle: a bundle's own key only shows that its maker held that key."""
    if not out.signed and pin is not None:
        out.problems.append("the bundle is not signed, and a key was given with --key")
    elif not out.signed and not allow_unsigned:
        out.problems.append("the bundle is not signed: anyone could have made it (--allow-unsigned to check it anyway)")
    elif not out.signed:
        out.warnings.append("the bundle is not signed: the checks show it agrees with itself, not who made it")
    elif out.key is not None and out.key.origin == BUNDLED:
        out.warnings.append(f"the key was taken from the bundle itself (fingerprint {out.key.fingerprint}): the "
                            "signatures show only that whoever made the bundle held that key; compare the fingerprint "
                            "with the one the agent's owner gave you, or give it with --key")
    return out


def _read_method(folder: Path, doc: dict[str, Any], out: Checked) -> list[str]:
    """method.json checked against report.json and config.yaml; kept in `out` to be printed when it agrees."""
    if not (folder / METHOD).exists():
        out.warnings.append(f"the bundle does not state its method (no {METHOD}: made by an earlier agent)")
        return []
    try:
        stated = json.loads((folder / METHOD).read_text(encoding="utf-8"))
    except ValueError as exc:
        return [f"{METHOD}: not JSON: {exc}"]
    if not isinstance(stated, dict):
        return [f"{METHOD}: not a JSON object"]
    problems = check_method(stated, doc, folder / "config.yaml")
    out.method = None if problems else stated
    return problems


def _read_config(folder: Path) -> tuple[Config | None, list[str]]:
    try:
        return parse_config((folder / "config.yaml").read_text(encoding="utf-8"), "config.yaml", environ={},
                            offline=True), []
    except (ConfigError, ValueError) as exc:  # UnicodeDecodeError too
        return None, [f"config.yaml: not a config this agent reads: {exc}"]


def verify_bundle(path: Path, pin: signing.Trusted | None = None, allow_unsigned: bool = False,
                  tsa_roots: list[Any] | None = None) -> Checked:
    """Everything a bundle claims, checked offline; signatures against `pin` (--key) when given, else
    against the bundle's own key; time-stamps against `tsa_roots`, the authorities' certificates trusted."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "files"  # a location's folder is made beside it, never among the files
        folder.mkdir()
        refused = _unpack(path, folder)
        if refused:
            return Checked(refused)
        out = _check_manifest(folder, pin)
        needed = ("report.json", "config.yaml")
        if out.problems or not all((folder / n).exists() for n in needed):
            out.problems = out.problems or [f"one of {', '.join(needed)} is missing"]
            return _signer(out, pin, allow_unsigned)
        doc, out.problems = _read_report(folder)
        cfg, bad = _read_config(folder) if not out.problems else (None, [])
        if cfg is None:
            out.problems += bad
            return _signer(out, pin, allow_unsigned)
        if "locations" in doc:
            found, out.stats, notes = _check_locations(folder, doc, cfg, tsa_roots)
        elif (folder / "ledger.db").exists():
            found, out.stats, notes = _check_ledger(folder, doc, cfg, tsa_roots)
        else:
            found, notes = ["ledger.db is missing"], []
        out.warnings += notes
        out.problems += _read_method(folder, doc, out)
        out.problems += found + _check_html(folder, doc) + [f"report.json {p}" for p in check_signature(doc, out.key)]
        return _signer(out, pin, allow_unsigned)


def write_journal(path: Path, dest: Path) -> list[tuple[Path, int]]:
    """The journal each ledger of the bundle at `path` holds, as JSON lines in the folder `dest` (bundle.py:
    write_journals). Not a check: `evidence verify` says whether the ledgers are what was sealed."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "files"
        folder.mkdir()
        refused = _unpack(path, folder)
        cfg, bad = _read_config(folder) if not refused else (None, [])
        if cfg is None:
            raise ReportError("; ".join(refused + bad))
        dest.mkdir(parents=True, exist_ok=True)
        try:
            return write_journals(folder, cfg, dest)
        except (StoreError, zlib.error, ValueError) as exc:  # a crafted file
            raise ReportError(f"a ledger of the bundle cannot be read: {exc}") from None
