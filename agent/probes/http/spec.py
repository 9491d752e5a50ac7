"""The options of one HTTP request (an `http` target, or one step of a transaction): what the config
may say, how it is read and checked."""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable
from urllib.parse import unquote, urlsplit

import yaml

from ...redact import SECRET_HEADER
from ...schema import (ENV_REF, MISSING, Field, Reader, Regex, Section, boolean, choice, integer, list_of, regex,
                       string)
from ..tls import TLSOptions, read_tls
from .checks import Check, JsonAssertion, response_checks
from .jsonbody import read_json_path
from ..addresses import check_url
from .oauth2 import OAuth2Options, read_auth

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True)
class HttpOptions:
    TYPE: ClassVar[str] = "http"

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    expect_status: tuple[int, ...] = ()  # empty: any 2xx
    body_regex: tuple[Regex, ...] = ()
    body_not_regex: tuple[Regex, ...] = ()
    json: tuple[JsonAssertion, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    tls: TLSOptions = field(default_factory=TLSOptions)
    redirects: str = "follow"  # follow | none
    max_redirects: int = 10
    ip_family: str = "any"  # any | ipv4 | ipv6
    keepalive: bool = False
    auth: OAuth2Options | None = None
    private_headers: frozenset[str] = frozenset()  # lower-case names sent to the URL's own origin only
    checks: tuple[Check, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", response_checks(self.expect_status, self.body_regex, self.body_not_regex,
                                                           self.json))

    @property
    def address(self) -> str:
        return self.url


# -- readers of the fields that are more than a scalar ------------------------------------------------
def _url(r: Reader, node: yaml.Node, path: str) -> Any:
    url = r.string(node, path, env=True)
    if url is MISSING:
        return MISSING
    problem = check_url(url)
    if problem:
        return r.reject(node, path, problem)
    parts = urlsplit(url)
    if parts.password:  # a secret, also as it travels in the Authorization header aiohttp builds from it,
        # percent-escapes decoded
        user, password = unquote(parts.username or ""), unquote(parts.password)
        r.secrets.update((parts.password, password, base64.b64encode(f"{user}:{password}".encode()).decode()))
    return url


def _headers(r: Reader, node: yaml.Node, path: str) -> Any:
    pairs = r.pairs(node, path, "header name to value")
    if pairs is None:
        return MISSING
    out, ok = [], True
    for knode, vnode in pairs:
        name, hp = str(knode.value), f"{path}.{knode.value}"
        if not _HEADER_NAME.fullmatch(name):
            r.error(knode, hp, "is not a valid HTTP header name")
            ok = False
            continue
        value = r.string(vnode, hp, allow_empty=True, env=True)
        if value is MISSING:
            ok = False
            continue
        if SECRET_HEADER.search(name) and value:
            _secret_header(r, value)
        out.append((name, value))
    return tuple(out) if ok else MISSING


def _secret_header(r: Reader, value: str) -> None:
    """The value is a secret, and so is each of its words (the token of `Bearer <token>`), which a server
    may echo alone."""
    r.secrets.add(value)
    r.secrets.update(part for part in value.split() if len(part) >= 8)


def _header_files(r: Reader, node: yaml.Node, path: str) -> Any:
    pairs = r.pairs(node, path, "header name to a file holding its value")
    if pairs is None:
        return MISSING
    values = [(str(k.value), r.secret_file(v, f"{path}.{k.value}")) for k, v in pairs]
    if any(v is MISSING for _, v in values):
        return MISSING
    for _, value in values if not r.offline else ():  # offline, the value only stands for the file
        _secret_header(r, value)
    return tuple(values)


