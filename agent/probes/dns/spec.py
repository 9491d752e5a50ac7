"""The options of a `dns` target: the name asked and the record type, the server asked (a named one, or
the system's resolver), and what the answer must be (its rcode, how many records, patterns they match)."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import dns.exception
import dns.name
import dns.reversename
import yaml

from ...schema import MISSING, Field, Reader, Regex, Section, choice, integer, join, list_of, regex

RECORDS = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "PTR", "CAA")
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET",
          "NOTAUTH", "NOTZONE")
DNS_PORT = 53
_SERVER = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([0-9.]+)(?::(\d{1,5}))?|([0-9A-Fa-f:.]+)")


@dataclass(frozen=True)
class DnsOptions:
    TYPE: ClassVar[str] = "dns"

    query: str  # absolute, as asked: "api.example.com."
    record: str = "A"
    server: tuple[str, int] | None = None  # None: the system's resolver (/etc/resolv.conf)
    transport: str = "udp"  # udp (truncated answers asked again over tcp) | tcp
    expect_rcode: tuple[str, ...] = ("NOERROR",)
    expect_answers: tuple[Regex, ...] = ()
    min_answers: int = 1

    @property
    def address(self) -> str:
        """RFC 4501's DNS URI: dns://192.0.2.53/api.example.com?type=A, or dns:api.example.com?type=A
        when the system's resolver is asked."""
        name = self.query.rstrip(".") or "."
        if self.server is None:
            return f"dns:{name}?type={self.record}"
        host, port = self.server
        host = f"[{host}]" if ":" in host else host
        return f"dns://{host}{'' if port == DNS_PORT else f':{port}'}/{name}?type={self.record}"


def split_server(value: str) -> tuple[str, int] | None:
    """192.0.2.53, 192.0.2.53:5353, 2001:db8::53 or [2001:db8::53]:5353 as (ip, port); None if neither."""
    m = _SERVER.fullmatch(value.strip())
    if not m:
        return None
    host = m.group(1) or m.group(3) or m.group(5)
    port = int(m.group(2) or m.group(4) or DNS_PORT)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if (ip.version == 6) != (m.group(3) is None) or not 0 < port < 65536:
        return None
    return str(ip), port


def _server(r: Reader, node: yaml.Node, path: str) -> Any:
    value = r.string(node, path, env=True)
    if value is MISSING:
        return MISSING
    parsed = split_server(value)
    if parsed is None:
        return r.reject(node, path, f"must be an IP address with an optional port, such as 192.0.2.53, "
                                    f"192.0.2.53:5353 or [2001:db8::53]:5353, got {value!r}")
    return parsed


def _query(r: Reader, node: yaml.Node, path: str) -> Any:
    value = r.string(node, path, env=True)
    if value is MISSING:
        return MISSING
    if any(c.isspace() for c in value.strip()):
        return r.reject(node, path, f"is not a valid DNS name (it holds a space), got {value!r}")
    try:
        return dns.name.from_text(value.strip()).to_text()
    except dns.exception.DNSException as exc:
        return r.reject(node, path, f"is not a valid DNS name ({exc}), got {value!r}")


FIELDS = (
    Field("query", _query, required=True),
    Field("record", choice(*RECORDS)),
    Field("server", _server),
    Field("transport", choice("udp", "tcp")),
    Field("expect_rcode", list_of(choice(*RCODES), non_empty="must name at least one rcode")),
    Field("expect_answers", list_of(regex())),
    Field("min_answers", integer(0, 10_000)),
)


def build(r: Reader, s: Section, path: str) -> DnsOptions | None:
    if not s.ok or "query" not in s.values:
        return None
    kw = dict(s.values)
    rcodes = kw.setdefault("expect_rcode", DnsOptions.expect_rcode)
    # Only a NOERROR answer holds records: an absent name (NXDOMAIN) is checked by its rcode alone.
    kw.setdefault("min_answers", 1 if rcodes == ("NOERROR",) else 0)
    if (kw["min_answers"] or kw.get("expect_answers")) and "NOERROR" not in rcodes:
        key = "expect_answers" if kw.get("expect_answers") else "min_answers"
        r.error(s.node_of(key), join(path, key), "checks the records of a NOERROR answer: add NOERROR to "
                                                 "expect_rcode, or drop it")
        return None
    if kw.get("record") == "PTR":
        kw["query"] = _reverse(kw["query"])
    return DnsOptions(**kw)


def _reverse(query: str) -> str:
    """A PTR target may name the address itself (192.0.2.10): asked as 10.2.0.192.in-addr.arpa."""
    try:
        return dns.reversename.from_address(query.rstrip(".")).to_text()
    except (ValueError, dns.exception.SyntaxError):
        return query
