"""Signed checkpoints of the hash chain, in the C2SP signed-note format (a transparency log's checkpoint):

    sla-agent/paris                       origin: the agent (its location, when it has one)
    1042                                  the chain's length: the sequence number of its last link
    3q2+7w...=                            the last link's hash, base64 of its 32 bytes
    time 2026-12-06T05:00:00Z             when the checkpoint was made (an extension line)
                                          a blank line, then one line per signature:
    — sla-agent/paris AbCd...             base64 of the key hash (4 bytes) and the Ed25519 signature

The key hash is the first 4 bytes of sha256(name, "\\n", 0x01, the 32-byte public key), as the format
says; the signature is over the text above the blank line. A witness that keeps the text can later show
that the chain it was given then is not the chain shown now: a link is never rewritten, so the link at
that length must still have that hash, whoever holds the signing key.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import sqlite3
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DASH = "\u2014"  # the em dash that opens a signature line
MAX_BYTES = 64 * 1024
ORIGIN = "sla-agent"
_NAME = re.compile(r"[^\s+]+")


class CheckpointError(Exception):
    pass


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    head: str  # the link's hash, hex as the chain stores it
    time: dt.datetime
    body: str  # the signed text
    signatures: tuple[tuple[str, bytes, bytes], ...]  # (name, key hash, signature)

    def when(self) -> str:
        return self.time.isoformat(timespec="seconds").replace("+00:00", "Z")


def origin_of(location: str) -> str:
    return f"{ORIGIN}/{location}" if location else ORIGIN


def raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_hash(name: str, key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n\x01" + raw(key)).digest()[:4]


def verifier_key(name: str, key: Ed25519PublicKey) -> str:
    """The note format's verifier key, `name+hash+key`: what a witness configures to check our notes."""
    encoded = base64.b64encode(b"\x01" + raw(key)).decode()
    return f"{name}+{key_hash(name, key).hex()}+{encoded}"


def head(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """(length, hash of the last link) of the chain, or None while it has no link."""
    row = conn.execute("SELECT seq, link FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else None


def make(origin: str, size: int, head_hex: str, now: float, key: Ed25519PrivateKey) -> str:
    when = dt.datetime.fromtimestamp(int(now), dt.timezone.utc).isoformat().replace("+00:00", "Z")
    body = f"{origin}\n{size}\n{base64.b64encode(bytes.fromhex(head_hex)).decode()}\ntime {when}\n"
    sig = key_hash(origin, key.public_key()) + key.sign(body.encode())
    return f"{body}\n{DASH} {origin} {base64.b64encode(sig).decode()}\n"


def parse(text: str) -> Checkpoint:
    """A checkpoint's fields; CheckpointError says what is not as the format wants it."""
    if len(text.encode()) > MAX_BYTES:
        raise CheckpointError(f"longer than {MAX_BYTES} bytes: not a checkpoint")
    body, sep, sigs = text.partition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise CheckpointError("no blank line before the signatures, or no signature line")
    body += "\n"
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("needs an origin, a length and a head hash, one a line")
    origin, size, head_b64, *ext = lines
    if not re.fullmatch(r"0|[1-9][0-9]{0,18}", size):
        raise CheckpointError(f"the length {size!r} is not a number")
    try:
        head_raw = base64.b64decode(head_b64, validate=True)
    except (binascii.Error, ValueError):
        head_raw = b""
    if len(head_raw) != 32:
        raise CheckpointError("the head hash is not the base64 of 32 bytes")
    when = next((e[5:] for e in ext if e.startswith("time ")), None)
    try:
        stamp = dt.datetime.fromisoformat((when or "").replace("Z", "+00:00"))
    except ValueError:
        raise CheckpointError("no `time` line with an RFC 3339 date-time") from None
    return Checkpoint(origin, int(size), head_raw.hex(), stamp, body, _signatures(sigs))


def _signatures(text: str) -> tuple[tuple[str, bytes, bytes], ...]:
    out = []
    for line in text[:-1].split("\n"):
        m = re.fullmatch(f"{DASH} ([^ ]+) ([A-Za-z0-9+/=]+)", line)
        try:
            sig = base64.b64decode(m.group(2), validate=True) if m else b""
        except (binascii.Error, ValueError):
            sig = b""
        if len(sig) < 5:
            raise CheckpointError(f"not a signature line: {line[:60]!r}")
        out.append((m.group(1), sig[:4], sig[4:]))  # type: ignore[union-attr]
    return tuple(out)


def signer(cp: Checkpoint, keys: list[Ed25519PublicKey]) -> Ed25519PublicKey | None:
    """The first of `keys` whose signature the checkpoint carries and holds (other signatures, such as a
    witness's cosignature, are passed over)."""
    for name, hashed, sig in cp.signatures:
        for key in keys:
            if key_hash(name, key) != hashed:
                continue
            try:
                key.verify(sig, cp.body.encode())
                return key
            except InvalidSignature:
                continue
    return None


def against_chain(conn: sqlite3.Connection, cp: Checkpoint) -> str | None:
    """None when the chain holds the checkpoint's head at its length; else what contradicts it."""
    row = conn.execute("SELECT link, at FROM chain WHERE seq = ?", (cp.size,)).fetchone()
    if row is not None:
        if row[0] == cp.head:
            return None
        return (f"the chain's link {cp.size} has hash {row[0][:16]}..., the checkpoint {cp.head[:16]}...: the chain "
                f"was rewritten at or before link {cp.size} after the checkpoint was made")
    last = head(conn)
    if last is None or last[0] < cp.size:
        return (f"the chain has {last[0] if last else 0} links, fewer than the {cp.size} the checkpoint saw: "
                f"links were removed, or this is another chain")
    first = conn.execute("SELECT MIN(seq) FROM chain").fetchone()[0]
    return f"link {cp.size} is not held here (the chain held here begins at link {first}): it cannot be checked"
