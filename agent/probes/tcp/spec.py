"""The options of a `tcp` target: where to connect, with or without TLS, and an optional exchange of one
line (send, then expect a first line that matches)."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

from ...schema import MISSING, Field, Reader, Regex, Section, choice, regex, string
from ..addresses import HOST_NAME, is_ip
from ..tls import TLSOptions, read_tls

_ADDRESS = re.compile(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9_.-]+):(\d{1,5})")


@dataclass(frozen=True)
class TcpOptions:
    TYPE: ClassVar[str] = "tcp"

    host: str
    port: int
    tls: TLSOptions | None = None  # None: plain TCP
    send: str | None = None
    expect: Regex | None = None
    ip_family: str = "any"  # any | ipv4 | ipv6

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls' if self.tls else 'tcp'}://{host}:{self.port}"

    @property
    def literal(self) -> bool:
        return is_ip(self.host)


def split_address(value: str) -> tuple[str, int] | None:
    m = _ADDRESS.fullmatch(value.strip())
    if not m:
        return None
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if m.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif not HOST_NAME.fullmatch(host):
        return None
    return (host, int(port)) if 0 < int(port) < 65536 else None


def _address(r: Reader, node: yaml.Node, path: str) -> Any:
    value = r.string(node, path, env=True)
    if value is MISSING:
        return MISSING
    parsed = split_address(value)
    if parsed is None:
        return r.reject(node, path, f"must be host:port such as smtp.example.com:25 or [2001:db8::1]:443, "
                                    f"got {value!r}")
    return parsed


def _tls(r: Reader, node: yaml.Node, path: str) -> Any:
    """`tls: true` (defaults), `tls: false`, or the TLS options as a mapping."""
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
        return TLSOptions() if r.boolean(node, path) else None
    return read_tls(r, node, path)


FIELDS = (
    Field("address", _address, required=True),
    Field("tls", _tls),
    Field("send", string(env=True)),
    Field("expect", regex()),
    Field("ip_family", choice("any", "ipv4", "ipv6")),
)


def build(r: Reader, s: Section, path: str) -> TcpOptions | None:
    if not s.ok or "address" not in s.values:
        return None
    kw = dict(s.values)
    host, port = kw.pop("address")
    return TcpOptions(host, port, **kw)
