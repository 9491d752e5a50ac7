"""Real local servers for the tests (127.0.0.1 / ::1 only): well-behaved, slow and hostile ones."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import web


@contextlib.asynccontextmanager
async def http_server(app: web.Application, host: str = "127.0.0.1",
                      ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Runs an aiohttp app on a free port; yields its base URL; cleans up after itself."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    scheme = "https" if ssl_context else "http"
    h = f"[{host}]" if ":" in host else host
    try:
        yield f"{scheme}://{h}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
                     host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """A TCP server whose handler can misbehave at will; yields the port."""
    tasks: set[asyncio.Task] = set()

    async def wrapped(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        tasks.add(task)  # type: ignore[arg-type]
        try:
            await handler(r, w)
        except (ConnectionError, asyncio.CancelledError, ssl.SSLError, OSError):
            pass
        finally:
            tasks.discard(task)  # type: ignore[arg-type]
            w.close()

    server = await asyncio.start_server(wrapped, host, 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@contextlib.contextmanager
def full_backlog(host: str = "127.0.0.1"):
    """A listening socket that never accepts, its queue filled: a new SYN gets no answer (connect hangs)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind((host, 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError, OSError):
            c.connect((host, port))
        fillers.append(c)
    try:
        yield port
    finally:
        for c in fillers:
            c.close()
        srv.close()


def closed_port(host: str = "127.0.0.1") -> int:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


@dataclass
class Certs:
    ca: Path
    good_cert: Path
    good_key: Path
    expired_cert: Path
    wrong_host_cert: Path
    self_signed_cert: Path
    self_signed_key: Path

    def server_context(self, which: str = "good") -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert = {"good": self.good_cert, "expired": self.expired_cert, "wrong_host": self.wrong_host_cert,
                "self_signed": self.self_signed_cert}[which]
        key = self.self_signed_key if which == "self_signed" else self.good_key
        ctx.load_cert_chain(cert, key)
        return ctx


def make_certs(folder: Path) -> Certs:
    """A private CA and server certificates (valid, expired, for another host, self-signed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def pem_key(k) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sla-agent test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    srv_key = key()

    def leaf(names: list[str], ips: list[str], not_before: dt.datetime, not_after: dt.datetime, issuer_key=ca_key,
             issuer=ca_name, subject_key=srv_key):
        san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or ips)[0])]))
                .issuer_name(issuer).public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName(san), critical=False)
                .sign(issuer_key, hashes.SHA256()))

    good = leaf(["localhost"], ["127.0.0.1", "::1"], now - dt.timedelta(days=1), now + dt.timedelta(days=90))
    expired = leaf(["localhost"], ["127.0.0.1", "::1"], now - dt.timedelta(days=30), now - dt.timedelta(days=1))
    wrong = leaf(["wrong.example.org"], [], now - dt.timedelta(days=1), now + dt.timedelta(days=90))
    ss_key = key()
    ss_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    self_signed = leaf(["localhost"], ["127.0.0.1"], now - dt.timedelta(days=1), now + dt.timedelta(days=90),
                       issuer_key=ss_key, issuer=ss_name, subject_key=ss_key)
    out = {}
    for name, obj in (("ca.pem", ca), ("good.pem", good), ("expired.pem", expired), ("wrong.pem", wrong),
                      ("self_signed.pem", self_signed)):
        p = folder / name
        p.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
        out[name] = p
    (folder / "server.key").write_bytes(pem_key(srv_key))
    (folder / "self_signed.key").write_bytes(pem_key(ss_key))
    return Certs(out["ca.pem"], out["good.pem"], folder / "server.key", out["expired.pem"], out["wrong.pem"],
                 out["self_signed.pem"], folder / "self_signed.key")


class Mailbox:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that offers STARTTLS, and a login (agent, mail-pw-123) only
    over TLS. While `refuse` holds an SMTP reply (such as "451 4.3.0 try again later"), every message is
    answered with it and only counted in `refused`."""

    def __init__(self, certs: Certs) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[bytes] = []
        self.refuse = ""
        self.refused = 0
        self.port = closed_port()

        def login(server, session, envelope, mechanism, data):
            # handled=False: the server answers a refused login (535) itself; without it the client waits
            return AuthResult(success=(data.login, data.password) == (b"agent", b"mail-pw-123"), handled=False)

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, require_starttls=True,
                                     tls_context=certs.server_context(), authenticator=login, auth_require_tls=True,
                                     auth_exclude_mechanism=["CRAM-MD5"])

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            self.refused += 1
            return self.refuse
        self.messages.append(envelope.content)
        return "250 kept"


def ipv6_loopback() -> bool:
    """Whether this machine has ::1 (a container may not)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False
