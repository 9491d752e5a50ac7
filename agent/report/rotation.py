"""The signing key's succession: a rotation is a record in the chain, signed by the old key, that names
the new one. Whoever pinned the first key follows the records to every later key; a key that no record
reaches is not the agent's, however valid its own signatures.

A key is in force from the link that seals the record naming it up to the link that seals the record
retiring it (both included: the rotation's own link is the last under the old key and the first under
the new), the first key from the start. Each record also names the chain's head when it was made, so that
it cannot be moved to another place in the chain or to another chain.
"""
from __future__ import annotations

import base64
import binascii
import sqlite3
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..store import chain
from . import signing
from .checkpoint import raw

ROW = "SELECT id, at, old_key, new_key, after_seq, after_link, signature, link FROM key_rotations"


@dataclass(frozen=True)
class KeySpan:
    key: Ed25519PublicKey
    since: int  # the first chain length it signs for
    until: int | None  # the last (None: still in force)

    @property
    def id(self) -> str:
        return signing.key_id(self.key)


def statement(at: float, old: str, new: str, after_seq: int, after_link: str) -> bytes:
    """What the old key signs (keys as the base64 of their raw bytes)."""
    return f"sla-agent key rotation\nold {old}\nnew {new}\nafter {after_seq} {after_link}\nat {at!r}\n".encode()


def record_hash(row: tuple) -> str:
    rid, at, *rest = row[:7]
    return chain.row_hash("k", rid, repr(float(at)), *rest)


def rotate(conn: sqlite3.Connection, old: Ed25519PrivateKey, new: Ed25519PublicKey, now: float) -> tuple[int, int]:
    """Inside the caller's transaction: the record, sealed in a link of its own. Returns (record id, link)."""
    if raw(old.public_key()) == raw(new):
        raise signing.SigningError("the new key is the key in use")
    last = conn.execute("SELECT seq, link FROM chain ORDER BY seq DESC LIMIT 1").fetchone() or (0, "")
    at = float(now)
    old_b64, new_b64 = (base64.b64encode(raw(k)).decode() for k in (old.public_key(), new))
    sig = base64.b64encode(old.sign(statement(at, old_b64, new_b64, last[0], last[1]))).decode()
    rid = conn.execute("INSERT INTO key_rotations (at, old_key, new_key, after_seq, after_link, signature) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (at, old_b64, new_b64, last[0], last[1], sig)).lastrowid
    row = conn.execute(ROW + " WHERE id = ?", (rid,)).fetchone()
    seq = chain.append_link(conn, [chain.Seal(f"k:{rid}", at, record_hash(row))], at)
    conn.execute("UPDATE key_rotations SET link = ? WHERE id = ?", (seq, rid))
    return int(rid), int(seq)  # type: ignore[arg-type]


def _key(b64: str) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64, validate=True))
    except (binascii.Error, ValueError):
        return None


def _check(conn: sqlite3.Connection, row: tuple, before: Ed25519PublicKey | None) -> str | None:
    """What is wrong with one record, given the key the records before it reached."""
    rid, at, old_b64, new_b64, after_seq, after_link, sig, link = row
    old, new = _key(old_b64), _key(new_b64)
    if old is None or new is None:
        return f"key rotation record {rid}: a key in it is not an Ed25519 public key"
    if before is not None and raw(before) != raw(old):
        return (f"key rotation record {rid}: signed by key {signing.key_id(old)[:16]}..., which the records "
                f"before it do not reach (the key in force was {signing.key_id(before)[:16]}...)")
    try:
        old.verify(base64.b64decode(sig), statement(float(at), old_b64, new_b64, after_seq, after_link))
    except (InvalidSignature, binascii.Error, ValueError):
        return f"key rotation record {rid}: its signature by the old key does not hold"
    held = conn.execute("SELECT link FROM chain WHERE seq = ?", (after_seq,)).fetchone()
    if held is not None and held[0] != after_link:
        return f"key rotation record {rid}: the chain's link {after_seq} is not the one the record was made after"
    sealed = conn.execute("SELECT hash FROM seals WHERE key = ? ORDER BY seq DESC LIMIT 1", (f"k:{rid}",)).fetchone()
    if sealed is not None and sealed[0] != record_hash(row):
        return f"key rotation record {rid} (sealed in link {link}): differs from what was sealed"
    return None


def succession(conn: sqlite3.Connection) -> tuple[list[KeySpan], list[str]]:
    """The keys the chain's rotation records lead through, first to last, and what is wrong with them
    (the succession stops at the first record that does not hold)."""
    spans: list[KeySpan] = []
    for row in conn.execute(ROW + " ORDER BY id").fetchall():
        why = _check(conn, row, spans[-1].key if spans else None)
        if why:
            return spans, [why]
        at_link = int(row[7] if row[7] is not None else row[4] + 1)
        if not spans:
            spans.append(KeySpan(_key(row[2]), 0, None))  # type: ignore[arg-type]
        spans[-1] = KeySpan(spans[-1].key, spans[-1].since, at_link)
        spans.append(KeySpan(_key(row[3]), at_link, None))  # type: ignore[arg-type]
    return spans, []


def trusted(conn: sqlite3.Connection, anchor: str, known: list[Ed25519PublicKey],
            pinned: bool) -> tuple[list[KeySpan], list[str]]:
    """The keys trusted from `anchor` (a key's sha256 fingerprint): with `pinned`, it and the keys the
    records lead to after it; else (the agent's own key, the bundle's) the whole succession it is part of.
    `known`: public keys at hand, for a chain without records."""
    spans, problems = succession(conn)
    if not spans:
        found = [k for k in known if signing.key_id(k) == anchor]
        if not found:
            return [], problems + [f"key {anchor[:16]}...: its public key is not at hand (give the key file)"]
        return [KeySpan(found[0], 0, None)], problems
    at = next((i for i, s in enumerate(spans) if s.id == anchor), None)
    if at is None:
        return [], problems + [f"key {anchor[:16]}... is not in the chain's succession of keys (from "
                               f"{spans[0].id[:16]}... to {spans[-1].id[:16]}...): no rotation record reaches it"]
    return (spans[at:] if pinned else spans), problems


def refused(spans: list[KeySpan], key: Ed25519PublicKey | None, size: int) -> str | None:
    """None when `key` may sign for a chain of this length; else why not."""
    if key is None:
        return "not signed by any trusted key (its signatures are by keys no rotation record reaches)"
    span = next((s for s in spans if s.id == signing.key_id(key)), None)
    if span is None:
        return f"signed by key {signing.key_id(key)[:16]}..., which no rotation record from the trusted key reaches"
    if size < span.since or (span.until is not None and size > span.until):
        return (f"signed by key {span.id[:16]}..., not in force at length {size} (in force from link {span.since}"
                + (f" to link {span.until})" if span.until is not None else ")"))
    return None
