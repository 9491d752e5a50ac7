"""The `contract:` section: time zone, maintenance and exclusion windows, the annexe's shorthand
(availability, latency, tickets), service policies and business hours. The table of objectives is read
later (config/objectives.py), once the targets' services are known."""
from __future__ import annotations

import datetime as dt
from typing import Any

import yaml

from ..schema import (MISSING, Field, Reader, Section, choice, clock_time, converted, duration, integer, list_of,
                      one_of, ratio, read_fields, section, string)
from ..timeutil import parse_timezone
from .model import DAYS, PRIORITIES, Contract, LatencyBound, OnceWindow, ServicePolicy, WeeklyWindow

TICKET_COLUMNS = ("id", "priority", "opened_at", "responded_at", "workaround_at", "resolved_at", "closed_at")
DEFAULT_TZ = "+01:00"


def _timezone_problem(name: str) -> str | None:
    try:
        parse_timezone(name)
    except ValueError as exc:
        return str(exc)
    return None


def _weekly(r: Reader, node: yaml.Node, path: str) -> Any:
    def rule(r: Reader, s: Section, path: str) -> bool:
        if s.values["start"] == s.values["end"]:
            r.error(s.nodes["end"], f"{path}.end", "must differ from start (a window of zero length)")
            return False
        return True

    fields = (Field("day", converted(choice(*DAYS), DAYS.index), required=True),
              Field("start", clock_time(), required=True), Field("end", clock_time(), required=True),
              Field("reason", string()))
    return section(fields, WeeklyWindow, rule)(r, node, path)


def _once(tz: dt.tzinfo, kind: str):
    def instant(r: Reader, n: yaml.Node, p: str) -> Any:
        return r.instant(n, p, tz)

    def rule(r: Reader, s: Section, path: str) -> bool:
        if s.values["end"] <= s.values["start"]:
            r.error(s.nodes["end"], f"{path}.end", "must be later than start")
            return False
        return True

    def read(r: Reader, node: yaml.Node, path: str) -> Any:
        nodes = r.mapping(node, path, {"start", "end", "reason"})
        missing = [k for k in ("start", "end", "reason") if k not in nodes] if isinstance(node, yaml.MappingNode) else []
        for key in missing:
            r.error(node, f"{path}.{key}", "is required" + (" (say why the window is excluded)" if key == "reason" else ""))
        s = read_fields(r, nodes, node, path, (Field("start", instant), Field("end", instant), Field("reason", string())))
        if missing or not s.ok or not rule(r, s, path):
            return MISSING
        return OnceWindow(kind=kind, **s.values)

    return read


def _date(r: Reader, node: yaml.Node, path: str) -> Any:
    v = r.scalar(node, path)
    if v is MISSING or (isinstance(v, dt.date) and not isinstance(v, dt.datetime)):
        return v
    if isinstance(v, str):  # quoted: YAML left it a string, the same date all the same
        try:
            return dt.date.fromisoformat(v.strip())
        except ValueError:
            pass
    return r.reject(node, path, f"must be a date YYYY-MM-DD, got {v!r}")


def _country(r: Reader, node: yaml.Node, path: str) -> Any:
    import holidays

    country = r.string(node, path)
    if country is MISSING or country.upper() in holidays.list_supported_countries():
        return country if country is MISSING else country.upper()
    return r.reject(node, path, f"no public-holiday calendar for {country!r}; use an ISO 3166 code such as FR, BE, DE")


def _policies(r: Reader, node: yaml.Node, path: str) -> Any:
    pairs = r.pairs(node, path, "service name to {combine: any|all|majority}")
    if pairs is None:
        return MISSING
    read = section((Field("combine", choice("any", "all", "majority")),), ServicePolicy)
    out = [(str(k.value), read(r, v, f"{path}.{k.value}")) for k, v in pairs]
    return MISSING if any(p is MISSING for _, p in out) else tuple(out)


def _hours_rule(r: Reader, s: Section, path: str) -> bool:
    start = s.values.get("business_start", Contract.business_start)
    end = s.values.get("business_end", Contract.business_end)
    if end <= start:
        r.error(s.node, f"{path}.end", "must be later than start")
        return False
    return _subdivision_known(r, s, path)


