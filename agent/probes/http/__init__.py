"""The `http` probe type: one HTTP(S) request per probe, phases dns, connect, tls, ttfb, transfer."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..base import ProbeType, register
from .checks import JsonAssertion, json_lookup
from .probe import HttpProbe
from ..tls import TLSOptions
from .spec import FIELDS, HttpOptions, build

PHASES = ("dns", "connect", "tls", "ttfb", "transfer")


def applicable(o: HttpOptions) -> tuple[str, ...]:
    """No dns phase for an IP literal, no tls phase for plain HTTP."""
    parts = urlsplit(o.url)
    try:
        ipaddress.ip_address(parts.hostname or "")
        literal = True
    except ValueError:
        literal = False
    return tuple(p for p in PHASES if not (p == "dns" and literal) and not (p == "tls" and parts.scheme != "https"))


HTTP = register(ProbeType("http", FIELDS, build, PHASES, applicable, HttpProbe))

__all__ = ["HTTP", "HttpOptions", "HttpProbe", "JsonAssertion", "TLSOptions", "json_lookup"]
