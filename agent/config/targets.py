"""`targets:` and `controls:`: the options every target has, then its probe type's own fields.

Rules that need the whole config (a timeout above the latency bounds of the target's service, enough
slots in flight for the timeout, unique names) run after every target and the contract's table are read.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from ..probes import CONTROL_SERVICE, PROBE_TYPES, ProbeType, Target
from ..schema import (MISSING, Field, Reader, Section, child, choice, duration, integer, read_fields, string)
from .model import Contract

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS = {"service", "target", "outcome", "phase", "le", "quantile", "window", "threshold", "objective",
                   "priority", "instance", "job", "location", "url", "type", "control"}  # the last: sla_target_info's


def _labels(r: Reader, node: yaml.Node, path: str) -> Any:
    pairs = r.pairs(node, path, "label name to value")
    if pairs is None:
        return MISSING
    labels = []
    for knode, vnode in pairs:
        name, lp = str(knode.value), f"{path}.{knode.value}"
        if not _LABEL.match(name) or name.startswith("__"):
            value = r.reject(knode, lp, "is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        elif name in RESERVED_LABELS:
            value = r.reject(knode, lp, f"is reserved; the agent sets it itself (reserved: "
                                        f"{', '.join(sorted(RESERVED_LABELS))})")
        else:
            value = r.string(vnode, lp, allow_empty=True)
        labels.append((name, value))
    return MISSING if any(v is MISSING for _, v in labels) else tuple(sorted(labels))


def _name_rule(suffix: str):
    return lambda v: None if _NAME.match(v) else \
        f"must start with a letter and hold only letters, digits, '.', '_' or '-'{suffix}"


NAME = Field("name", string(), required=True, check=_name_rule(" (at most 63)"))
SERVICE = Field("service", string(), required=True,
                check=lambda v: _name_rule("")(v) or (f"must not start with '_': {CONTROL_SERVICE} and names like it are the "
                                                       "agent's own (control checks go under controls:)"
                                                       if v.startswith("_") else None))
TIMING = (
    Field("timeout", duration(minimum=0.01, maximum=300)),
    Field("interval", duration(minimum=0.05, maximum=86400)),
    Field("max_in_flight", integer(1, 1000)),
    Field("labels", _labels),
)


def all_target_keys() -> set[str]:
    """Every key a target of any type may have."""
    return {f.key for f in (NAME, SERVICE) + TIMING} | {"type"} | {f.key for t in PROBE_TYPES.values() for f in t.fields}


@dataclass
class ReadTarget:
    """One entry as read: the target (None when something in it is wrong) and what the later rules need."""

    target: Target | None
    common: Section
    path: str
    ptype: ProbeType | None


def read_targets(r: Reader, node: yaml.Node | None, key: str) -> list[ReadTarget]:
    control = key == "controls"
    return [_target(r, item, f"{key}[{i}]", control) for i, item in enumerate(r.seq(node, key))] \
        if node is not None else []


def _target(r: Reader, node: yaml.Node, path: str, control: bool) -> ReadTarget:
    ptype = _type(r, node, path)
    head = (NAME,) if control else (NAME, SERVICE)
    own = ptype.fields if ptype else ()
    allowed = {f.key for f in head + TIMING + own} | {"type"}
    if ptype is None:  # the type's error is said; its fields are not judged
        allowed |= {f.key for t in PROBE_TYPES.values() for f in t.fields}
    nodes = r.mapping(node, path, allowed)
    common = read_fields(r, nodes, node, path, head + own + TIMING)
    if ptype is not None:
        common.values.setdefault("interval", ptype.default_interval)
    if control:
        common.values["service"] = CONTROL_SERVICE
    type_values = {f.name: common.values.pop(f.name) for f in own if f.name in common.values}
    if ptype is None or not isinstance(node, yaml.MappingNode):
        return ReadTarget(None, common, path, ptype)
    options = ptype.build(r, Section(type_values, nodes, common.ok, node), path)
    if options is not None and "max_in_flight" not in nodes:  # enough slots for the longest run
        longest = ptype.longest(options, common.values.get("timeout", Target.timeout))
        common.values["max_in_flight"] = slots_for(longest, common.values["interval"])
    target = Target(options=options, control=control, **common.values) \
        if options is not None and common.ok and "name" in common.values else None
    return ReadTarget(target, common, path, ptype)


def _type(r: Reader, node: yaml.Node, path: str) -> ProbeType | None:
    tnode = child(node, "type")
    if tnode is None:
        return PROBE_TYPES["http"]
    name = choice(*PROBE_TYPES)(r, tnode, f"{path}.type")
    return None if name is MISSING else PROBE_TYPES[name]


def check_timing(r: Reader, contract: Contract, items: list[ReadTarget]) -> None:
    """A timeout is a request slower than every latency bound of the service, so it must lie above
    them; a tick must find a free slot when the previous probes run to their timeout."""
    for it in items:
        s, path = it.common, it.path
        timeout = s.values.get("timeout", Target.timeout)
        interval = s.values.get("interval", it.ptype.default_interval if it.ptype else Target.interval)
        bounds = contract.latency_bounds(s.values.get("service", ""))
        top = max((b.below for b in bounds), default=0.0)
        if bounds and timeout <= top:
            r.error(s.node_of("timeout"), f"{path}.timeout", f"must be greater than the {top:g}s latency threshold "
                                                              f"(a timeout counts as a request slower than every threshold)")
        elif it.ptype is not None and interval < it.ptype.min_interval:
            r.error(s.node_of("interval"), f"{path}.interval",
                    f"must be at least {it.ptype.min_interval:g}s for {it.ptype.name} targets")
        else:
            _check_slots(r, it, interval, timeout)


def slots_for(longest: float, interval: float) -> int:
    """Probes of a target that never answers overlap at a tick: the ones started in the last `longest`
    seconds, and the timeout fires a little after `longest`: one more than longest / interval (5 s every
    1 s needs 6). One slot fewer skips a tick of a hanging target each round, dropping a slow request."""
    return math.floor(round(longest / interval, 6)) + 1


def _check_slots(r: Reader, it: ReadTarget, interval: float, timeout: float) -> None:
    """Probes still running at a tick make it `skipped` (inconclusive): only a slow vendor causes that, so
    interval x max_in_flight must cover the longest a probe can run. Left out, max_in_flight is sized so."""
    s, path = it.common, it.path
    if "max_in_flight" not in s.nodes or not all(k in s.values for k in ("interval", "timeout", "max_in_flight")):
        return  # sized to fit by default; or an error is already said
    in_flight = s.values["max_in_flight"]
    longest = it.ptype.longest(it.target.options, timeout) if it.ptype and it.target else timeout
    need = slots_for(longest, interval)
    if in_flight >= need:
        return
    if longest > timeout:
        r.error(s.node_of("interval"), f"{path}.interval",
                f"{interval:g}s x max_in_flight {in_flight} leaves no free slot when a run of the "
                f"{round(longest / timeout)} steps takes its {longest:g}s (each step has the {timeout:g}s timeout); "
                f"raise interval, lower timeout, or set max_in_flight >= {need}")
    else:
        r.error(s.node_of("interval"), f"{path}.interval",
                f"{interval:g}s x max_in_flight {in_flight} leaves no free slot when probes run to the "
                f"{timeout:g}s timeout: a tick would be skipped; leave max_in_flight out (it is sized to "
                f"fit), raise interval, lower timeout, or set max_in_flight >= {need}")


def check_unique_names(r: Reader, items: list[ReadTarget]) -> None:
    """Names are unique across targets and controls: they become the `target` label."""
    seen: dict[str, str] = {}
    for it in items:
        name_node = it.common.nodes.get("name")
        if not isinstance(name_node, yaml.ScalarNode):
            continue
        if name_node.value in seen:
            r.error(name_node, f"{it.path}.name",
                    f"duplicate target name {name_node.value!r} (first used at {seen[name_node.value]})")
        else:
            seen[name_node.value] = it.path
