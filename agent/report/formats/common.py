"""What every rendering of the report shares: how verdicts, shares and durations are written."""
from __future__ import annotations

from typing import Any

VERDICT_TEXT = {"met": "MET", "missed": "MISSED", "insufficient_data": "INSUFFICIENT DATA", "no_data": "NO DATA"}
# white text on each reads at 4.5:1 or more (WCAG AA); a ticket's state takes its verdict's colour
VERDICT_COLOUR = {"met": "#1a7f37", "missed": "#cf222e", "insufficient_data": "#9a6700", "no_data": "#6e7781"}
STATE_COLOUR = {"met": VERDICT_COLOUR["met"], "missed": VERDICT_COLOUR["missed"], "pending": VERDICT_COLOUR["insufficient_data"]}


def pct(x: float | None, nd: int = 3) -> str:
    return "-" if x is None else f"{x * 100:.{nd}f} %"


def row_value(r: dict[str, Any]) -> str:
    v = r["value"]
    if isinstance(v, dict):
        return ", ".join(f"{pct(f)} < {t} s" for t, f in v.items())
    return pct(v)


def row_objective(r: dict[str, Any]) -> str:
    o = r["objective"]
    if isinstance(o, dict):
        return ", ".join(f">= {r * 100:g} % < {t} s" for t, r in o.items())
    return f">= {o * 100:g} %"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f} ms"


def kinds(i: dict[str, Any]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in i["error_kinds"].items())


def minutes(i: dict[str, Any]) -> str:
    """An episode's length and how much of it counts: "45 min: 45 down, 0 degraded"."""
    return f"{i['duration_s'] / 60:.0f} min: {i['down_minutes']} down, {i['degraded_minutes']} degraded"


def counted(i: dict[str, Any]) -> str:
    if i["during"]:
        return f"no ({i['during']})"
    if not i["counted_minutes"]:
        return "no (below the slice rule)"
    return f"{i['counted_minutes']} min"


def record(r: dict[str, Any] | None) -> str:
    """A journal record in a few words."""
    if r is None:
        return "-"
    status = f" HTTP {r['status']}" if r.get("status") else ""
    return f"#{r['id']} {r['at'][11:19]} {r['target']} {r['error_kind']}{status}"


def ticket_rows(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    """Every ticket of the report: (priority, ticket, counted this month)."""
    out = []
    for prio, t in doc["tickets"].items():
        out += [(prio, x, True) for x in t["list"]] + [(prio, x, False) for x in t.get("other_months", ())]
    return out


def evidence_line(doc: dict[str, Any]) -> str:
    ev = doc["evidence"]
    chain = ev.get("chain")
    sig = ev.get("signature")
    where = f" from {len(ev['locations'])} locations" if ev.get("locations") else ""
    return (f"sha256 {ev['ledger_sha256']} over {ev['rows_hashed']} stored rows{where} up to {ev.get('cutoff', '-')}"
            + (f"; chain link {chain['seq']} {chain['link'][:16]}..." if chain else "")
            + (f"; signed (ed25519, key {sig['key_sha256'][:16]}...)" if sig else "; not signed"))


def location_rows(doc: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Per location (a report over several): its availability and coverage per service, its worst
    latency fraction per bound, its chain head."""
    loc = doc.get("locations")
    if not loc:
        return []
    out = []
    for name, entry in loc["by_location"].items():
        cells = [f"{s} {pct(a['ratio'])} (coverage {pct(a['coverage'], 1)})" for s, a in entry["availability"].items()]
        for s, periods in entry["latency"].items():
            worst: dict[str, float] = {}
            for p in periods:
                for t, f in p["below"].items():
                    if f is not None:
                        worst[t] = min(worst.get(t, 1.0), f)
            cells.append(f"{s} latency " + (", ".join(f"{pct(f)} < {t} s" for t, f in worst.items()) or "-"))
        chain = (doc["evidence"].get("locations") or {}).get(name, {}).get("chain")
        cells.append(f"chain link {chain['seq']} {chain['link'][:12]}..." if chain else "no chain")
        out.append((name, cells))
    return out


def unconfirmed_line(u: dict[str, Any]) -> str:
    return (f"{u['start']} -> {u['end'][11:]} {u['service']}: {u['minutes']} min seen down only by "
            f"{', '.join(u['locations'])}")


def path_line(p: dict[str, Any]) -> str:
    """Where one traced path went, in a line: "paris api: stopped at hop 2 (10.77.2.2, AS64500: net unreachable)"."""
    who = " ".join(x for x in (p["location"], p["target"]) if x)
    more = f" ({p['traces']} traces, the first shown)" if p["traces"] > 1 else ""
    stop = next((h for h in p["hops"] if h["hop"] == p["stopped_at"]), None)
    if p["reached"]:
        where = f"reached {p['address']} in {len(p['hops'])} hop{'s' if len(p['hops']) > 1 else ''}"
    elif stop is None:
        where = p["summary"]
    else:
        owner = f", {stop['owner']}" if stop["owner"] else ""
        if stop["reply"] in (None, "time_exceeded"):  # silence after it: a drop, or routers that do not answer
            where = f"no answer after hop {stop['hop']} ({stop['address']}{owner}); {p['address']} not reached"
        else:
            where = (f"stopped at hop {stop['hop']} ({stop['address']}{owner}: {stop['reply'].replace('_', ' ')}); "
                     f"{p['address']} not reached")
    return f"{who}: {where}{more}"


def hops_line(p: dict[str, Any]) -> str:
    """The hops of a path: "1 10.77.1.1 0.5 ms, 2 10.77.2.2 (AS64500) net unreachable, 3 *"."""
    out = []
    for h in p["hops"]:
        if not h["address"]:
            out.append(f"{h['hop']} *")
            continue
        owner = f" ({h['owner']})" if h["owner"] else ""
        rtt = f" {min(h['rtt_ms']):.1f} ms" if h["rtt_ms"] else ""
        said = f" {h['reply'].replace('_', ' ')}" if h["reply"] not in (None, "time_exceeded") else ""
        out.append(f"{h['hop']} {h['address']}{owner}{rtt}{said}")
    return ", ".join(out)


# The pages' icon: a check mark on the verdict's green, inline so that a report read from a file or a bundle
# shows it too, and nothing is asked of another host.
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" '
           'fill="#1a7f37"/><path d="M8 17l5 5 11-12" fill="none" stroke="#fff" stroke-width="4" '
           'stroke-linecap="round" stroke-linejoin="round"/></svg>')
FAVICON_LINK = ('<link rel="icon" type="image/svg+xml" href="data:image/svg+xml,'
                + FAVICON.replace('"', "'").replace("#", "%23").replace("<", "%3C").replace(">", "%3E").replace(":", "%3A")
                + '">')


def period_notes(p: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    """What a reader must know of a 7-day period beyond its figures: judged on part of its days, or on
    days a demo simulated."""
    notes = []
    if not p["complete"]:
        notes.append("in progress" if not doc["complete"] else "its days in this month; in full in next month's report")
    if p.get("simulated"):
        notes.append(f"holds the SIMULATED days of {', '.join(p['simulated'])}: they were not measured")
    return notes


def noted_periods(doc: dict[str, Any]) -> list[str]:
    """One line per period with notes: "2026-11-30 to 2026-12-07 api: in progress; holds the SIMULATED ..."."""
    return [f"{p['start'][:10]} to {p['end'][:10]} {p['service']}: {'; '.join(notes)}"
            for p in doc["periods"] if (notes := period_notes(p, doc))]
