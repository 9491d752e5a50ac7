"""The paths traced during a failure episode (paths/capture.py wrote them into the journal), as the report
shows them: per location and target, the episode's first trace, its hops with the owner the user's table
(`evidence.path.owners`) gives each address, and where it stopped. Owners are looked up here, from the
config, never over the network; the journal keeps addresses only.

A ledger can come from anywhere (a bundle): what a path.json holds is read for what it is, field by field,
and what is not of the expected shape is left out."""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Sequence

from ..calendar import iso
from ..config.model import PathOwner
from ..store import Store

SLACK = 60.0  # a trace starts once its failed probe has ended: up to a timeout after the episode's last minute
MAX_HOPS = 64
MAX_TEXT = 300  # an address, a reply, a name, the summary: the agent writes tens of characters
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")  # a value is shown on one line of a report


def episode_paths(stores: Sequence[Store], targets: list[str], start: float, end: float,
                  owners: Sequence[PathOwner], tz: Any) -> list[dict[str, Any]]:
    """Per (location, target): the first path traced in [start, end + SLACK) that reads, and how many were."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for store in stores:
        for rec in store.journal_paths(targets, start, end + SLACK):
            key = (rec["location"], rec["target"])
            if key in first:  # the same location in two ledgers
                first[key]["traces"] += rec["traces"]
            elif rec["path"] is not None:
                first[key] = _entry(rec, rec["path"], owners, tz)
    return [first[k] for k in sorted(first)]


def _entry(rec: dict[str, Any], doc: dict[str, Any], owners: Sequence[PathOwner], tz: Any) -> dict[str, Any]:
    trace = doc.get("path") if isinstance(doc.get("path"), dict) else {}
    hops = [_hop(h, owners) for h in _list(trace.get("hops"))[:MAX_HOPS] if isinstance(h, dict)]
    stopped = _number(trace.get("stopped_at"))
    dns = doc.get("dns") if isinstance(doc.get("dns"), dict) else {}
    return {"location": rec["location"], "target": rec["target"], "at": iso(rec["at"], tz), "record": rec["id"],
            "summary": _text(rec["error"]), "address": _text(trace.get("address")) or _text(rec["address"]),
            "reached": trace.get("reached") is True, "stopped_at": stopped,
            "stop_owner": next((h["owner"] for h in hops if h["hop"] == stopped), None),
            "dns": {"name": _text(dns.get("name")), "addresses": [_text(a) for a in _list(dns.get("addresses"))[:16]],
                    "error": _text(dns.get("error"))},
            "hops": hops, "traces": rec["traces"]}


def _hop(h: dict[str, Any], owners: Sequence[PathOwner]) -> dict[str, Any]:
    address = _text(h.get("address"))
    return {"hop": _number(h.get("hop")), "address": address or None, "reply": _text(h.get("reply")) or None,
            "rtt_ms": [r for r in (_ms(x) for x in _list(h.get("rtt_ms"))[:8]) if r is not None],
            "owner": owner_of(address, owners) if address else None}


# A path.json is read for what it is: a value of another type than the agent writes is none (a JSON report
# has no NaN, a hop number is no string, a list is no mapping), a text is one line and short.
def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _text(v: Any) -> str:
    return _BREAKS.sub(" ", v)[:MAX_TEXT] if isinstance(v, str) else ""


def _number(v: Any) -> int | None:
    return v if type(v) is int and 0 <= v <= 1000 else None


def _ms(v: Any) -> float | None:
    if type(v) not in (int, float) or not -1e9 < v < 1e9:  # NaN compares false: left out with the rest
        return None
    return float(v)


def owner_of(address: str, owners: Sequence[PathOwner]) -> str | None:
    """The owner of the most specific network in the user's table that holds the address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    best: tuple[int, str] | None = None
    for o in owners:
        net = ipaddress.ip_network(o.network, strict=False)
        if ip.version == net.version and ip in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, o.owner)
    return best[1] if best else None
