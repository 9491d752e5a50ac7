"""Multi-step transactions (`type: http` with `steps:`): each step is a request with the options of an
http target, its own checks, and `extract` rules that put values of its response into variables used
by the later steps as `${name}`. One step is measured (`measure: true`, by default the last): only its
latency enters the population; the transaction is down when any step fails.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import yaml
from yarl import URL

from ...schema import ENV_REF, MISSING, Field, Reader, boolean, read_table, string
from ..tls import TLSOptions
from .checks import Answer
from .jsonbody import NotJson, read_json_path
from ...redact import SECRET_HEADER
from .spec import HttpOptions, authorization_once, private_headers

_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What a header value may not hold (RFC 9110 §5.5: CR, LF and NUL are refused, other controls are not
# field characters); aiohttp refuses CR and LF itself, as an error of the agent rather than of the value.
NOT_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class Extraction:
    var: str
    source: str  # json | regex | header
    expr: Any  # a JsonPath, a Regex, a header name
    secret: bool = False

    def value(self, answer: Answer, headers: Any) -> str | None:
        """The extracted text, None when the response does not have it; raises NotJson (a json source)."""
        if self.source == "header":
            return headers.get(self.expr) if headers is not None else None
        if self.source == "regex":
            m = self.expr.search(answer.text)
            return None if m is None else (m.group(1) if self.expr.groups else m.group(0))
        try:
            found = self.expr.lookup(answer.json())
        except LookupError:
            return None
        return found if isinstance(found, str) else json.dumps(found)

    def describe(self) -> str:
        expr = self.expr.pattern if self.source == "regex" else self.expr
        return f"{self.source} {expr}"


@dataclass(frozen=True)
class Step:
    name: str
    request: HttpOptions
    extract: tuple[Extraction, ...] = ()
    measure: bool = False
    templated: bool = field(init=False, compare=False)  # the request uses variables

    def __post_init__(self) -> None:
        r = self.request
        texts = [r.url, r.body or ""] + [v for _, v in r.headers]
        object.__setattr__(self, "templated", any(ENV_REF.search(t) for t in texts))

    def resolve(self, values: dict[str, str]) -> tuple[URL, bytes | None, dict[str, str] | None]:
        """The request's URL, body and headers with the variables in place."""
        r = self.request
        if not self.templated:
            return URL(r.url), r.body.encode() if r.body is not None else None, dict(r.headers) or None
        fill: Callable[[str], str] = lambda s: ENV_REF.sub(lambda m: values[m.group(1)], s)  # noqa: E731
        body = fill(r.body).encode() if r.body is not None else None
        return URL(fill(r.url)), body, {k: fill(v) for k, v in r.headers} or None


@dataclass(frozen=True)
class TransactionOptions:
    TYPE: ClassVar[str] = "http"

    steps: tuple[Step, ...]
    headers: tuple[tuple[str, str], ...] = ()  # sent by every step (a step's own header wins)
    private_headers: frozenset[str] = frozenset()  # of `headers`: sent to each step's own origin only
    tls: TLSOptions = field(default_factory=TLSOptions)
    ip_family: str = "any"
    keepalive: bool = False

    @property
    def measured(self) -> int:
        return next(i for i, s in enumerate(self.steps) if s.measure)

    @property
    def address(self) -> str:
        more = len(self.steps) - 1
        return f"{self.steps[0].request.url} (+{more} step{'s' if more > 1 else ''})"


# -- config ----------------------------------------------------------------------------------------
def _extraction(r: Reader, node: yaml.Node, path: str, var: str) -> Any:
    m = r.mapping(node, path, {"json", "regex", "header", "secret"})
    sources = [k for k in ("json", "regex", "header") if k in m]
    if len(sources) != 1:
        if isinstance(node, yaml.MappingNode):
            r.error(node, path, "needs exactly one of `json` (a path such as $.items[0].id), `regex` (its first "
                                "group) or `header` (a response header name)")
        return MISSING
    source = sources[0]
    secret = r.boolean(m["secret"], f"{path}.secret") if "secret" in m else False
    if source == "regex":
        expr = r.regex(m["regex"], f"{path}.regex")
    elif source == "json":
        expr = read_json_path(r, m["json"], f"{path}.json")
    else:
        expr = r.string(m[source], f"{path}.{source}")
    if MISSING in (expr, secret):
        return MISSING
    return Extraction(var, source, expr, secret)


