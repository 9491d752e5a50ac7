"""OAuth2 client credentials (RFC 6749 §4.4) for HTTP targets and steps: the options, how they are read,
and the token source that fetches, caches and refreshes the token.

The token request is never part of a probe's measured latency: the probe gets its token first, then
starts its clock. Its own timings travel with the result (TokenRequest) and are exported apart.
"""
from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import yaml

from ...clock import Clock
from ...schema import (MISSING, Field, Reader, Section, choice, list_of, ratio, read_table, string)
from ..addresses import check_url
from ..base import DOWN, INCONCLUSIVE, TokenRequest
from .body import read_limited
from .jsonbody import NotJson, decode_json

# A token this close to its expiry (seconds, or share of its life if less) is not sent: it could expire on
# its way to the server.
EXPIRY_MARGIN = 1.0
EXPIRY_MARGIN_SHARE = 0.1
MAX_TOKEN_RESPONSE = 64 * 1024


@dataclass(frozen=True)
class OAuth2Options:
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    audience: str = ""
    extra_params: tuple[tuple[str, str], ...] = ()
    client_auth: str = "basic"  # basic: HTTP Basic (RFC 6749 §2.3.1); post: in the form body
    refresh_at: float = 0.8  # share of expires_in after which the token is renewed
    failure_outcome: str = DOWN  # the outcome of a probe that could get no token

    def form(self) -> dict[str, str]:
        data = {"grant_type": "client_credentials"}
        if self.scopes:
            data["scope"] = " ".join(self.scopes)
        if self.audience:
            data["audience"] = self.audience
        data.update(self.extra_params)
        if self.client_auth == "post":
            data.update(client_id=self.client_id, client_secret=self.client_secret)
        return data

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.client_auth == "basic":  # RFC 6749 §2.3.1: each part form-encoded before joining
            pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return headers


class TokenUnavailable(Exception):
    """No token could be had: the endpoint failed and no earlier token is still valid."""


