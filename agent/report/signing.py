"""Ed25519 signatures over reports and bundles (the `cryptography` package), so that a vendor or an
arbitrator can check a document came unchanged from the agent that holds the key."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_NAME, PUBLIC_NAME = "sla-agent-signing.key", "sla-agent-signing.pub"


class SigningError(Exception):
    pass


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def unreadable(path: str | os.PathLike[str], exc: OSError) -> str:
    """Why the key cannot be read, by whom, and (when it is the permission) what the file's owner and mode
    are: under systemd's DynamicUser= the service's user is not the one that made the key."""
    why = f"{path}: cannot be read by user {os.geteuid()} ({exc.strerror or exc})"
    if isinstance(exc, PermissionError):
        try:
            st = os.stat(path)
            why += f": the file is owned by user {st.st_uid}, group {st.st_gid}, mode {stat.S_IMODE(st.st_mode):04o}"
        except OSError:
            pass
        why += (". As a service, pass it with LoadCredential= (deploy/systemd/signing-key.conf): the agent "
                "reads it from $CREDENTIALS_DIRECTORY")
    return why


def load_private(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningError(unreadable(path, exc)) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: not an Ed25519 key (make one with `sla-agent evidence keygen`)")
    return key


class KeyCheck:
    """Whether the signing key can be read and loaded ("" when it can, else why not), at the agent's start,
    at a reload and for /readyz: read again only when the path, or the file's inode, contents or mode, changed."""

    def __init__(self) -> None:
        self._seen: tuple[Any, str] | None = None

    def __call__(self, path: str | None) -> str:
        if not path:
            return ""
        try:
            st = os.stat(path)
            mark: Any = (path, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        except OSError as exc:
            mark = (path, str(exc))
        if self._seen is None or self._seen[0] != mark:
            try:
                load_private(path)
                self._seen = (mark, "")
            except SigningError as exc:
                self._seen = (mark, f"the signing key is not usable: {exc}")
        return self._seen[1]


def load_public(path: str | os.PathLike[str] | None = None, pem: bytes | None = None) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem if pem is not None else Path(path).read_bytes())  # type: ignore[arg-type]
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(f"{path or 'the public key'}: not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path or 'the public key'}: not an Ed25519 key")
    return key


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(data: bytes, key: Ed25519PrivateKey) -> dict[str, str]:
    return {"algorithm": "ed25519", "key_sha256": key_id(key.public_key()),
            "value": base64.b64encode(key.sign(data)).decode()}


GIVEN = "the key given with --key"
FINGERPRINT = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Trusted:
    """The key signatures are checked against: its fingerprint (key_id), the key itself when it is known,
    and where it came from (said beside every verdict: a key a bundle carries proves nothing of who made it)."""

    fingerprint: str
    key: Ed25519PublicKey | None
    origin: str


def pinned(spec: str) -> Trusted:
    """`--key FILE|FINGERPRINT`: a public key file (the private key's own will do), or the fingerprint
    `evidence keygen` printed, as 64 hexadecimal digits (a `SHA256:` before them and colons between are let be)."""
    if Path(spec).is_file():
        try:
            key = load_public(spec)
        except SigningError:
            try:
                key = load_private(spec).public_key()
            except SigningError:
                raise SigningError(f"--key {spec}: not an Ed25519 public key file (nor a private one)") from None
        return Trusted(key_id(key), key, GIVEN)
    hexed = spec.strip().lower().removeprefix("sha256:").replace(":", "")
    if FINGERPRINT.fullmatch(hexed):
        return Trusted(hexed, None, GIVEN)
    raise SigningError(f"--key {spec}: neither a key file nor a fingerprint (64 hexadecimal digits, as "
                       "`sla-agent evidence keygen` prints it)")


def trusted(pin: Trusted | None, found: Ed25519PublicKey | None, origin: str) -> Trusted | None:
    """What signatures are checked against: the pinned key (with the key `found`, when a fingerprint pins
    it), else the key found where `origin` says."""
    if pin is None:
        return None if found is None else Trusted(key_id(found), found, origin)
    if pin.key is None and found is not None and key_id(found) == pin.fingerprint:
        return Trusted(pin.fingerprint, found, pin.origin)
    return pin


def check(data: bytes, signature: dict[str, Any], public: Ed25519PublicKey | Trusted) -> str | None:
    """None when the signature holds; otherwise why not."""
    t = public if isinstance(public, Trusted) else Trusted(key_id(public), public, "the key given")
    if signature.get("algorithm") != "ed25519":
        return f"unknown signature algorithm {signature.get('algorithm')!r}"
    if signature.get("key_sha256") != t.fingerprint:
        return (f"signed with key {str(signature.get('key_sha256'))[:16]}..., not with {t.origin} "
                f"({t.fingerprint[:16]}...)")
    if t.key is None:
        return f"signed with key {t.fingerprint[:16]}..., but its public key is not at hand: give its file with --key"
    try:
        t.key.verify(base64.b64decode(str(signature.get("value", ""))), data)
    except (InvalidSignature, ValueError):
        return "the signature does not match the content: something was changed after signing"
    return None


def keygen(folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """A new key pair: the private key readable by its owner only."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    private, public = out / PRIVATE_NAME, out / PUBLIC_NAME
    if private.exists():
        raise SigningError(f"{private} exists: keys are never overwritten")
    key = Ed25519PrivateKey.generate()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    public.write_bytes(public_pem(key))
    return private, public
