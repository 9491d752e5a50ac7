"""TLS as a client, for every probe type that speaks it: the options, how they are read, the context they
make, and what the peer's certificate says."""
from __future__ import annotations

import hashlib
import os
import ssl
import sys
from dataclasses import dataclass, replace

from ..schema import Field, Reader, Section, boolean, existing_file, section, string


@dataclass(frozen=True)
class TLSOptions:
    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    resume: bool = False


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
    Field("resume", boolean()),
)
read_tls = section(TLS_FIELDS, TLSOptions, rule=_pair)


class ResumingContext(ssl.SSLContext):
    """A returning client's context, for one target: each connection offers the session ticket the last
    one was given (TLS 1.3 sends tickets after the handshake, so they are read from the previous
    connection when the next one starts). The server may still choose a full handshake."""

    _last: ssl.SSLObject | None = None
    _session: ssl.SSLSession | None = None

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | None = None, session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        if self._last is not None and (offered := self._last.session) is not None and offered.has_ticket:
            self._session = offered
        self._last = super().wrap_bio(incoming, outgoing, server_side, server_hostname, session or self._session)
        return self._last


# one context per distinct option set: each context holds its own parsed copy of its CA store
_CONTEXTS: dict[TLSOptions, tuple[tuple, ssl.SSLContext]] = {}


def client_context(o: TLSOptions) -> ssl.SSLContext:
    """The context for these options, shared by every connection that has them; built anew when one of
    its files changed (a reload then reads the new CA or client certificate)."""
    key = replace(o, server_name=None, resume=False)  # the name is given per connection
    files = _files(key)
    cached = _CONTEXTS.get(key)
    if cached is not None and cached[0] == files:
        return cached[1]
    ctx = _build(key, ssl.SSLContext)
    _CONTEXTS[key] = (files, ctx)
    return ctx


def probe_context(o: TLSOptions) -> ssl.SSLContext:
    """A probe's context: its own when it resumes sessions (they belong to one server), else the shared one."""
    return _build(o, ResumingContext) if o.resume else client_context(o)


def _files(o: TLSOptions) -> tuple:
    try:
        return tuple((f, os.stat(f).st_mtime_ns, os.stat(f).st_size) for f in (o.ca_file, o.cert_file, o.key_file)
                     if f)
    except OSError:
        return (object(),)  # never equal: loading it will say what is wrong


def _build(o: TLSOptions, cls: type[ssl.SSLContext]) -> ssl.SSLContext:
    ctx = cls(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
    if o.ca_file:
        ctx.load_verify_locations(cafile=o.ca_file)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if not o.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if o.cert_file:
        ctx.load_cert_chain(o.cert_file, o.key_file)
    if (keylog := os.environ.get("SSLKEYLOGFILE")) and not sys.flags.ignore_environment:
        ctx.keylog_filename = keylog  # as ssl.create_default_context does: a capture can be decrypted
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


# IANA's names of the key-exchange groups (TLS Supported Groups registry); others are shown in hex
GROUP_NAMES = {0x17: "secp256r1", 0x18: "secp384r1", 0x19: "secp521r1", 0x1D: "x25519", 0x1E: "x448",
               0x100: "ffdhe2048", 0x101: "ffdhe3072", 0x102: "ffdhe4096", 0x103: "ffdhe6144", 0x104: "ffdhe8192",
               0x11EB: "SecP256r1MLKEM768", 0x11EC: "X25519MLKEM768", 0x11ED: "SecP384r1MLKEM1024"}


def offered_groups(o: TLSOptions | None = None) -> tuple[list[str], list[str]]:
    """The key-exchange groups the probes' TLS offers, and those it sends a key share for (what a server
    that accepts one uses, without another round trip). Python's ssl neither sets nor tells the groups (the
    OpenSSL build decides), so they are read from the ClientHello a probe's own context writes, in memory:
    no connection is made. ([], []) when it cannot be read."""
    out = ssl.MemoryBIO()
    tls = client_context(o or TLSOptions()).wrap_bio(ssl.MemoryBIO(), out, server_hostname="probe.invalid")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:  # the ClientHello is written; the server's answer would come next
        pass
    return _hello_groups(out.read())


def _hello_groups(record: bytes) -> tuple[list[str], list[str]]:
    """supported_groups (10) and key_share (51) of a ClientHello record (RFC 8446, 4.1.2)."""
    def u16(b: bytes, i: int) -> int:
        return int.from_bytes(b[i:i + 2], "big")

    def name(b: bytes, i: int) -> str:
        return GROUP_NAMES.get(u16(b, i), f"0x{u16(b, i):04x}")

    try:
        hello = record[9:]  # the record's header (5 bytes) and the handshake's (4)
        i = 34 + 1 + hello[34]  # version, random, session id
        i += 2 + u16(hello, i)  # cipher suites
        i += 1 + hello[i]  # compression methods
        end, i = i + 2 + u16(hello, i), i + 2
        offered: list[str] = []
        shares: list[str] = []
        while i + 4 <= end:
            kind, ext = u16(hello, i), hello[i + 4:i + 4 + u16(hello, i + 2)]
            if kind == 10:
                offered = [name(ext, j) for j in range(2, 2 + u16(ext, 0), 2)]
            elif kind == 51:
                j = 2
                while j + 4 <= len(ext):
                    shares.append(name(ext, j))
                    j += 4 + u16(ext, j + 2)
            i += 4 + len(ext)
        return offered, shares
    except IndexError:
        return [], []
