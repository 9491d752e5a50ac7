"""The `icmp` probe type: echo requests to a host, with the share lost and their round-trip time. Useful
for a vendor's gateway or a host with no service to ask, and as a control check (the default gateway)."""
from __future__ import annotations

from ..base import ProbeType, register
from .probe import PHASES, IcmpProbe
from .spec import FIELDS, IcmpOptions, build

ICMP = register(ProbeType("icmp", FIELDS, build, PHASES, lambda o: PHASES, IcmpProbe))

__all__ = ["ICMP", "IcmpOptions", "IcmpProbe"]
