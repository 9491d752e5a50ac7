"""TLS as a client, for every probe type that speaks it: the options, how they are read, the context they
make, and what the peer's certificate says."""
from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass

from ..schema import Field, Reader, Section, boolean, existing_file, section, string


@dataclass(frozen=True)
class TLSOptions:
    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None


def _pair(r: Reader, s: Section, path: str) -> bool:
    if ("cert_file" in s.values) != ("key_file" in s.values):
        r.error(s.node, path, "cert_file and key_file go together (a client certificate needs its key)")
        return False
    return True


TLS_FIELDS = (
    Field("verify", boolean()),
    Field("ca_file", existing_file()),
    Field("cert_file", existing_file()),
    Field("key_file", existing_file()),
    Field("server_name", string()),
)
read_tls = section(TLS_FIELDS, TLSOptions, rule=_pair)


def client_context(o: TLSOptions) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=o.ca_file)
    if not o.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if o.cert_file:
        ctx.load_cert_chain(o.cert_file, o.key_file)
    return ctx


_EXPIRY_CACHE: dict[bytes, float | None] = {}


def cert_not_after(der: bytes | None) -> float | None:
    """The expiry (epoch seconds) of a DER certificate; None when there is none or it cannot be read."""
    if not der:
        return None
    if der in _EXPIRY_CACHE:
        return _EXPIRY_CACHE[der]
    try:
        from cryptography import x509

        value: float | None = x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    except Exception:  # noqa: BLE001 - an unparsable certificate just has no expiry figure
        value = None
    if len(_EXPIRY_CACHE) > 1024:
        _EXPIRY_CACHE.clear()
    _EXPIRY_CACHE[der] = value
    return value


def fingerprint(der: bytes | None) -> str:
    """The certificate's SHA-256 fingerprint, as browsers and openssl show it (hex)."""
    return hashlib.sha256(der).hexdigest() if der else ""
