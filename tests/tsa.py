"""A real RFC 3161 time-stamping authority on 127.0.0.1 for the tests (and the bench): the OpenSSL CLI's
`openssl ts -reply`, with a throw-away CA and a TSA certificate (extendedKeyUsage critical timeStamping)
made in a folder of the test's, behind a small aiohttp server. `mode` says how it answers: good tokens,
503 (down) or 200 with bytes that are no token (garbage)."""
from __future__ import annotations

import asyncio
import contextlib
import subprocess  # nosec - the system's openssl, with arguments of our own
import threading
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from .servers import http_server

TSA_EXT = """[tsa]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,nonRepudiation
extendedKeyUsage=critical,timeStamping
"""
TS_CONF = """[tsa]
default_tsa = tsa1
[tsa1]
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
certs = {dir}/tsa.pem
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _openssl(*args: str, cwd: Path) -> bytes:
    return subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True).stdout  # nosec


def make_ca(folder: Path, name: str = "TestCA") -> Path:
    """A self-signed CA certificate (and its key beside it): ca.pem."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "3650", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    return folder / "ca.pem"


class LocalTSA:
    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.ca = make_ca(folder, "sla-agent test TSA root")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tsa.key",
                 "-out", "tsa.csr", "-subj", "/CN=sla-agent test TSA", cwd=folder)
        (folder / "ext.cnf").write_text(TSA_EXT)
        _openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "tsa.pem", "-days", "3650", "-extfile", "ext.cnf", "-extensions", "tsa", cwd=folder)
        (folder / "ts.cnf").write_text(TS_CONF.format(dir=folder))
        (folder / "serial").write_text("01\n")
        self.mode = "good"  # good | down | garbage
        self.url = ""
        self.requests = 0
        self.tokens = 0
        self._lock = threading.Lock()

    def reply(self, query: bytes) -> bytes:
        with self._lock:  # one serial file
            (self.dir / "query.tsq").write_bytes(query)
            _openssl("ts", "-reply", "-config", "ts.cnf", "-queryfile", "query.tsq", "-out", "reply.tsr",
                     cwd=self.dir)
            return (self.dir / "reply.tsr").read_bytes()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        query = await request.read()
        if self.mode == "down":
            return web.Response(status=503, text="maintenance")
        if self.mode == "garbage":
            return web.Response(body=b"\x30\x82\x01\x00<html>not a token</html>",
                                content_type="application/timestamp-reply")
        answer = await asyncio.to_thread(self.reply, query)
        self.tokens += 1
        return web.Response(body=answer, content_type="application/timestamp-reply")

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Yields the authority's URL."""
        app = web.Application()
        app.router.add_post("/tsr", self.handle)
        async with http_server(app) as base:
            self.url = f"{base}/tsr"
            yield self.url
