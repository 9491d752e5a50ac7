"""TLS and basic auth for the HTTP endpoints, in Prometheus' exporter-toolkit `web.yml` format, so
users reuse the file (and the bcrypt hashes, `htpasswd -nBC 10 user`) they already have:

    tls_server_config:
      cert_file: /etc/sla-agent/tls.crt
      key_file: /etc/sla-agent/tls.key
      client_auth_type: NoClientCert     # or RequireAndVerifyClientCert, VerifyClientCertIfGiven
      client_ca_file: /etc/sla-agent/ca.crt
      min_version: TLS12                 # or TLS13
    basic_auth_users:
      prometheus: $2y$10$...
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import ssl
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version"}
AUTH_TYPES = ("NoClientCert", "RequireAndVerifyClientCert", "VerifyClientCertIfGiven", "RequireAnyClientCert")
_CACHE_SIZE = 256


class WebConfigError(Exception):
    pass


@dataclass
class WebConfig:
    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    min_version: str = "TLS12"
    users: dict[str, bytes] = field(default_factory=dict)
    _ok: "OrderedDict[bytes, None]" = field(default_factory=OrderedDict, repr=False)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.cert_file:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if self.min_version == "TLS13" else ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.client_auth_type != "NoClientCert":
            if self.client_ca_file:
                ctx.load_verify_locations(self.client_ca_file)
            ctx.verify_mode = ssl.CERT_OPTIONAL if self.client_auth_type == "VerifyClientCertIfGiven" else \
                ssl.CERT_REQUIRED
        return ctx

    def check(self, request: Any) -> bool:
        """Basic auth against bcrypt hashes. Successful pairs are remembered (as a keyed digest, never in
        clear) so a scrape every few seconds does not pay bcrypt's deliberate slowness each time."""
        if not self.users:
            return True
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            bcrypt.checkpw(b"timing", _DUMMY)  # same cost whether or not the user exists
            return False
        key = hmac.new(_CACHE_KEY, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        if key in self._ok:
            self._ok.move_to_end(key)
            return True
        if not bcrypt.checkpw(password.encode("utf-8"), hashed):
            return False
        self._ok[key] = None
        if len(self._ok) > _CACHE_SIZE:
            self._ok.popitem(last=False)
        return True


_CACHE_KEY = os.urandom(32)
_DUMMY = bcrypt.hashpw(b"dummy", bcrypt.gensalt(rounds=10))


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise WebConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise WebConfigError(f"{p}: must be a mapping with tls_server_config and/or basic_auth_users")
    unknown = set(doc) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise WebConfigError(f"{p}: unknown key {sorted(unknown)[0]!r}; valid: tls_server_config, basic_auth_users, "
                             f"http_server_config")
    wc = WebConfig()
    tls = doc.get("tls_server_config") or {}
    if not isinstance(tls, dict) or set(tls) - TLS_KEYS:
        raise WebConfigError(f"{p}: tls_server_config takes {', '.join(sorted(TLS_KEYS))}")
    base = p.parent
    for key in ("cert_file", "key_file", "client_ca_file"):
        if tls.get(key):
            f = Path(tls[key]) if os.path.isabs(tls[key]) else base / tls[key]
            if not f.is_file():
                raise WebConfigError(f"{p}: tls_server_config.{key}: no such file {f}")
            setattr(wc, key, str(f))
    if bool(wc.cert_file) != bool(wc.key_file):
        raise WebConfigError(f"{p}: tls_server_config needs both cert_file and key_file")
    if tls.get("client_auth_type"):
        if tls["client_auth_type"] not in AUTH_TYPES:
            raise WebConfigError(f"{p}: tls_server_config.client_auth_type must be one of {', '.join(AUTH_TYPES)}")
        wc.client_auth_type = tls["client_auth_type"]
    if tls.get("min_version"):
        if tls["min_version"] not in ("TLS12", "TLS13"):
            raise WebConfigError(f"{p}: tls_server_config.min_version must be TLS12 or TLS13")
        wc.min_version = tls["min_version"]
    users = doc.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise WebConfigError(f"{p}: basic_auth_users must map user names to bcrypt hashes")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(f"{p}: basic_auth_users.{user}: must be a bcrypt hash (htpasswd -nBC 10 {user})")
        wc.users[str(user)] = hashed.encode()
    return wc