def _basic_auth(r: Reader, node: yaml.Node, path: str) -> Any:
    m = r.mapping(node, path, {"username", "password", "password_file"})
    user = r.string(m["username"], f"{path}.username", env=True) if "username" in m else MISSING
    if "password" in m:
        pw = r.string(m["password"], f"{path}.password", env=True)
        if pw is not MISSING:
            r.secrets.add(pw)
    elif "password_file" in m:
        pw = r.secret_file(m["password_file"], f"{path}.password_file")
    else:
        pw = r.reject(node, path, "needs `password` (use ${ENV}) or `password_file`")
    if "username" not in m:
        r.error(node, f"{path}.username", "is required")
    if user is MISSING or pw is MISSING:
        return MISSING
    token = base64.b64encode(f"{user}:{pw}".encode()).decode()
    r.secrets.add(token)
    return (("Authorization", f"Basic {token}"),)


def _json_assertion(r: Reader, node: yaml.Node, path: str) -> Any:
    m = r.mapping(node, path, {"path", "equals"})
    if "path" not in m or "equals" not in m:
        if isinstance(node, yaml.MappingNode):
            r.error(node, path, "needs both `path` (such as $.data.status) and `equals`")
        return MISSING
    jpath = read_json_path(r, m["path"], f"{path}.path")
    equals = r.scalar(m["equals"], f"{path}.equals")
    if jpath is MISSING or equals is MISSING:
        return MISSING
    return JsonAssertion(jpath, equals)


REQUEST_FIELDS = (
    Field("url", _url, required=True),
    Field("method", choice(*METHODS)),
    Field("body", string(allow_empty=True, env=True)),
    Field("headers", _headers),
    Field("header_files", _header_files),
    Field("basic_auth", _basic_auth),
    Field("auth", read_auth),
    Field("expect_status", list_of(integer(100, 599))),
    Field("body_regex", list_of(regex())),
    Field("body_not_regex", list_of(regex())),
    Field("json", list_of(_json_assertion)),
    Field("max_body_bytes", integer(0, 1 << 40)),
    Field("tls", read_tls),
    Field("redirects", choice("follow", "none")),
    Field("max_redirects", integer(0, 50)),
    Field("ip_family", choice("any", "ipv4", "ipv6")),
    Field("keepalive", boolean()),
)


def private_headers(s: Section, variables: Iterable[str] = ()) -> frozenset[str]:
    """The headers that follow a redirect to the target's own origin only: basic_auth, header files,
    a secret-looking name, a value that names an environment variable (`variables`: those of a step,
    which the probe judges by whether they are secret)."""
    names = {k.lower() for k, _ in s.values.get("header_files", ()) + s.values.get("basic_auth", ())}
    node = s.nodes.get("headers")
    for knode, vnode in node.value if isinstance(node, yaml.MappingNode) else ():
        name, raw = str(knode.value), vnode.value if isinstance(vnode, yaml.ScalarNode) else ""
        if SECRET_HEADER.search(name) or set(ENV_REF.findall(str(raw))) - set(variables):
            names.add(name.lower())
    return frozenset(names)


def request_options(kw: dict[str, Any]) -> HttpOptions:
    """The options of one request; headers, header files and basic auth make one header list."""
    kw = dict(kw)
    headers = kw.pop("headers", ()) + kw.pop("header_files", ()) + kw.pop("basic_auth", ())
    return HttpOptions(headers=headers, **kw)


def authorization_once(r: Reader, s: Section, path: str, headers: tuple) -> bool:
    ok = True
    has_header = any(k.lower() == "authorization" for k, _ in headers)
    if "url" in s.values and urlsplit(s.values["url"]).username is not None and has_header:
        r.error(s.nodes["url"], f"{path}.url", "has user:password@ credentials and an Authorization header (or "
                                               "basic_auth): keep one of them")
        ok = False
    if "auth" in s.values and has_header:
        r.error(s.nodes["auth"], f"{path}.auth", "sets the Authorization header itself: drop the Authorization "
                                                  "header (or basic_auth)")
        ok = False
    if "auth" in s.values and "url" in s.values and urlsplit(s.values["url"]).username is not None:
        r.error(s.nodes["url"], f"{path}.url", "has user:password@ credentials and `auth` sets the Authorization "
                                               "header: keep one of them")
        ok = False
    return ok
