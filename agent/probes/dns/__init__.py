"""The `dns` probe type: one question to a named DNS server or to the system's resolver, its answer's rcode
and records checked. Useful for a vendor's authoritative servers, and as a control check (the local
resolver answering)."""
from __future__ import annotations

from ..base import ProbeType, register
from .probe import PHASES, DnsProbe
from .spec import FIELDS, DnsOptions, build


def applicable(o: DnsOptions) -> tuple[str, ...]:
    return PHASES


DNS = register(ProbeType("dns", FIELDS, build, PHASES, applicable, DnsProbe))

__all__ = ["DNS", "DnsOptions", "DnsProbe"]