def _subdivision_known(r: Reader, s: Section, path: str) -> bool:
    """A subdivision the holiday calendar does not know failed only when a ticket was evaluated."""
    import holidays

    sub = s.values.get("holidays_subdivision")
    known = holidays.list_supported_countries().get(s.values.get("holidays_country", Contract.holidays_country), [])
    if sub is None or sub in known:
        return True
    r.error(s.node_of("subdivision"), f"{path}.subdivision", f"{sub!r} is not a subdivision of "
            f"{s.values.get('holidays_country', Contract.holidays_country)}'s holiday calendar; valid: "
            f"{', '.join(known) or 'none'}")
    return False


def _deadlines(values: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted({**dict(Contract.ticket_deadlines), **values}.items()))


BOUND = section((Field("below", duration(maximum=600), required=True), Field("ratio", ratio(), required=True)),
                LatencyBound)


def sorted_bounds(read):
    return converted(read, lambda bounds: tuple(sorted(bounds, key=lambda b: b.below)))


def _fields(tz: dt.tzinfo) -> tuple[Field, ...]:
    return (
        Field("maintenance", list_of(one_of({"weekly": _weekly, "once": _once(tz, "maintenance")}))),
        Field("exclusions", list_of(_once(tz, "exclusion"))),
        Field("availability", section((Field("objective", ratio(), dest="availability_objective"),), dict)),
        Field("coverage_floor", ratio()),
        Field("slice_down_ratio", ratio()),
        Field("latency", section((
            Field("services", list_of(string()), dest="latency_services"),
            Field("period", choice("iso_week", "month_start")),
            Field("objectives", sorted_bounds(list_of(BOUND, non_empty="must hold at least one objective")),
                  dest="latency_objectives"),
        ), dict)),
        Field("services", _policies),
        Field("business_hours", section((
            Field("start", clock_time(), dest="business_start"),
            Field("end", clock_time(), dest="business_end"),
            Field("timezone", string(), dest="business_timezone", check=_timezone_problem),
            Field("country", _country, dest="holidays_country"),
            Field("subdivision", string(), dest="holidays_subdivision"),
            Field("closed_days", list_of(_date)),
        ), dict, _hours_rule)),
        Field("tickets", section((
            Field("deadlines", converted(section(tuple(Field(p, duration(minimum=60)) for p in PRIORITIES), dict),
                                         _deadlines), dest="ticket_deadlines"),
            Field("objective", ratio(), dest="ticket_objective"),
            Field("columns", converted(section(tuple(Field(c, string()) for c in TICKET_COLUMNS), dict),
                                       lambda d: tuple(d.items())), dest="ticket_columns"),
        ), dict)),
        Field("locations", section((
            Field("min_agree", integer(1, 100)),
            Field("latency_locations", choice("best", "pooled", "each")),
        ), dict)),
    )


KEYS = {"timezone", "maintenance", "exclusions", "availability", "latency", "services", "coverage_floor",
        "slice_down_ratio", "business_hours", "tickets", "objectives", "locations"}


def read_contract(r: Reader, node: yaml.Node | None) -> tuple[dict[str, Any], dict[str, yaml.Node]]:
    """The Contract's keyword values (all but the objectives) and the section's nodes by key."""
    if node is None:
        return {}, {}
    nodes = r.mapping(node, "contract", KEYS)
    head = read_fields(r, nodes, node, "contract", (Field("timezone", string(), check=_timezone_problem),))
    tz = parse_timezone(head.values.get("timezone", DEFAULT_TZ))
    s = read_fields(r, nodes, node, "contract", _fields(tz))
    kw = {**head.values, **s.values}
    for key in ("availability", "latency", "business_hours", "tickets", "locations"):
        kw.update(kw.pop(key, {}))
    if "maintenance" in kw:
        items = kw.pop("maintenance")
        kw["weekly"] = tuple(w for k, w in items if k == "weekly")
        kw["windows"] = tuple(w for k, w in items if k == "once")
    if "exclusions" in kw:
        kw["windows"] = kw.get("windows", ()) + kw.pop("exclusions")
    return kw, nodes
