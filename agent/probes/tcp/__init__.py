"""The `tcp` probe type: a TCP connection, optionally TLS with the certificate's expiry, optionally one
line sent and the first line back matched. Useful for a vendor's SMTP or other ports, and as a control
check (the default gateway, the local resolver's port)."""
from __future__ import annotations

from ..base import ProbeType, register
from .probe import PHASES, TcpProbe
from .spec import FIELDS, TcpOptions, build


def applicable(o: TcpOptions) -> tuple[str, ...]:
    """No dns phase for an IP literal, no tls phase without TLS, no response phase without an exchange."""
    skip = {"dns"} if o.literal else set()
    if o.tls is None:
        skip.add("tls")
    if o.send is None and o.expect is None:
        skip.add("response")
    return tuple(p for p in PHASES if p not in skip)


TCP = register(ProbeType("tcp", FIELDS, build, PHASES, applicable, TcpProbe))

__all__ = ["TCP", "TcpOptions", "TcpProbe"]
