"""Walks a composed YAML node tree: converts values, collects every error with its line and field path.

Nothing is raised while reading: a bad value is recorded and comes back as MISSING, so that one pass
reports all the errors of a file at once, as `FILE:LINE: field.path: message`.
"""
from __future__ import annotations

import datetime as dt
import difflib
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..timeutil import parse_duration, parse_instant
from .regex import Refused, Regex

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
OFFLINE = "offline"  # stands for an environment variable or a file of a config read offline
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Reader:
    """Reads values out of YAML nodes; every problem becomes a ConfigIssue and the value MISSING."""

    def __init__(self, filename: str, environ: dict[str, str], base_dir: Path, offline: bool = False,
                 probing: bool = True) -> None:
        self.file = filename
        self.env = environ
        self.base = base_dir
        # A copy read away from its machine (an evidence bundle's): environment variables and files it names
        # are not there; what the report needs (contract, targets, timeouts) does not depend on them.
        self.offline = offline
        # Read to probe from this machine (run, demo, a reload): what probing needs here, a Chromium, must be
        # found. Read to report on what is stored (report, evidence, tickets...), its absence is a warning.
        self.probing = probing
        self.issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        self.secrets: set[str] = set()
        # Inside a transaction's step: the variables earlier steps extract. A ${name} among them is left for
        # the probe to fill at run time; any other ${NAME} comes from the environment.
        self.variables: tuple[str, ...] | None = None

    def error(self, node: yaml.Node | None, path: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.issues.append(ConfigIssue(self.file, line, path, message))

    def need(self, node: yaml.Node | None, path: str, message: str) -> None:
        """Something only probing needs is missing on this machine: an error when the config is read to
        probe, a warning otherwise."""
        self.error(node, path, message)
        if not self.probing:
            self.warnings.append(self.issues.pop())

    def reject(self, node: yaml.Node | None, path: str, message: str) -> Any:
        """Records the error; the value is missing."""
        self.error(node, path, message)
        return MISSING

    def path_of(self, name: str) -> Path:
        """A file named in the config: relative names are read next to the config file."""
        return Path(name) if os.path.isabs(name) else self.base / name

    # -- structure -------------------------------------------------------------------------------
    def mapping(self, node: yaml.Node, path: str, allowed: Iterable[str]) -> dict[str, yaml.Node]:
        allowed = set(allowed)
        if not isinstance(node, yaml.MappingNode):
            self.error(node, path, f"must be a mapping, got {kind_of(node)}")
            return {}
        out: dict[str, yaml.Node] = {}
        for knode, vnode in node.value:
            key = knode.value if isinstance(knode, yaml.ScalarNode) else None
            kpath = join(path, str(key))
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

    def pairs(self, node: yaml.Node, path: str, what: str) -> list[tuple[yaml.Node, yaml.Node]] | None:
        """The (key, value) nodes of a free-form mapping (headers, labels), or None after an error."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, path, f"must be a mapping of {what}")
            return None
        return list(node.value)

    def seq(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, path, f"must be a list, got {kind_of(node)}")
            return []
        return list(node.value)

    # -- scalars ---------------------------------------------------------------------------------
    def scalar(self, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return self.reject(node, path, f"must be a single value, got {kind_of(node)}")
        if node.tag == "tag:yaml.org,2002:str":
            return node.value
        try:
            return yaml.constructor.SafeConstructor().construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            return self.reject(node, path, f"cannot read {node.value!r}: {exc}")

    def string(self, node: yaml.Node, path: str, *, allow_empty: bool = False, env: bool = False) -> Any:
        value = self.scalar(node, path)
        if value is MISSING:
            return MISSING
        if not isinstance(value, str):
            return self.reject(node, path, f"must be a string, got {pytype(value)}")
        if env:
            value = self.expand(node, path, value)
            if value is MISSING:
                return MISSING
        if not allow_empty and not value.strip():
            return self.reject(node, path, "must not be empty")
        return value

    def expand(self, node: yaml.Node, path: str, value: str) -> Any:
        """${NAME} from the environment; the values are secrets from then on."""
        variables = self.variables or ()
        names = [name for name in ENV_REF.findall(value) if name not in variables]
        missing = [name for name in names if name not in self.env]
        if missing and self.offline:
            return ENV_REF.sub(lambda m: m.group(0) if m.group(1) in variables else OFFLINE, value)
        if missing and self.variables is not None:
            defined = ", ".join(variables) or "none"
            return self.reject(node, path, f"${{{missing[0]}}} is not a variable extracted by an earlier step "
                                           f"(defined here: {defined}) nor a set environment variable")
        if missing:
            return self.reject(node, path, f"environment variable {missing[0]} is not set")
        if not names:
            return value
        self.secrets.update(self.env[name] for name in names if self.env[name])
        return ENV_REF.sub(lambda m: m.group(0) if m.group(1) in variables else self.env[m.group(1)], value)

    def secret_file(self, node: yaml.Node, path: str) -> Any:
        name = self.string(node, path)
        if name is MISSING:
            return MISSING
        p = self.path_of(name)
        if self.offline:
            return OFFLINE
        try:
            value = p.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            return self.reject(node, path, f"cannot read {p}: {getattr(exc, 'strerror', None) or exc}")
        if value:
            self.secrets.add(value)
        return value

    def existing_file(self, node: yaml.Node, path: str) -> Any:
        name = self.string(node, path)
        if name is MISSING:
            return MISSING
        p = self.path_of(name)
        if self.offline:
            return str(p)
        try:
            found = stat.S_ISREG(p.stat().st_mode)
        except (FileNotFoundError, NotADirectoryError):
            found = False
        except OSError as exc:  # a folder on the way this user may not enter
            return self.reject(node, path, f"cannot reach {p} as user {os.geteuid()}: {exc.strerror}")
        return str(p) if found else self.reject(node, path, f"no such file: {p}")

    def boolean(self, node: yaml.Node, path: str) -> Any:
        value = self.scalar(node, path)
        if value is MISSING:
            return MISSING
        if not isinstance(value, bool):
            return self.reject(node, path, f"must be true or false, got {value!r}")
        return value

    def integer(self, node: yaml.Node, path: str, lo: int, hi: int) -> Any:
        value = self.scalar(node, path)
        if value is MISSING:
            return MISSING
        if isinstance(value, bool) or not isinstance(value, int):
            return self.reject(node, path, f"must be a whole number, got {pytype(value)}")
        if not lo <= value <= hi:
            return self.reject(node, path, f"must be between {lo} and {hi}, got {value}")
        return value

    def ratio(self, node: yaml.Node, path: str) -> Any:
        value = self.scalar(node, path)
        if value is MISSING:
            return MISSING
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1 or math.isnan(value):
            return self.reject(node, path, f"must be a ratio above 0 and at most 1 (0.99 for 99 %), got {value!r}")
        return float(value)

    def duration(self, node: yaml.Node, path: str, *, minimum: float = 0.001,
                 maximum: float = 10 * 366 * 86400) -> Any:
        value = self.scalar(node, path)
        if value is MISSING:
            return MISSING
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
        if value is MISSING:
            return MISSING
        if value not in options:
            return self.reject(node, path, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def clock_time(self, node: yaml.Node, path: str) -> Any:
        value = self.string(node, path)
        if value is MISSING:
            return MISSING
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59 or (int(m.group(1)) == 24 and int(m.group(2))):
            return self.reject(node, path, f"must be a time of day HH:MM (00:00 to 24:00), got {value!r}")
        h, mi = int(m.group(1)), int(m.group(2))
        return dt.time(0, 0) if h == 24 else dt.time(h, mi)

    def instant(self, node: yaml.Node, path: str, tz: dt.tzinfo) -> Any:
        value = self.scalar(node, path)
        if value is MISSING:
            return MISSING
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=tz)
        example = "must be an ISO 8601 date-time such as 2026-12-01T22:00:00+01:00"
        if not isinstance(value, str):
            return self.reject(node, path, f"{example}, got {value!r}")
        try:
            return parse_instant(value, tz)
        except ValueError:
            return self.reject(node, path, f"{example}, got {value!r}")

    def regex(self, node: yaml.Node, path: str) -> Any:
        text = self.string(node, path)
        if text is MISSING:
            return MISSING
        try:
            return Regex(text)
        except re.error as exc:
            return self.reject(node, path, f"invalid regular expression: {exc}")
        except Refused as exc:
            return self.reject(node, path, str(exc))


def kind_of(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}"


def pytype(value: Any) -> str:
    name = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            type(None): "nothing (null)"}.get(type(value), type(value).__name__)
    return name + ("" if value is None else f" ({value!r})")


def child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    """The value node of `key` in a mapping node, without recording anything."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None
