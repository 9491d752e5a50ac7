"""What a host name and an http:// or https:// URL in the config must be, for every probe type."""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?")


def check_url(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL, got {url.split('://')[0] + '://' if '://' in url else url!r}"
    if not parts.hostname:
        return "has no host name"
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        if not HOST_NAME.fullmatch(parts.hostname):
            return f"host {parts.hostname!r} is not a valid host name"
    if port == 0:
        return "port 0 is not a valid port"
    return None


def is_ip(host: str) -> bool:
    """An IP literal (no name to resolve): 192.0.2.1, 2001:db8::1."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
