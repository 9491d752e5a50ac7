"""Strict YAML -> Config. Unknown keys are errors; every error names its line and field path.

All errors of a file are collected and reported at once, as `FILE:LINE: field.path: message`.
"""
from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import yaml

from ..timeutil import parse_duration, parse_instant, parse_timezone
from .model import (
    DAYS,
    AgentSettings,
    Config,
    Contract,
    JsonAssertion,
    LatencyObjective,
    OnceWindow,
    ServicePolicy,
    Target,
    TLSOptions,
    WeeklyWindow,
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_HEADER = re.compile(r"auth|token|key|secret|cookie|session|password", re.I)
RESERVED_LABELS = {"service", "target", "outcome", "phase", "le", "quantile", "window", "threshold", "objective",
                   "priority", "instance", "job", "location"}


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class ConfigError(Exception):
    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


_MISSING = object()
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster, same nodes and line marks


class _Reader:
    """Walks a composed YAML node tree, converting values and recording errors with their lines."""

    def __init__(self, filename: str, environ: dict[str, str], base_dir: Path) -> None:
        self.file = filename
        self.env = environ
        self.base = base_dir
        self.issues: list[ConfigIssue] = []
        self.secrets: set[str] = set()

    def error(self, node: yaml.Node | None, path: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.issues.append(ConfigIssue(self.file, line, path, message))

    def reject(self, node: yaml.Node | None, path: str, message: str) -> Any:
        """Records the error; the value is missing."""
        self.error(node, path, message)
        return _MISSING

    # -- structure -------------------------------------------------------------------------------
    def mapping(self, node: yaml.Node, path: str, allowed: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.error(node, path, f"must be a mapping, got {_kind(node)}")
            return {}
        out: dict[str, yaml.Node] = {}
        for knode, vnode in node.value:
            key = knode.value if isinstance(knode, yaml.ScalarNode) else None
            kpath = f"{path}.{key}" if path else str(key)
            if key is None:
                self.error(knode, path, "keys must be plain strings")
            elif key in out:
                self.error(knode, kpath, "duplicate key")
            elif key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean `{close[0]}`? " if close else ""
                self.error(knode, kpath, f"unknown key; {hint}valid keys here: {', '.join(sorted(allowed))}")
            else:
                out[key] = vnode
        return out

    def seq(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, path, f"must be a list, got {_kind(node)}")
            return []
        return list(node.value)

    # -- scalars ---------------------------------------------------------------------------------
    def scalar(self, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return self.reject(node, path, f"must be a single value, got {_kind(node)}")
        if node.tag == "tag:yaml.org,2002:str":
            return node.value
        try:
            return yaml.constructor.SafeConstructor().construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            return self.reject(node, path, f"cannot read {node.value!r}: {exc}")

    def string(self, node: yaml.Node, path: str, *, allow_empty: bool = False, env: bool = False) -> Any:
        value = self.scalar(node, path)
        if value is _MISSING:
            return _MISSING
        if not isinstance(value, str):
            return self.reject(node, path, f"must be a string, got {_pytype(value)}")
        if env:
            value = self.expand(node, path, value)
            if value is _MISSING:
                return _MISSING
        if not allow_empty and not value.strip():
            return self.reject(node, path, "must not be empty")
        return value

    def expand(self, node: yaml.Node, path: str, value: str) -> Any:
        missing = [name for name in _ENV.findall(value) if name not in self.env]
        if missing:
            return self.reject(node, path, f"environment variable {missing[0]} is not set")
        if not _ENV.search(value):
            return value
        for name in _ENV.findall(value):
            if self.env[name]:
                self.secrets.add(self.env[name])
        return _ENV.sub(lambda m: self.env[m.group(1)], value)

    def read_secret_file(self, node: yaml.Node, path: str) -> Any:
        name = self.string(node, path)
        if name is _MISSING:
            return _MISSING
        p = Path(name) if os.path.isabs(name) else self.base / name
        try:
            value = p.read_text(encoding="utf-8").strip()
        except OSError as exc:
            return self.reject(node, path, f"cannot read {p}: {exc.strerror or exc}")
        if value:
            self.secrets.add(value)
        return value

    def boolean(self, node: yaml.Node, path: str) -> Any:
        value = self.scalar(node, path)
        if value is _MISSING:
            return _MISSING
        if not isinstance(value, bool):
            return self.reject(node, path, f"must be true or false, got {value!r}")
        return value

    def integer(self, node: yaml.Node, path: str, lo: int, hi: int) -> Any:
        value = self.scalar(node, path)
        if value is _MISSING:
            return _MISSING
        if isinstance(value, bool) or not isinstance(value, int):
            return self.reject(node, path, f"must be a whole number, got {_pytype(value)}")
        if not lo <= value <= hi:
            return self.reject(node, path, f"must be between {lo} and {hi}, got {value}")
        return value

    def ratio(self, node: yaml.Node, path: str) -> Any:
        value = self.scalar(node, path)
        if value is _MISSING:
            return _MISSING
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1 or math.isnan(value):
            return self.reject(node, path, f"must be a ratio above 0 and at most 1 (0.99 for 99 %), got {value!r}")
        return float(value)

    def duration(self, node: yaml.Node, path: str, *, minimum: float = 0.001, maximum: float = 10 * 366 * 86400) -> Any:
        value = self.scalar(node, path)
        if value is _MISSING:
            return _MISSING
        if not isinstance(value, str):
            return self.reject(node, path, f"must be a duration with a unit such as 250ms, 1s, 2m, 1h, got {value!r}")
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            return self.reject(node, path, str(exc))
        if not minimum <= seconds <= maximum:
            return self.reject(node, path, f"must be between {minimum:g}s and {maximum:g}s, got {value}")
        return seconds

    def choice(self, node: yaml.Node, path: str, options: tuple[str, ...]) -> Any:
        value = self.string(node, path)
        if value is _MISSING:
            return _MISSING
        if value not in options:
            return self.reject(node, path, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def clock_time(self, node: yaml.Node, path: str) -> Any:
        value = self.string(node, path)
        if value is _MISSING:
            return _MISSING
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59 or (int(m.group(1)) == 24 and int(m.group(2))):
            return self.reject(node, path, f"must be a time of day HH:MM (00:00 to 24:00), got {value!r}")
        h, mi = int(m.group(1)), int(m.group(2))
        return dt.time(0, 0) if h == 24 else dt.time(h, mi)

    def instant(self, node: yaml.Node, path: str, tz: dt.tzinfo) -> Any:
        value = self.scalar(node, path)
        if value is _MISSING:
            return _MISSING
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=tz)
        if not isinstance(value, str):
            return self.reject(node, path, f"must be an ISO 8601 date-time such as 2026-12-01T22:00:00+01:00, got {value!r}")
        try:
            return parse_instant(value, tz)
        except ValueError:
            return self.reject(node, path, f"must be an ISO 8601 date-time such as 2026-12-01T22:00:00+01:00, got {value!r}")


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}"


def _pytype(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", type(None): "nothing (null)"}.get(
        type(value), type(value).__name__) + ("" if value is None else f" ({value!r})")


def _set(kwargs: dict[str, Any], key: str, value: Any) -> None:
    if value is not _MISSING:
        kwargs[key] = value


# ------------------------------------------------------------------------------------------------

TOP_KEYS = {"agent", "contract", "targets", "controls"}
AGENT_KEYS = {"listen", "state_dir", "location", "rate_limit", "per_host_concurrency", "loop_lag_bound",
              "flush_interval", "retention", "shutdown_grace", "web_config_file", "log_level"}
CONTRACT_KEYS = {"timezone", "maintenance", "exclusions", "availability", "latency", "services", "coverage_floor",
                 "slice_down_ratio", "business_hours", "tickets"}
TARGET_KEYS = {"name", "service", "type", "url", "method", "headers", "header_files", "basic_auth", "body",
               "expect_status", "body_regex", "body_not_regex", "json", "timeout", "interval", "max_in_flight",
               "max_body_bytes", "tls", "redirects", "max_redirects", "ip_family", "keepalive", "labels"}


def load_config(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(p), 1, "", f"cannot read the file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(str(p), 1, "", "the file is not UTF-8 text")]) from None
    return parse_config(text, str(p), environ=environ, base_dir=p.parent)


def parse_config(text: str, filename: str = "<config>", *, environ: dict[str, str] | None = None,
                 base_dir: Path | None = None) -> Config:
    env = dict(os.environ if environ is None else environ)
    r = _Reader(filename, env, base_dir or Path("."))
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(filename, line, "", f"not valid YAML: {problem}")]) from None
    if root is None:
        raise ConfigError([ConfigIssue(filename, 1, "", "the file is empty; it needs at least `targets:`")])
    top = r.mapping(root, "", TOP_KEYS)
    agent = _agent(r, top.get("agent"))
    contract = _contract(r, top.get("contract"))
    targets: list[Target] = []
    if "targets" not in top:
        r.error(root, "targets", "is required: a list of at least one target")
    else:
        nodes = r.seq(top["targets"], "targets")
        if isinstance(top["targets"], yaml.SequenceNode) and not nodes:
            r.error(top["targets"], "targets", "must hold at least one target")
        for i, node in enumerate(nodes):
            t = _target(r, node, f"targets[{i}]", contract, control=False)
            if t is not None:
                targets.append(t)
    controls: list[Target] = []
    if "controls" in top:
        for i, node in enumerate(r.seq(top["controls"], "controls")):
            t = _target(r, node, f"controls[{i}]", contract, control=True)
            if t is not None:
                controls.append(t)
    # names are unique across targets and controls: they become the `target` label
    seen: dict[str, str] = {}
    all_nodes = _item_nodes(top.get("targets")) + _item_nodes(top.get("controls"))
    all_paths = [f"targets[{i}]" for i in range(len(_item_nodes(top.get("targets"))))] + \
                [f"controls[{i}]" for i in range(len(_item_nodes(top.get("controls"))))]
    for node, path in zip(all_nodes, all_paths):
        name_node = _child(node, "name")
        if name_node is None or not isinstance(name_node, yaml.ScalarNode):
            continue
        if name_node.value in seen:
            r.error(name_node, f"{path}.name", f"duplicate target name {name_node.value!r} (first used at {seen[name_node.value]})")
        else:
            seen[name_node.value] = path
    if r.issues:
        raise ConfigError(sorted(r.issues, key=lambda i: i.line))
    return Config(agent=agent, contract=contract, targets=tuple(targets), controls=tuple(controls),
                  source=filename, secrets=frozenset(s for s in r.secrets if len(s) >= 3))


def _item_nodes(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _agent(r: _Reader, node: yaml.Node | None) -> AgentSettings:
    if node is None:
        return AgentSettings()
    m = r.mapping(node, "agent", AGENT_KEYS)
    kw: dict[str, Any] = {}
    if "listen" in m:
        value = r.string(m["listen"], "agent.listen")
        if value is not _MISSING:
            if _split_listen(value) is None:
                r.error(m["listen"], "agent.listen", f"must be host:port such as 127.0.0.1:9810 or [::1]:9810, got {value!r}")
            else:
                kw["listen"] = value
    for key in ("state_dir", "web_config_file"):
        if key in m:
            _set(kw, key, r.string(m[key], f"agent.{key}"))
    if "location" in m:
        value = r.string(m["location"], "agent.location", allow_empty=True)
        if value is not _MISSING and value and not re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", value):
            r.error(m["location"], "agent.location", "must be letters, digits, '.', '_' or '-' (it becomes a label)")
        else:
            _set(kw, "location", value)
    if "rate_limit" in m:
        _set(kw, "rate_limit", r.integer(m["rate_limit"], "agent.rate_limit", 1, 100_000))
    if "per_host_concurrency" in m:
        _set(kw, "per_host_concurrency", r.integer(m["per_host_concurrency"], "agent.per_host_concurrency", 1, 10_000))
    if "loop_lag_bound" in m:
        _set(kw, "loop_lag_bound", r.duration(m["loop_lag_bound"], "agent.loop_lag_bound", minimum=0.005, maximum=10))
    if "flush_interval" in m:
        _set(kw, "flush_interval", r.duration(m["flush_interval"], "agent.flush_interval", minimum=0.1, maximum=300))
    if "shutdown_grace" in m:
        _set(kw, "shutdown_grace", r.duration(m["shutdown_grace"], "agent.shutdown_grace", minimum=0, maximum=300))
    if "retention" in m:
        value = r.duration(m["retention"], "agent.retention", minimum=86400)
        if value is not _MISSING:
            kw["retention_days"] = int(value // 86400)
    if "log_level" in m:
        _set(kw, "log_level", r.choice(m["log_level"], "agent.log_level", ("debug", "info", "warning", "error")))
    return AgentSettings(**kw)


def _split_listen(value: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d{1,5})|([^:\[\]]*):(\d{1,5})", value.strip())
    if not m:
        return None
    host = m.group(1) if m.group(1) is not None else m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port <= 65535:
        return None
    return host, port


def split_listen(value: str) -> tuple[str, int]:
    parsed = _split_listen(value)
    if parsed is None:
        raise ValueError(f"bad listen address {value!r}")
    return parsed


def _contract(r: _Reader, node: yaml.Node | None) -> Contract:
    if node is None:
        return Contract()
    m = r.mapping(node, "contract", CONTRACT_KEYS)
    kw: dict[str, Any] = {}
    tz: dt.tzinfo = dt.timezone(dt.timedelta(hours=1))
    if "timezone" in m:
        name = r.string(m["timezone"], "contract.timezone")
        if name is not _MISSING:
            try:
                tz = parse_timezone(name)
                kw["timezone"] = name
            except ValueError as exc:
                r.error(m["timezone"], "contract.timezone", str(exc))
    if "maintenance" in m:
        weekly: list[WeeklyWindow] = []
        windows: list[OnceWindow] = []
        for i, item in enumerate(r.seq(m["maintenance"], "contract.maintenance")):
            path = f"contract.maintenance[{i}]"
            im = r.mapping(item, path, {"weekly", "once"})
            if len(im) != 1:
                if isinstance(item, yaml.MappingNode) and len(item.value) != 1:
                    r.error(item, path, "must hold exactly one of `weekly` or `once`")
                continue
            if "weekly" in im:
                w = _weekly(r, im["weekly"], f"{path}.weekly")
                if w:
                    weekly.append(w)
            else:
                o = _once(r, im["once"], f"{path}.once", tz, "maintenance")
                if o:
                    windows.append(o)
        kw["weekly"] = tuple(weekly)
        kw["windows"] = tuple(windows)
    if "exclusions" in m:
        excl = []
        for i, item in enumerate(r.seq(m["exclusions"], "contract.exclusions")):
            o = _once(r, item, f"contract.exclusions[{i}]", tz, "exclusion")
            if o:
                excl.append(o)
        kw["windows"] = kw.get("windows", ()) + tuple(excl)
    if "availability" in m:
        am = r.mapping(m["availability"], "contract.availability", {"objective"})
        if "objective" in am:
            _set(kw, "availability_objective", r.ratio(am["objective"], "contract.availability.objective"))
    if "coverage_floor" in m:
        _set(kw, "coverage_floor", r.ratio(m["coverage_floor"], "contract.coverage_floor"))
    if "slice_down_ratio" in m:
        _set(kw, "slice_down_ratio", r.ratio(m["slice_down_ratio"], "contract.slice_down_ratio"))
    if "latency" in m:
        lm = r.mapping(m["latency"], "contract.latency", {"services", "period", "objectives"})
        if "services" in lm:
            names = [r.string(n, f"contract.latency.services[{i}]") for i, n in enumerate(r.seq(lm["services"], "contract.latency.services"))]
            kw["latency_services"] = tuple(n for n in names if n is not _MISSING)
        if "period" in lm:
            _set(kw, "period", r.choice(lm["period"], "contract.latency.period", ("iso_week", "month_start")))
        if "objectives" in lm:
            objs = []
            for i, item in enumerate(r.seq(lm["objectives"], "contract.latency.objectives")):
                p = f"contract.latency.objectives[{i}]"
                om = r.mapping(item, p, {"below", "ratio"})
                below = r.duration(om["below"], f"{p}.below", maximum=600) if "below" in om else _MISSING
                ratio = r.ratio(om["ratio"], f"{p}.ratio") if "ratio" in om else _MISSING
                for key in ("below", "ratio"):
                    if key not in om and isinstance(item, yaml.MappingNode):
                        r.error(item, f"{p}.{key}", "is required")
                if below is not _MISSING and ratio is not _MISSING:
                    objs.append(LatencyObjective(below, ratio))
            if isinstance(lm["objectives"], yaml.SequenceNode) and not lm["objectives"].value:
                r.error(lm["objectives"], "contract.latency.objectives", "must hold at least one objective")
            objs.sort(key=lambda o: o.below)
            kw["latency_objectives"] = tuple(objs) or Contract().latency_objectives
    if "services" in m:
        sm = m["services"]
        if not isinstance(sm, yaml.MappingNode):
            r.error(sm, "contract.services", "must be a mapping of service name to {combine: any|all|majority}")
        else:
            pol = []
            for knode, vnode in sm.value:
                p = f"contract.services.{knode.value}"
                vm = r.mapping(vnode, p, {"combine"})
                if "combine" in vm:
                    c = r.choice(vm["combine"], f"{p}.combine", ("any", "all", "majority"))
                    if c is not _MISSING:
                        pol.append((str(knode.value), ServicePolicy(c)))
            kw["services"] = tuple(pol)
    if "business_hours" in m:
        bm = r.mapping(m["business_hours"], "contract.business_hours",
                       {"start", "end", "country", "subdivision", "closed_days"})
        if "start" in bm:
            _set(kw, "business_start", r.clock_time(bm["start"], "contract.business_hours.start"))
        if "end" in bm:
            _set(kw, "business_end", r.clock_time(bm["end"], "contract.business_hours.end"))
        if "country" in bm:
            country = r.string(bm["country"], "contract.business_hours.country")
            if country is not _MISSING:
                import holidays

                if country.upper() not in holidays.list_supported_countries():
                    r.error(bm["country"], "contract.business_hours.country",
                            f"no public-holiday calendar for {country!r}; use an ISO 3166 code such as FR, BE, DE")
                else:
                    kw["holidays_country"] = country.upper()
        if "subdivision" in bm:
            _set(kw, "holidays_subdivision", r.string(bm["subdivision"], "contract.business_hours.subdivision"))
        if "closed_days" in bm:
            days = []
            for i, item in enumerate(r.seq(bm["closed_days"], "contract.business_hours.closed_days")):
                v = r.scalar(item, f"contract.business_hours.closed_days[{i}]")
                if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
                    days.append(v)
                elif v is not _MISSING:
                    r.error(item, f"contract.business_hours.closed_days[{i}]", f"must be a date YYYY-MM-DD, got {v!r}")
            kw["closed_days"] = tuple(days)
        s, e = kw.get("business_start", Contract.business_start), kw.get("business_end", Contract.business_end)
        if e <= s and isinstance(m["business_hours"], yaml.MappingNode):
            r.error(m["business_hours"], "contract.business_hours.end", "must be later than start")
    if "tickets" in m:
        tm = r.mapping(m["tickets"], "contract.tickets", {"deadlines", "objective", "columns"})
        if "deadlines" in tm:
            dm = r.mapping(tm["deadlines"], "contract.tickets.deadlines", {"P1", "P2", "P3"})
            base = dict(Contract().ticket_deadlines)
            for k, v in dm.items():
                _set(base, k, r.duration(v, f"contract.tickets.deadlines.{k}", minimum=60))
            kw["ticket_deadlines"] = tuple(sorted(base.items()))
        if "objective" in tm:
            _set(kw, "ticket_objective", r.ratio(tm["objective"], "contract.tickets.objective"))
        if "columns" in tm:
            cm = r.mapping(tm["columns"], "contract.tickets.columns",
                           {"id", "priority", "opened_at", "responded_at", "workaround_at", "resolved_at", "closed_at"})
            cols = [(k, r.string(v, f"contract.tickets.columns.{k}")) for k, v in cm.items()]
            kw["ticket_columns"] = tuple((k, v) for k, v in cols if v is not _MISSING)
    return Contract(**kw)


def _weekly(r: _Reader, node: yaml.Node, path: str) -> WeeklyWindow | None:
    m = r.mapping(node, path, {"day", "start", "end", "reason"})
    for key in ("day", "start", "end"):
        if key not in m and isinstance(node, yaml.MappingNode):
            r.error(node, f"{path}.{key}", "is required")
    day = r.choice(m["day"], f"{path}.day", DAYS) if "day" in m else _MISSING
    start = r.clock_time(m["start"], f"{path}.start") if "start" in m else _MISSING
    end = r.clock_time(m["end"], f"{path}.end") if "end" in m else _MISSING
    reason = r.string(m["reason"], f"{path}.reason") if "reason" in m else "weekly maintenance"
    if _MISSING in (day, start, end, reason):
        return None
    if start == end:
        r.error(m["end"], f"{path}.end", "must differ from start (a window of zero length)")
        return None
    return WeeklyWindow(DAYS.index(day), start, end, reason)


def _once(r: _Reader, node: yaml.Node, path: str, tz: dt.tzinfo, kind: str) -> OnceWindow | None:
    m = r.mapping(node, path, {"start", "end", "reason"})
    for key in ("start", "end", "reason"):
        if key not in m and isinstance(node, yaml.MappingNode):
            r.error(node, f"{path}.{key}", "is required" + (" (say why the window is excluded)" if key == "reason" else ""))
    start = r.instant(m["start"], f"{path}.start", tz) if "start" in m else _MISSING
    end = r.instant(m["end"], f"{path}.end", tz) if "end" in m else _MISSING
    reason = r.string(m["reason"], f"{path}.reason") if "reason" in m else _MISSING
    if _MISSING in (start, end, reason):
        return None
    if end <= start:
        r.error(m["end"], f"{path}.end", "must be later than start")
        return None
    return OnceWindow(start, end, reason, kind)


def _target(r: _Reader, node: yaml.Node, path: str, contract: Contract, *, control: bool) -> Target | None:
    allowed = TARGET_KEYS - ({"service"} if control else set())
    m = r.mapping(node, path, allowed)
    if not isinstance(node, yaml.MappingNode):
        return None
    required = ("name", "url") if control else ("name", "service", "url")
    for key in required:
        if key not in m:
            r.error(node, f"{path}.{key}", "is required")
    kw: dict[str, Any] = {"control": control}
    ok = True

    def get(key: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        nonlocal ok
        if key in m:
            value = fn(m[key], f"{path}.{key}", *args, **kwargs)
            if value is _MISSING:
                ok = False
            else:
                kw[key] = value

    get("name", r.string)
    if "name" in kw and not _NAME.match(kw["name"]):
        r.error(m["name"], f"{path}.name", "must start with a letter and hold only letters, digits, '.', '_' or '-' (at most 63)")
        ok = False
    if control:
        kw["service"] = "_control"
    else:
        get("service", r.string)
        if "service" in kw and not _NAME.match(kw["service"]):
            r.error(m["service"], f"{path}.service", "must start with a letter and hold only letters, digits, '.', '_' or '-'")
            ok = False
    get("type", r.choice, ("http",))
    get("url", r.string, env=True)
    if "url" in kw:
        problem = _check_url(kw["url"])
        if problem:
            r.error(m["url"], f"{path}.url", problem)
            del kw["url"]
            ok = False
        else:
            parts = urlsplit(kw["url"])
            if parts.password:
                import base64

                r.secrets.add(parts.password)  # and as it travels, in the Authorization header aiohttp builds
                r.secrets.add(base64.b64encode(f"{parts.username or ''}:{parts.password}".encode()).decode())
    get("method", r.choice, ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
    get("body", r.string, allow_empty=True, env=True)
    headers: list[tuple[str, str]] = []
    if "headers" in m:
        hm = m["headers"]
        if not isinstance(hm, yaml.MappingNode):
            r.error(hm, f"{path}.headers", "must be a mapping of header name to value")
            ok = False
        else:
            for knode, vnode in hm.value:
                hp = f"{path}.headers.{knode.value}"
                if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", str(knode.value)):
                    r.error(knode, hp, "is not a valid HTTP header name")
                    ok = False
                    continue
                value = r.string(vnode, hp, allow_empty=True, env=True)
                if value is _MISSING:
                    ok = False
                    continue
                if _SECRET_HEADER.search(str(knode.value)) and value:
                    r.secrets.add(value)
                    r.secrets.update(part for part in value.split() if len(part) >= 8)
                headers.append((str(knode.value), value))
    if "header_files" in m:
        hm = m["header_files"]
        if not isinstance(hm, yaml.MappingNode):
            r.error(hm, f"{path}.header_files", "must be a mapping of header name to a file holding its value")
            ok = False
        else:
            for knode, vnode in hm.value:
                value = r.read_secret_file(vnode, f"{path}.header_files.{knode.value}")
                if value is _MISSING:
                    ok = False
                else:
                    headers.append((str(knode.value), value))
    if "basic_auth" in m:
        bm = r.mapping(m["basic_auth"], f"{path}.basic_auth", {"username", "password", "password_file"})
        user = r.string(bm["username"], f"{path}.basic_auth.username", env=True) if "username" in bm else _MISSING
        if "password" in bm:
            pw = r.string(bm["password"], f"{path}.basic_auth.password", env=True)
            if pw is not _MISSING:
                r.secrets.add(pw)
        elif "password_file" in bm:
            pw = r.read_secret_file(bm["password_file"], f"{path}.basic_auth.password_file")
        else:
            r.error(m["basic_auth"], f"{path}.basic_auth", "needs `password` (use ${ENV}) or `password_file`")
            pw = _MISSING
        if user is _MISSING and "username" not in bm:
            r.error(m["basic_auth"], f"{path}.basic_auth.username", "is required")
        if user is not _MISSING and pw is not _MISSING:
            import base64

            token = base64.b64encode(f"{user}:{pw}".encode()).decode()
            r.secrets.add(token)
            headers.append(("Authorization", f"Basic {token}"))
        else:
            ok = False
    kw["headers"] = tuple(headers)
    if "url" in kw and urlsplit(kw["url"]).username is not None and \
            any(k.lower() == "authorization" for k, _ in headers):
        r.error(m["url"], f"{path}.url", "has user:password@ credentials and an Authorization header (or basic_auth): "
                                         "keep one of them")
        ok = False
    if "expect_status" in m:
        codes = []
        for i, item in enumerate(r.seq(m["expect_status"], f"{path}.expect_status")):
            code = r.integer(item, f"{path}.expect_status[{i}]", 100, 599)
            if code is _MISSING:
                ok = False
            else:
                codes.append(code)
        kw["expect_status"] = tuple(codes)
    for key in ("body_regex", "body_not_regex"):
        if key in m:
            pats = []
            for i, item in enumerate(r.seq(m[key], f"{path}.{key}")):
                text = r.string(item, f"{path}.{key}[{i}]")
                if text is _MISSING:
                    ok = False
                    continue
                try:
                    pats.append(re.compile(text))
                except re.error as exc:
                    r.error(item, f"{path}.{key}[{i}]", f"invalid regular expression: {exc}")
                    ok = False
            kw[key] = tuple(pats)
    if "json" in m:
        asserts = []
        for i, item in enumerate(r.seq(m["json"], f"{path}.json")):
            jp = f"{path}.json[{i}]"
            jm = r.mapping(item, jp, {"path", "equals"})
            if "path" not in jm or "equals" not in jm:
                if isinstance(item, yaml.MappingNode):
                    r.error(item, jp, "needs both `path` (such as data.status) and `equals`")
                ok = False
                continue
            jpath = r.string(jm["path"], f"{jp}.path")
            equals = r.scalar(jm["equals"], f"{jp}.equals")
            if jpath is _MISSING or equals is _MISSING:
                ok = False
                continue
            if not re.fullmatch(r"[A-Za-z0-9_$-]+(\[\d+\])*(\.[A-Za-z0-9_$-]+(\[\d+\])*)*", jpath):
                r.error(jm["path"], f"{jp}.path", f"must be a dotted path such as data.items[0].status, got {jpath!r}")
                ok = False
                continue
            asserts.append(JsonAssertion(jpath, equals))
        kw["json"] = tuple(asserts)
    get("timeout", r.duration, minimum=0.01, maximum=300)
    get("interval", r.duration, minimum=0.05, maximum=86400)
    get("max_in_flight", r.integer, 1, 1000)
    get("max_body_bytes", r.integer, 0, 1 << 40)
    if "tls" in m:
        tm = r.mapping(m["tls"], f"{path}.tls", {"verify", "ca_file", "cert_file", "key_file", "server_name"})
        tkw: dict[str, Any] = {}
        if "verify" in tm:
            _set(tkw, "verify", r.boolean(tm["verify"], f"{path}.tls.verify"))
        for key in ("ca_file", "cert_file", "key_file"):
            if key in tm:
                value = r.string(tm[key], f"{path}.tls.{key}")
                if value is _MISSING:
                    continue
                fp = Path(value) if os.path.isabs(value) else r.base / value
                if not fp.is_file():
                    r.error(tm[key], f"{path}.tls.{key}", f"no such file: {fp}")
                    ok = False
                else:
                    tkw[key] = str(fp)
        if "server_name" in tm:
            _set(tkw, "server_name", r.string(tm["server_name"], f"{path}.tls.server_name"))
        if ("cert_file" in tkw) != ("key_file" in tkw):
            r.error(m["tls"], f"{path}.tls", "cert_file and key_file go together (a client certificate needs its key)")
            ok = False
        kw["tls"] = TLSOptions(**tkw)
    get("redirects", r.choice, ("follow", "none"))
    get("max_redirects", r.integer, 0, 50)
    get("ip_family", r.choice, ("any", "ipv4", "ipv6"))
    get("keepalive", r.boolean)
    if "labels" in m:
        lm = m["labels"]
        labels = []
        if not isinstance(lm, yaml.MappingNode):
            r.error(lm, f"{path}.labels", "must be a mapping of label name to value")
            ok = False
        else:
            for knode, vnode in lm.value:
                lp = f"{path}.labels.{knode.value}"
                name = str(knode.value)
                if not _LABEL.match(name) or name.startswith("__"):
                    r.error(knode, lp, "is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
                    ok = False
                elif name in RESERVED_LABELS:
                    r.error(knode, lp, f"is reserved; the agent sets it itself (reserved: {', '.join(sorted(RESERVED_LABELS))})")
                    ok = False
                else:
                    value = r.string(vnode, lp, allow_empty=True)
                    if value is _MISSING:
                        ok = False
                    else:
                        labels.append((name, value))
        kw["labels"] = tuple(sorted(labels))
    # cross-field rules (checked even when another field is wrong, so that all errors show at once)
    timeout = kw.get("timeout", Target.timeout)
    interval = kw.get("interval", Target.interval)
    in_flight = kw.get("max_in_flight", Target.max_in_flight)
    if kw.get("service") in contract.latency_services and timeout <= max(contract.thresholds):
        r.error(m.get("timeout", node), f"{path}.timeout",
                f"must be greater than the {max(contract.thresholds):g}s latency threshold "
                f"(a timeout counts as a request slower than every threshold)")
        ok = False
    elif ("interval" in kw or "timeout" in kw) and all(k in kw for k in ("interval", "timeout", "max_in_flight") if k in m):
        if interval * in_flight < timeout:
            r.error(m.get("interval", node), f"{path}.interval",
                    f"{interval:g}s is shorter than the timeout {timeout:g}s: a probe could still be running "
                    f"at the next tick; raise interval, lower timeout, or set max_in_flight >= "
                    f"{math.ceil(timeout / interval)}")
            ok = False
    if not ok or "name" not in kw or "url" not in kw or "service" not in kw:
        return None
    return Target(**kw)


def _check_url(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL, got {url.split('://')[0] + '://' if '://' in url else url!r}"
    if not parts.hostname:
        return "has no host name"
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?", host):
            return f"host {host!r} is not a valid host name"
    if port == 0:
        return "port 0 is not a valid port"
    return None