class TokenSource:
    """One cached token. At most one request to the token endpoint is in flight (concurrent probes wait
    for it); a token is renewed at `refresh_at` of its life, and sooner when the API answers 401. While
    a renewal fails, the previous token serves until it expires."""

    def __init__(self, o: OAuth2Options, clock: Clock, ssl: Any, timeout: float) -> None:
        self.o = o
        self.clock = clock
        self.ssl = ssl
        self.timeout = timeout
        self.token: str | None = None
        self.refresh_due = 0.0
        self.expires = 0.0
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._failed = False
        self.last_error = ""

    async def get(self, events: list[TokenRequest]) -> str:
        """A token to send now; the requests made to get it are appended to `events`."""
        if self.token is not None and self.clock.monotonic() < self.refresh_due:
            return self.token
        async with self._lock:
            now = self.clock.monotonic()
            if self.token is None or now >= self.refresh_due:
                reason = "first" if self.token is None and not self._failed else \
                    "retry" if self._failed else "refresh"
                await self._fetch(events, reason)
            if self.token is None or self.clock.monotonic() >= self.expires:
                raise TokenUnavailable(self.last_error)
            return self.token

    async def rejected(self, token: str, events: list[TokenRequest]) -> str:
        """The API answered 401 to `token`: one new token (unless another probe already got one)."""
        async with self._lock:
            if self.token == token:
                self.token, self.refresh_due, self.expires = None, 0.0, 0.0
                await self._fetch(events, "rejected")
            if self.token is None:
                raise TokenUnavailable(self.last_error)
            return self.token

    async def _fetch(self, events: list[TokenRequest], reason: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                                  connector=aiohttp.TCPConnector(ssl=self.ssl, limit=4))
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                token, lifetime = await self._request()
        except TokenUnavailable as exc:
            self._failed_with(str(exc), events, t0, reason)
            return
        except TimeoutError:
            self._failed_with(f"token endpoint gave no answer within {self.timeout:g}s", events, t0, reason)
            return
        except (aiohttp.ClientError, OSError) as exc:
            self._failed_with(f"token endpoint unreachable: {type(exc).__name__}: {exc}", events, t0, reason)
            return
        events.append(TokenRequest(time.monotonic() - t0, "ok", reason))
        now = self.clock.monotonic()
        self.token, self._failed, self.last_error = token, False, ""
        self.refresh_due = now + self.o.refresh_at * lifetime if lifetime else float("inf")
        self.expires = now + lifetime - min(EXPIRY_MARGIN, EXPIRY_MARGIN_SHARE * lifetime) if lifetime else float("inf")

    def _failed_with(self, error: str, events: list[TokenRequest], t0: float, reason: str) -> None:
        events.append(TokenRequest(time.monotonic() - t0, "error", reason))
        self._failed, self.last_error = True, error

    async def _request(self) -> tuple[str, float]:
        o = self.o
        async with self._session.post(o.token_url, data=urlencode(o.form()),  # type: ignore[union-attr]
                                      headers={**o.headers(), "Content-Type": "application/x-www-form-urlencoded"},
                                      allow_redirects=False) as resp:
            raw, too_large = await read_limited(resp, MAX_TOKEN_RESPONSE)
            if too_large:
                raise TokenUnavailable(f"token endpoint answered HTTP {resp.status} with more than "
                                       f"{MAX_TOKEN_RESPONSE} bytes")
            try:
                doc = decode_json(raw)
            except NotJson:
                doc = None
            if resp.status != 200:
                detail = f" ({doc['error']})" if isinstance(doc, dict) and isinstance(doc.get("error"), str) else ""
                raise TokenUnavailable(f"token endpoint answered HTTP {resp.status}{detail}")
        return _token_of(doc)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _token_of(doc: Any) -> tuple[str, float]:
    """(access_token, lifetime in seconds, 0 when the answer gives none)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str) or not doc["access_token"]:
        raise TokenUnavailable("token endpoint answered without an access_token")
    kind = doc.get("token_type", "bearer")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise TokenUnavailable(f"token endpoint gave a token of type {kind!r}, not bearer")
    lifetime = doc.get("expires_in", 0)
    if isinstance(lifetime, str) and lifetime.isdigit():  # some servers send it as a string
        lifetime = int(lifetime)
    if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime < 0:
        raise TokenUnavailable("token endpoint gave an expires_in that is not a number of seconds")
    return doc["access_token"], float(lifetime)


# -- config ----------------------------------------------------------------------------------------
def _params(r: Reader, node: yaml.Node, path: str) -> Any:
    pairs = r.pairs(node, path, "parameter name to value")
    if pairs is None:
        return MISSING
    values = [(str(k.value), r.string(v, f"{path}.{k.value}", allow_empty=True, env=True)) for k, v in pairs]
    return MISSING if any(v is MISSING for _, v in values) else tuple(values)


def _secret(r: Reader, node: yaml.Node, path: str) -> Any:
    value = r.string(node, path, env=True)
    if value is not MISSING:
        r.secrets.add(value)
    return value


def _token_url(r: Reader, node: yaml.Node, path: str) -> Any:
    url = r.string(node, path, env=True)
    if url is MISSING:
        return MISSING
    problem = check_url(url)
    return r.reject(node, path, problem) if problem else url


OAUTH2_FIELDS = (
    Field("token_url", _token_url, required=True),
    Field("client_id", string(env=True), required=True),
    Field("client_secret", _secret),
    Field("client_secret_file", Reader.secret_file),
    Field("scopes", list_of(string())),
    Field("audience", string(env=True)),
    Field("extra_params", _params),
    Field("client_auth", choice("basic", "post")),
    Field("refresh_at", ratio()),
    Field("failure_outcome", choice(DOWN, INCONCLUSIVE)),
)


def _oauth2(r: Reader, node: yaml.Node, path: str) -> Any:
    s: Section = read_table(r, node, path, OAUTH2_FIELDS)
    has = [k for k in ("client_secret", "client_secret_file") if k in s.nodes]
    if len(has) != 1 and isinstance(node, yaml.MappingNode):
        r.error(node, path, "needs exactly one of `client_secret` (use ${ENV}) or `client_secret_file`")
        return MISSING
    if not s.ok:
        return MISSING
    kw = dict(s.values)
    kw["client_secret"] = kw.pop("client_secret_file", None) or kw.get("client_secret")
    if kw.get("refresh_at", 0.8) <= 0:
        return r.reject(s.nodes["refresh_at"], f"{path}.refresh_at", "must be above 0 (0.8 renews at 80 % of "
                                                                     "the token's life)")
    return OAuth2Options(**kw)


def read_auth(r: Reader, node: yaml.Node, path: str) -> Any:
    """`auth: {oauth2: {...}}`."""
    m = r.mapping(node, path, {"oauth2"})
    if "oauth2" not in m:
        if isinstance(node, yaml.MappingNode) and not node.value:
            r.error(node, path, "needs `oauth2`")
        return MISSING
    return _oauth2(r, m["oauth2"], f"{path}.oauth2")
