"""The options of an `icmp` target: the host to ping, how many echo requests one probe sends and how far
apart, and the share of them that may be lost before the probe is down."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

from ...schema import MISSING, Field, Reader, Section, choice, duration, integer, string
from ...timeutil import parse_duration
from ..addresses import HOST_NAME, is_ip
from ..base import Target


@dataclass(frozen=True)
class IcmpOptions:
    TYPE: ClassVar[str] = "icmp"

    host: str
    packets: int = 3
    spacing: float = 0.2
    max_loss: float | None = None  # None: down only when every echo is lost
    ip_family: str = "any"  # any | ipv4 | ipv6

    @property
    def address(self) -> str:
        return f"icmp://[{self.host}]" if ":" in self.host else f"icmp://{self.host}"

    @property
    def literal(self) -> bool:
        return is_ip(self.host)


def _host(value: str) -> str | None:
    return None if is_ip(value) or HOST_NAME.fullmatch(value) else \
        f"must be a host name or an IP address such as api.example.com, 192.0.2.1 or 2001:db8::1, got {value!r}"


def _share(r: Reader, node: yaml.Node, path: str) -> Any:
    value = r.scalar(node, path)
    if value is MISSING:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value < 1:
        return r.reject(node, path, f"must be a share at least 0 and below 1 (0.5: down when more than half of "
                                    f"the echoes are lost), got {value!r}")
    return float(value)


FIELDS = (
    Field("host", string(env=True), required=True, check=_host),
    Field("packets", integer(1, 20)),
    Field("spacing", duration(minimum=0.01, maximum=10)),
    Field("max_loss", _share),
    Field("ip_family", choice("any", "ipv4", "ipv6")),
)


def _timeout(s: Section) -> float | None:
    """The target's timeout as written (the common fields' reader judges and reports it), or its default."""
    node = s.nodes.get("timeout")
    if node is None:
        return Target.timeout
    try:
        return parse_duration(str(node.value))
    except (ValueError, AttributeError):
        return None


def build(r: Reader, s: Section, path: str) -> IcmpOptions | None:
    if not s.ok or "host" not in s.values:
        return None
    o = IcmpOptions(**s.values)
    timeout = _timeout(s)
    # the last echo is sent (packets - 1) spacings after the first and needs time to come back
    if timeout is not None and round(o.packets * o.spacing, 6) > timeout:
        r.error(s.node_of("spacing" if "spacing" in s.nodes else "packets"), f"{path}.spacing",
                f"{o.packets} packets x {o.spacing:g}s spacing = {round(o.packets * o.spacing, 6):g}s does not fit in the "
                f"{timeout:g}s timeout; lower packets or spacing, or raise timeout")
        return None
    return o
