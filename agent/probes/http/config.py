"""What a target of type `http` may say: one request (spec.py), or a transaction of several (steps.py)
when it has `steps:`. The connection settings and the auth of a transaction sit at the target level and
hold for every step; everything else about a request belongs to its step."""
from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from ...schema import Field, Reader, Section
from .oauth2 import OAuth2Options
from .spec import REQUEST_FIELDS, HttpOptions, authorization_once, private_headers, request_options
from .steps import Step, TransactionOptions, read_steps, step_fields

CONNECTION = ("tls", "ip_family", "keepalive", "headers", "header_files", "basic_auth", "auth")
STEP_FIELDS = step_fields(REQUEST_FIELDS)
REQUEST_KEYS = {f.key for f in REQUEST_FIELDS}


def _steps(r: Reader, node: yaml.Node, path: str) -> Any:
    return read_steps(r, node, path, STEP_FIELDS, request_options)


# `url` is required of a target without steps only: build() says so
FIELDS = tuple(dataclasses.replace(f, required=False) for f in REQUEST_FIELDS) + (Field("steps", _steps),)


def build(r: Reader, s: Section, path: str) -> HttpOptions | TransactionOptions | None:
    headers = s.values.get("headers", ()) + s.values.get("header_files", ()) + s.values.get("basic_auth", ())
    ok = authorization_once(r, s, path, headers) and s.ok
    if "steps" in s.nodes:
        return _transaction(r, s, path, headers) if ok else None
    if "url" not in s.nodes and isinstance(s.node, yaml.MappingNode):
        r.error(s.node, f"{path}.url", "is required (or `steps`, for a transaction of several requests)")
        return None
    if not ok or "url" not in s.values:
        return None
    return request_options({**s.values, "private_headers": private_headers(s)})


def _transaction(r: Reader, s: Section, path: str, headers: tuple) -> TransactionOptions | None:
    misplaced = [k for k in s.nodes if k in REQUEST_KEYS and k not in CONNECTION]
    for key in misplaced:
        r.error(s.nodes[key], f"{path}.{key}", f"belongs to a step when the target has `steps` (at the target "
                                               f"level: {', '.join(CONNECTION)})")
    if misplaced or "steps" not in s.values:
        return None
    steps: tuple[Step, ...] = s.values["steps"]
    auth = s.values.get("auth")
    if auth is not None:  # the target's auth is every step's, unless the step has its own
        steps = tuple(st if st.request.auth else _with_auth(st, auth) for st in steps)
    kw = {k: v for k, v in s.values.items() if k in ("tls", "ip_family", "keepalive")}
    return TransactionOptions(steps, headers=headers, private_headers=private_headers(s), **kw)


def _with_auth(step: Step, auth: OAuth2Options) -> Step:
    return dataclasses.replace(step, request=dataclasses.replace(step.request, auth=auth))
