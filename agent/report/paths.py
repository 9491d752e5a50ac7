"""The paths traced during a failure episode (paths/capture.py wrote them into the journal), as the report
shows them: per location and target, the episode's first trace, its hops with the owner the user's table
(`evidence.path.owners`) gives each address, and where it stopped. Owners are looked up here, from the
config, never over the network; the journal keeps addresses only.

A ledger can come from anywhere (a bundle): what a path.json holds is read for what it is, field by field,
and what is not of the expected shape is left out."""
from __future__ import annotations

import ipaddress
from typing import Any, Sequence

from ..calendar import iso
from ..config.model import PathOwner
from ..store import Store

SLACK = 60.0  # a trace starts once its failed probe has ended: up to a timeout after the episode's last minute
MAX_HOPS = 64


def episode_paths(stores: Sequence[Store], targets: list[str], start: float, end: float,
                  owners: Sequence[PathOwner], tz: Any) -> list[dict[str, Any]]:
    """Per (location, target): the first path traced in [start, end + SLACK), and how many were."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for store in stores:
        for rec in store.journal_paths(targets, start, end + SLACK):
            doc = rec.get("path")
            if not isinstance(doc, dict):
                continue
            key = (rec["location"], rec["target"])
            if key in first:
                first[key]["traces"] += 1
                continue
            first[key] = _entry(rec, doc, owners, tz)
    return [first[k] for k in sorted(first)]


def _entry(rec: dict[str, Any], doc: dict[str, Any], owners: Sequence[PathOwner], tz: Any) -> dict[str, Any]:
    trace = doc.get("path") if isinstance(doc.get("path"), dict) else {}
    hops = [_hop(h, owners) for h in (trace.get("hops") or [])[:MAX_HOPS] if isinstance(h, dict)]
    stopped = trace.get("stopped_at")
    dns = doc.get("dns") if isinstance(doc.get("dns"), dict) else {}
    return {"location": rec["location"], "target": rec["target"], "at": iso(rec["at"], tz), "record": rec["id"],
            "summary": rec["error"], "address": str(trace.get("address") or rec["address"]),
            "reached": trace.get("reached") is True, "stopped_at": stopped if isinstance(stopped, int) else None,
            "stop_owner": next((h["owner"] for h in hops if h["hop"] == stopped), None),
            "dns": {"name": str(dns.get("name", "")), "addresses": [str(a) for a in dns.get("addresses") or []][:16],
                    "error": str(dns.get("error", ""))},
            "hops": hops, "traces": 1}


def _hop(h: dict[str, Any], owners: Sequence[PathOwner]) -> dict[str, Any]:
    address = h.get("address")
    rtts = h.get("rtt_ms") if isinstance(h.get("rtt_ms"), list) else []
    return {"hop": h.get("hop") if isinstance(h.get("hop"), int) else None,
            "address": str(address) if address else None, "reply": str(h.get("reply") or "") or None,
            "rtt_ms": [float(r) for r in rtts[:8] if isinstance(r, (int, float))],
            "owner": owner_of(str(address), owners) if address else None}


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
