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

import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version"}
AUTH_TYPES = ("NoClientCert", "RequireAndVerifyClientCert", "VerifyClientCertIfGiven", "RequireAnyClientCert")
BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


class WebConfigError(Exception):
    pass


@dataclass
class WebConfig:
    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    min_version: str = "TLS12"
    users: dict[str, bytes] = field(default_factory=dict)  # checked by basicauth.py

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
        if not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed):
            raise WebConfigError(f"{p}: basic_auth_users.{user}: must be a bcrypt hash (htpasswd -nBC 10 {user})")
        wc.users[str(user)] = hashed.encode()
    return wc
