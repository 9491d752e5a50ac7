"""`contract.objectives`: the contract's table, one entry per report row.

    objectives:
      - availability: {service: web, objective: 0.99, title: "Web interface"}
      - latency: {service: api, bounds: [{below: 500ms, ratio: 0.98}, {below: 1s, ratio: 0.99}]}
      - ticket_response: {priority: P1, deadline: 8h, objective: 0.95}

Without the key, the table is the annexe's, built from the shorthand (`availability.objective`,
`latency.services` and `.objectives`, `tickets.deadlines` and `.objective`) for the configured services.
Fields an entry leaves out take the shorthand's value; rows are numbered in order unless `row:` says.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from ..schema import MISSING, Field, Reader, choice, duration, integer, list_of, one_of, ratio, section, string
from .contract import BOUND, sorted_bounds
from .model import (PRIORITIES, AvailabilitySpec, Contract, LatencySpec, ObjectiveSpec, TicketResponseSpec,
                    default_table, numbered)

_COMMON = (Field("row", integer(1, 999)), Field("title", string()))

READERS = {
    "availability": section((Field("service", string(), required=True), Field("objective", ratio())) + _COMMON,
                            dict),
    "latency": section((Field("service", string(), required=True),
                        Field("bounds", sorted_bounds(list_of(BOUND, non_empty="must hold at least one bound")))) +
                       _COMMON, dict),
    "ticket_response": section((Field("priority", choice(*PRIORITIES), required=True),
                                Field("deadline", duration(minimum=60), dest="deadline_s"),
                                Field("objective", ratio())) + _COMMON, dict),
}


def _spec(c: Contract, kind: str, kw: dict[str, Any]) -> ObjectiveSpec:
    """An entry's spec, the shorthand filling what it leaves out."""
    if kind == "availability":
        return AvailabilitySpec(**{"objective": c.availability_objective, **kw})
    if kind == "latency":
        return LatencySpec(**{"bounds": c.latency_objectives, **kw})
    deadline = dict(c.ticket_deadlines)[kw["priority"]]
    return TicketResponseSpec(**{"deadline_s": deadline, "objective": c.ticket_objective, **kw})


def _subject(s: ObjectiveSpec) -> str:
    return f"{s.kind} of {s.priority if isinstance(s, TicketResponseSpec) else s.service}"


def resolve(r: Reader, c: Contract, nodes: dict[str, yaml.Node], services: tuple[str, ...]) -> tuple[ObjectiveSpec, ...]:
    """The table: the explicit entries, checked against the services and each other, or the annexe's."""
    node = nodes.get("objectives")
    if node is None:
        return default_table(c, services)
    if "services" in _child_keys(nodes.get("latency")):
        r.error(nodes["latency"], "contract.latency.services", "is not used when contract.objectives lists the "
                "rows: add a `latency` entry there instead")
    items = list_of(one_of(READERS), non_empty="must hold at least one objective")(r, node, "contract.objectives")
    if items is MISSING:
        return ()
    specs: list[ObjectiveSpec] = []
    seen_rows: dict[int, str] = {}
    seen: dict[str, str] = {}
    for i, ((kind, kw), item) in enumerate(zip(items, node.value)):
        path = f"contract.objectives[{i}].{kind}"
        spec = _spec(c, kind, kw)
        if not isinstance(spec, TicketResponseSpec) and spec.service not in services:
            r.error(item, f"{path}.service", f"no target has service {spec.service!r} (services: "
                                             f"{', '.join(services) or 'none'})")
        row = spec.row or i + 1
        for key, table, what in ((row, seen_rows, f"row {row}"), (_subject(spec), seen, _subject(spec))):
            if key in table:
                r.error(item, path, f"{what} is already given at {table[key]}")
            table[key] = path
        specs.append(replace(spec, row=row))
    return numbered(specs)


def _child_keys(node: yaml.Node | None) -> set[str]:
    if not isinstance(node, yaml.MappingNode):
        return set()
    return {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
