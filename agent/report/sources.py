"""Where a report over several locations reads each location's ledger: `NAME=URL` pulls the span from
a running agent's /api/v1/ledger, `NAME=PATH` reads a state directory, a ledger.db file, or a pulled
copy (.db.gz). Every ledger is opened read-only, in a folder of its own.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shutil
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.model import LOCATION_NAME_RULE, Config, is_location_name
from ..redact import redact_url
from ..store import DB_NAME, SCHEMA_VERSION, Store, StoreError
from ..store.extract import Cancel
from . import signing
from .build import ReportError

PULL_TIMEOUT = 300.0
MAX_PULL_BYTES = 8 << 30


@dataclass
class Location:
    name: str
    source: str  # for people: the URL (credentials redacted) or the path
    store: Store
    pulled: dict[str, Any] = field(default_factory=dict)  # what the agent said of the ledger it served


def parse_spec(spec: str) -> tuple[str, str]:
    name, sep, where = spec.partition("=")
    if not sep or not where or not is_location_name(name):
        raise ReportError(f"--location {spec!r}: must be NAME=URL or NAME=PATH, NAME being {LOCATION_NAME_RULE} "
                          "(such as paris=https://agent-paris:9810 or london=/srv/london/ledger.db)")
    return name, where


def open_locations(cfg: Config, specs: list[str], local_dir: str | None, span: tuple[float, float], tmp: Path,
                   ca_file: str | None = None, journal: str = "failures") -> list[Location]:
    """The locations of the report, in the order given; the local ledger joins as `agent.location` when the
    config names one that is not given. `journal`: what of the journal to pull (a report reads only the
    failures; an evidence bundle carries everything)."""
    named = [parse_spec(s) for s in specs]
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        raise ReportError(f"--location: a name is given twice ({', '.join(names)})")
    if cfg.agent.location and cfg.agent.location not in names and local_dir and (Path(local_dir) / DB_NAME).exists():
        named.insert(0, (cfg.agent.location, local_dir))
    out = []
    try:
        for name, where in named:
            folder = tmp / name
            folder.mkdir(parents=True)
            out.append(_open(cfg, name, where, folder, span, (ca_file, journal)))
    except BaseException:
        for loc in out:
            loc.store.close()
        raise
    return out


def _open(cfg: Config, name: str, where: str, folder: Path, span: tuple[float, float],
          how: tuple[str | None, str]) -> Location:
    pulled: dict[str, Any] = {}
    if where.startswith(("http://", "https://")):
        pulled = pull(where, span, folder / DB_NAME, *how)
        source = redact_url(where)
    else:
        _link(Path(where), folder / DB_NAME)
        source = where
    try:
        store = Store(folder, thresholds=cfg.contract.thresholds, readonly=True)
    except StoreError as exc:
        raise ReportError(f"location {name} ({source}): {exc}") from None
    return Location(name, source, store, pulled)


def _link(path: Path, dest: Path) -> None:
    """A state directory, a ledger file or a .db.gz copy, as `dest`."""
    if path.is_dir():
        path = path / DB_NAME
    if not path.is_file():
        raise ReportError(f"no ledger at {path}")
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    else:
        dest.symlink_to(path.resolve())


def ledger_url(base: str, span: tuple[float, float], journal: str = "all") -> str:
    query = urllib.parse.urlencode({"from": f"{span[0]:.0f}", "to": f"{span[1]:.0f}", "journal": journal})
    return f"{base.rstrip('/')}/api/v1/ledger?{query}"


def pull(base: str, span: tuple[float, float], dest: Path, ca_file: str | None = None,
         journal: str = "all") -> dict[str, Any]:
    """The agent's ledger for `span` into `dest` (decompressed); returns what its headers say of it."""
    parts = urllib.parse.urlsplit(base)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    url = ledger_url(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")), span, journal)
    req = urllib.request.Request(url, headers={"Accept": "application/gzip"})
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        req.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    context = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None
    try:
        with urllib.request.urlopen(req, timeout=PULL_TIMEOUT, context=context) as resp:  # nosec B310 - http(s) only
            meta = {k.lower(): v for k, v in resp.headers.items() if k.lower().startswith("x-sla-")}
            with gzip.open(resp, "rb") as src, open(dest, "wb") as out:
                copied = 0
                while chunk := src.read(1 << 20):
                    copied += len(chunk)
                    if copied > MAX_PULL_BYTES:
                        raise ReportError(f"{redact_url(base)}: the ledger is larger than {MAX_PULL_BYTES} bytes")
                    out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise ReportError(f"{redact_url(base)}: HTTP {exc.code} {exc.reason} from {redact_url(url)}") from None
    except (urllib.error.URLError, OSError, EOFError) as exc:
        raise ReportError(f"{redact_url(base)}: cannot pull the ledger: {exc}") from None
    return _served(meta, dest)


def _served(meta: dict[str, str], db: Path) -> dict[str, Any]:
    """The ledger's hash as served and as received, and the agent's signature of it, checked when the
    response carries the key."""
    h = hashlib.sha256()
    with open(db, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    got = h.hexdigest()
    out: dict[str, Any] = {"sha256": got, "location": meta.get("x-sla-location", ""),
                           "hash_matches": meta.get("x-sla-ledger-sha256") == got}
    sig, key = meta.get("x-sla-ledger-signature"), meta.get("x-sla-ledger-public-key")
    if sig and key:
        try:
            public = signing.load_public(pem=base64.b64decode(key))
            signature = json.loads(base64.b64decode(sig))
        except (ValueError, signing.SigningError) as exc:
            raise ReportError(f"the ledger's signature headers cannot be read: {exc}") from None
        out["signed_by"] = signing.key_id(public)
        out["signature_valid"] = not signing.check(served_text(out["location"], got), signature, public)
    return out


def serve_ledger(store: Store, start: float, end: float, cfg: Config, folder: Path,
                 journal: str = "all", cancel: Cancel | None = None) -> tuple[Path, dict[str, str]]:
    """What /api/v1/ledger answers: the extract of [start, end) gzip'd into `folder` (streamed from disk:
    a month's journal is hundreds of megabytes), and its headers. Raises Cancelled once `cancel` is set."""
    cancel = cancel or Cancel()
    db = store.extract(folder, start, start, end, journal, cancel)
    h = hashlib.sha256()
    gz = folder / "ledger.db.gz"
    with open(db, "rb") as src, gzip.GzipFile(gz, "wb", compresslevel=1, mtime=0) as out:  # speed over size
        while chunk := src.read(1 << 20):
            cancel.check()
            h.update(chunk)
            out.write(chunk)
    db.unlink()
    key = signing.load_private(cfg.evidence.signing_key_file) if cfg.evidence.signing_key_file else None
    headers = signature_headers(cfg.agent.location, h.hexdigest(), key)
    headers["X-Sla-Ledger-Schema"] = str(SCHEMA_VERSION)
    headers["X-Sla-Ledger-Journal"] = journal
    return gz, headers


def signature_headers(location: str, sha256: str, key: Any) -> dict[str, str]:
    """The headers an agent serves its ledger with: its hash and, with a signing key, its signature."""
    headers = {"X-Sla-Location": location, "X-Sla-Ledger-Sha256": sha256}
    if key is not None:
        sig = signing.sign(served_text(location, sha256), key)
        headers["X-Sla-Ledger-Signature"] = base64.b64encode(json.dumps(sig).encode()).decode()
        headers["X-Sla-Ledger-Public-Key"] = base64.b64encode(signing.public_pem(key)).decode()
    return headers


def served_text(location: str, sha256: str) -> bytes:
    """What an agent signs of a ledger it serves."""
    return f"sla-agent ledger|{location}|{sha256}".encode()
