"""Checkpoints made by the agent for its witnesses, and checked later against a ledger or a bundle:
does the chain shown now extend every checkpoint a witness kept, signed by a key the pinned key reaches?"""
from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from pathlib import Path
from typing import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import checkpoint, rotation, signing
from .checkpoint import Checkpoint, CheckpointError


def _readonly(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)


def make_for_agent(db: Path, key_file: str, location: str, now: float) -> tuple[str | None, str]:
    """The agent's checkpoint of its chain now, or (None, why not). A key that a rotation record retired
    signs nothing more: the owner moves evidence.signing_key_file to the new key."""
    key = signing.load_private(key_file)
    conn = _readonly(db)
    try:
        top = checkpoint.head(conn)
        spans, problems = rotation.succession(conn)
    finally:
        conn.close()
    if top is None:
        return None, "the chain has no link yet"
    if problems:
        return None, problems[0]
    if spans and spans[-1].id != signing.key_id(key.public_key()):
        return None, (f"evidence.signing_key_file holds key {signing.key_id(key.public_key())[:16]}..., but the "
                      f"chain's key rotation records lead to key {spans[-1].id[:16]}...: point it at that key")
    origin = checkpoint.origin_of(location)
    return checkpoint.make(origin, top[0], top[1], now, key), ""


def pinned_key(text: str) -> tuple[str, Ed25519PublicKey | None]:
    """--key: a public (or private) key file, or the key's sha256 fingerprint (signing.pinned reads both)."""
    found = signing.pinned(text)
    return found.fingerprint, found.key


def read(paths: list[str]) -> tuple[list[tuple[str, Checkpoint]], list[str]]:
    out, problems = [], []
    for path in paths:
        try:
            out.append((path, checkpoint.parse(Path(path).read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot be read: {getattr(exc, 'strerror', None) or exc}")
        except CheckpointError as exc:
            problems.append(f"{path}: not a checkpoint: {exc}")
    return out, problems


def check(conn: sqlite3.Connection, found: list[tuple[str, Checkpoint]], anchor: str,
          known: list[Ed25519PublicKey], pinned: bool) -> list[str]:
    """Each checkpoint, shortest chain first: its signature by a key in force at its length, reached from
    `anchor`, then the chain's link at its length against its head. The first problem names the first
    checkpoint the chain contradicts."""
    spans, problems = rotation.trusted(conn, anchor, known, pinned)
    keys = [s.key for s in spans] + known
    for path, cp in sorted(found, key=lambda f: (f[1].size, f[1].time)):
        why = rotation.refused(spans, checkpoint.signer(cp, keys), cp.size) if spans else "no trusted key"
        why = why or checkpoint.against_chain(conn, cp)
        if why:
            problems.append(f"checkpoint {path} ({cp.origin}, length {cp.size}, {cp.when()}): {why}")
    return problems


def keys_of(conn: sqlite3.Connection, own: Ed25519PublicKey | None, key_arg: str | None,
            whose: str) -> tuple[str | None, list[Ed25519PublicKey], bool, str]:
    """(anchor, keys at hand, pinned, how the anchor was chosen) for `check`."""
    known = [own] if own is not None else []
    if key_arg:
        anchor, key = pinned_key(key_arg)
        return anchor, known + ([key] if key is not None else []), True, f"from the pinned key {anchor[:16]}..."
    if own is None:
        return None, known, False, ""
    return signing.key_id(own), known, False, f"from {whose} key {signing.key_id(own)[:16]}... (no --key given)"


def verify(conn: sqlite3.Connection, paths: list[str], own: Ed25519PublicKey | None, key_arg: str | None,
           whose: str) -> tuple[list[str], dict[str, str]]:
    """The rotation records (always), and the checkpoints given: (problems, facts to print)."""
    _, problems = rotation.succession(conn)
    if not paths:
        return problems, {}
    found, unreadable = read(paths)
    try:
        anchor, known, pinned, how = keys_of(conn, own, key_arg, whose)
    except (OSError, signing.SigningError) as exc:
        return problems + unreadable + [f"--key: {getattr(exc, 'strerror', None) or exc}"], {}
    if anchor is None:
        return problems + unreadable + ["no key to check the checkpoints with: give --key, or a config with "
                                        "evidence.signing_key_file or evidence.public_key_file"], {}
    problems += unreadable + check(conn, found, anchor, known, pinned)
    return problems, {"checkpoints": f"{len(found)} checked, signatures {how}"}


@contextlib.contextmanager
def bundle_ledger(path: Path) -> Iterator[tuple[sqlite3.Connection | None, Ed25519PublicKey | None, list[str]]]:
    """A bundle's ledger (of one location: ledger.db, or the only ledger-NAME.db) and its public key."""
    from .unbundle import _unpack

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        refused = _unpack(path, folder)
        dbs = [folder / "ledger.db"] if (folder / "ledger.db").exists() else sorted(folder.glob("ledger-*.db"))
        if refused or len(dbs) != 1:
            yield None, None, refused or [f"{len(dbs)} ledgers in the bundle: checkpoints are checked against one"]
            return
        try:
            own = signing.load_public(folder / "public_key.pem") if (folder / "public_key.pem").exists() else None
        except signing.SigningError as exc:
            yield None, None, [str(exc)]
            return
        conn = _readonly(dbs[0])
        try:
            yield conn, own, []
        finally:
            conn.close()
