"""Keeps secrets out of every text that leaves the agent: logs, metrics, reports, error messages."""
from __future__ import annotations

import base64
import json
import os
import re
from typing import Iterable
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

_USERINFO = re.compile(r"(?<=://)[^/@\s:]+(:[^/@\s]*)?@")
MASK = "<redacted>"
_LOWER_HEX = re.compile(r"%[0-9A-F]{2}")
# Header names whose values are secrets (request credentials, session cookies)
SECRET_HEADER = re.compile(r"auth|token|key|secret|cookie|session|password", re.I)
# A base64 fragment shorter than this is not masked: it would match ordinary text all over.
MIN_FRAGMENT = 4


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


def encodings(secret: str) -> set[str]:
    """The secret in every form the agent sends it, for a server may echo any of them: as is;
    percent-encoded, as a URL part (%20 for a space; OAuth2 HTTP Basic credentials, RFC 6749 §2.3.1) and
    as a form value ('+' for a space, as aiohttp and urlencode write a form body); and inside base64 (HTTP
    Basic credentials `id:secret`) of either, wherever it falls."""
    if not secret:
        return set()
    quoted = quote(secret, safe="")
    out = {secret, quoted, quote_plus(secret, safe="")} | echoed(secret)
    for text in {secret, quoted}:
        for codec in ("utf-8", "latin-1"):  # aiohttp encodes the Basic credentials of a URL in latin-1
            try:
                out.update(base64_fragments(text.encode(codec)))
            except UnicodeEncodeError:
                continue
    return out


def echoed(secret: str) -> set[str]:
    """Forms a server may echo the secret in after decoding it: encoded again by another library (Python's
    quote leaves '/', JavaScript's encodeURIComponent "!*'()", some write lower-case hex) or escaped in a
    JSON string ('\\/', \\uXXXX)."""
    forms = {quote(secret), quote(secret, safe="!*'()"), quote_plus(secret)}
    forms |= {_LOWER_HEX.sub(lambda m: m.group().lower(), f) for f in forms | {quote(secret, safe="")}}
    escaped = json.dumps(secret)[1:-1]
    return forms | {escaped, escaped.replace("/", "\\/"), json.dumps(secret, ensure_ascii=False)[1:-1]}


def base64_fragments(raw: bytes) -> set[str]:
    """The base64 characters that depend on `raw` alone, at each of the three offsets it may have in the
    encoded text (the characters it shares with its neighbours differ with them)."""
    out = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        first, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6  # whole 6-bit groups within raw
        if end - first >= MIN_FRAGMENT:
            out.add(encoded[first:end])
    return out


class Redactor:
    """Replaces every configured secret value, in each of its encodings (longest first), and any URL
    userinfo in a text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))  # for url_encoded
        values = {e for s in self.secrets for e in encodings(s)}
        self._pattern = re.compile(_trie(values)) if values else None

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


def _trie(words: Iterable[str]) -> str:
    """A pattern that matches any of `words`, the longest of those that start at one place. An alternation
    of the words is tried branch by branch at every position of a text, and the encodings of a few secrets
    make hundreds of words: as a trie, words that start alike share their branches."""
    words = list(words)
    groups: dict[str, list[str]] = {}
    for w in words:
        if w:
            groups.setdefault(w[0], []).append(w)
    branches = []
    for group in groups.values():
        common = os.path.commonprefix(group)
        branches.append(re.escape(common) + _trie(w[len(common):] for w in group))
    if not branches:
        return ""
    either = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{either})?" if "" in words else either  # greedy: the longer word first