def _extract(r: Reader, node: yaml.Node, path: str) -> Any:
    pairs = r.pairs(node, path, "variable name to {json | regex | header}")
    if pairs is None:
        return MISSING
    out = []
    for knode, vnode in pairs:
        var = str(knode.value)
        if not _VAR.fullmatch(var):
            r.error(knode, f"{path}.{var}", "is not a valid variable name (letters, digits and _, not first a digit)")
            out.append(MISSING)
        else:
            out.append(_extraction(r, vnode, f"{path}.{var}", var))
    return MISSING if MISSING in out else tuple(out)


def step_fields(request_fields: tuple[Field, ...]) -> tuple[Field, ...]:
    """A step's keys: its name, the request options of an http target, what it extracts, `measure`."""
    connection = {"tls", "ip_family", "keepalive"}  # one connection setting per transaction: the target's
    return ((Field("name", string(), required=True),) + tuple(f for f in request_fields if f.key not in connection)
            + (Field("extract", _extract), Field("measure", boolean())))


def read_steps(r: Reader, node: yaml.Node, path: str, fields: tuple[Field, ...],
               build: Callable[[dict[str, Any]], HttpOptions]) -> Any:
    """The list of steps; the variables a step extracts are defined for the steps after it."""
    items = r.seq(node, path)
    if isinstance(node, yaml.SequenceNode) and not items:
        return r.reject(node, path, "needs at least one step")
    steps, defined, measured, names = [], [], None, {}
    for i, item in enumerate(items):
        spath = f"{path}[{i}]"
        r.variables = tuple(defined)
        try:
            s = read_table(r, item, spath, fields)
        finally:
            r.variables = None
        headers = s.values.get("headers", ()) + s.values.get("header_files", ()) + s.values.get("basic_auth", ())
        s.ok = authorization_once(r, s, spath, headers) and s.ok
        name = s.values.get("name")
        if name in names:
            r.error(s.node_of("name"), f"{spath}.name", f"duplicate step name {name!r} (first used at {names[name]})")
            s.ok = False
        names.setdefault(name, spath)
        if s.values.get("measure"):
            if measured is not None:
                r.error(s.node_of("measure"), f"{spath}.measure", f"only one step may be measured; {measured} "
                                                                  "already has measure: true")
                s.ok = False
            measured = spath
        values = {**s.values, "private_headers": private_headers(s, defined)}
        defined += [e.var for e in s.values.get("extract", ())]
        steps.append(_step(values, build) if s.ok else MISSING)
    if MISSING in steps or not steps:
        return MISSING
    if measured is None:  # the last step by default
        steps[-1] = Step(steps[-1].name, steps[-1].request, steps[-1].extract, True)
    return tuple(steps)


def _step(values: dict[str, Any], build: Callable[[dict[str, Any]], HttpOptions]) -> Step:
    kw = dict(values)
    name, extract, measure = kw.pop("name"), kw.pop("extract", ()), kw.pop("measure", False)
    return Step(name, build(kw), extract, measure)


def extracted(extract: tuple[Extraction, ...], answer: Answer, headers: Any,
              header_vars: set[str]) -> tuple[dict[str, str], str]:
    """The values of a step's extractions, and what failed the step ("" if nothing): a value the response
    lacks, or one bound for a header that a header cannot carry. Either is the vendor's answer. What was
    found before the failure is returned too (the refused value with it): a secret among it is masked in
    the captured response."""
    found: dict[str, str] = {}
    for e in extract:
        try:
            value = e.value(answer, headers)
        except NotJson as exc:
            return found, f"extract {e.var}: {e.describe()}: {exc}"
        if value is None:
            return found, f"extract {e.var}: {e.describe()} is absent from the response"
        found[e.var] = value
        if e.var in header_vars and NOT_IN_HEADER.search(value):
            return found, (f"extract {e.var}: {e.describe()} gave a value that cannot go in a header (it holds a "
                           f"line break or another control character)")
    return found, ""


def header_names(steps: tuple[Step, ...]) -> set[str]:
    """Variables some step sends in a header value."""
    return {name for s in steps for _, v in s.request.headers for name in ENV_REF.findall(v)}


def secret_names(steps: tuple[Step, ...]) -> set[str]:
    """Variables kept out of every text: marked `secret: true`, or sent in a secret-looking header."""
    names = {e.var for s in steps for e in s.extract if e.secret}
    for s in steps:
        for k, v in s.request.headers:
            if SECRET_HEADER.search(k):
                names.update(ENV_REF.findall(v))
    return names
