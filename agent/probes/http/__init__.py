"""The `http` probe type: one HTTP(S) request per probe, or a transaction of several (`steps:`), with
phases dns, connect, tls, ttfb, transfer (of the measured request)."""
from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from ..base import ProbeType, Target, register
from ..tls import TLSOptions
from .checks import JsonAssertion
from .jsonbody import JsonPath
from .config import FIELDS, build
from .oauth2 import OAuth2Options
from .probe import HttpProbe
from .spec import HttpOptions
from .steps import Step, TransactionOptions
from .transaction import TransactionProbe

PHASES = ("dns", "connect", "tls", "ttfb", "transfer")


def _measured_url(o: HttpOptions | TransactionOptions) -> str:
    return o.steps[o.measured].request.url if isinstance(o, TransactionOptions) else o.url


def applicable(o: HttpOptions | TransactionOptions) -> tuple[str, ...]:
    """No dns phase for an IP literal, no tls phase for plain HTTP."""
    parts = urlsplit(_measured_url(o))
    try:
        ipaddress.ip_address(parts.hostname or "")
        literal = True
    except ValueError:
        literal = False
    return tuple(p for p in PHASES if not (p == "dns" and literal) and not (p == "tls" and parts.scheme != "https"))


def longest(o: HttpOptions | TransactionOptions, timeout: float) -> float:
    """Each step of a transaction has the whole timeout."""
    return timeout * len(o.steps) if isinstance(o, TransactionOptions) else timeout


def make(target: Target, **kwargs: Any) -> HttpProbe:
    cls = TransactionProbe if isinstance(target.options, TransactionOptions) else HttpProbe
    return cls(target, **kwargs)


HTTP = register(ProbeType("http", FIELDS, build, PHASES, applicable, make, longest=longest))

__all__ = ["HTTP", "HttpOptions", "HttpProbe", "JsonAssertion", "JsonPath", "OAuth2Options", "Step", "TLSOptions",
           "TransactionOptions", "TransactionProbe"]
