"""Keeps secrets out of every text that leaves the agent: logs, metrics, reports, error messages."""
from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"(?<=://)[^/@\s:]+(:[^/@\s]*)?@")
MASK = "<redacted>"
# Header names whose values are secrets (request credentials, session cookies)
SECRET_HEADER = re.compile(r"auth|token|key|secret|cookie|session|password", re.I)


def redact_url(url: str) -> str:
    """Drops the userinfo of a URL: https://user:pw@host/ -> https://<redacted>@host/."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(MASK + "@", url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{MASK}@{netloc}", parts.path, parts.query, parts.fragment))


class Redactor:
    """Replaces every configured secret value (longest first) and any URL userinfo in a text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.secrets = tuple(values)  # for the readers that also look for their encodings (url_encoded)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        text = _USERINFO.sub(MASK + "@", text)
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return text


def url_encoded(secret: str) -> str:
    """A regular expression for the secret however a URL or a form carries it: each character as itself or
    as %XX of its UTF-8 bytes (hex in either case), a space also as '+'. Browsers, forms and page scripts
    each escape a different set of characters, so no single encoded string covers them all."""
    def char(c: str) -> str:
        hexes = "".join(f"%{b:02X}" for b in c.encode())
        escaped = "".join(f"[{h}{h.lower()}]" if h.isalpha() else h for h in hexes)
        return "(?:" + "|".join([re.escape(c), escaped] + ([r"\+"] if c == " " else [])) + ")"

    return "".join(char(c) for c in secret)
