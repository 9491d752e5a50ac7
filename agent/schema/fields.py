"""Declared field tables: which keys a mapping takes, how each value is read and checked, where it goes.

A table is data (blackbox_exporter's habit of validation next to the type): the loader of a section is
`read_table(r, node, path, FIELDS)` instead of one hand-written `if key in m:` block per key.
A value reader is any `(reader, node, path) -> value | MISSING`; the factories below make the usual ones.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import yaml

from .reader import MISSING, Reader, join

ReadFn = Callable[[Reader, yaml.Node, str], Any]
CheckFn = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Field:
    key: str
    read: ReadFn
    dest: str = ""  # keyword of the built object; the key itself when empty
    required: bool = False
    check: CheckFn | None = None  # a rule on the read value: returns an error message, or None when fine

    @property
    def name(self) -> str:
        return self.dest or self.key


@dataclass
class Section:
    """What read_table found: the keyword values, the nodes by key, and whether all of it was valid."""

    values: dict[str, Any]
    nodes: dict[str, yaml.Node]
    ok: bool
    node: yaml.Node

    def node_of(self, key: str) -> yaml.Node:
        """The node of `key`, or the section's own node when the key is absent (for cross-field errors)."""
        return self.nodes.get(key, self.node)


def keys_of(fields: Sequence[Field]) -> set[str]:
    return {f.key for f in fields}


def read_table(r: Reader, node: yaml.Node, path: str, fields: Sequence[Field], *,
               extra_keys: Sequence[str] = ()) -> Section:
    """Reads every field of the table present in the mapping; `extra_keys` are allowed but left to the
    caller (another table reads them from the section's nodes)."""
    nodes = r.mapping(node, path, keys_of(fields) | set(extra_keys))
    return read_fields(r, nodes, node, path, fields)


def read_fields(r: Reader, nodes: dict[str, yaml.Node], node: yaml.Node, path: str,
                fields: Sequence[Field]) -> Section:
    """Reads the fields of a table out of a mapping already split into nodes by key."""
    is_map = isinstance(node, yaml.MappingNode)
    out = Section({}, nodes, is_map, node)
    for f in fields:  # what is missing first, then what is wrong
        if f.required and is_map and f.key not in nodes:
            r.error(node, join(path, f.key), "is required")
            out.ok = False
    for f in fields:
        if f.key not in nodes:
            continue
        fpath = join(path, f.key)
        value = f.read(r, nodes[f.key], fpath)
        if value is not MISSING and f.check is not None:
            problem = f.check(value)
            if problem:
                value = r.reject(nodes[f.key], fpath, problem)
        if value is MISSING:
            out.ok = False
        else:
            out.values[f.name] = value
    return out


# -- value readers ---------------------------------------------------------------------------------
def string(*, allow_empty: bool = False, env: bool = False) -> ReadFn:
    return lambda r, n, p: r.string(n, p, allow_empty=allow_empty, env=env)


def integer(lo: int, hi: int) -> ReadFn:
    return lambda r, n, p: r.integer(n, p, lo, hi)


def duration(minimum: float = 0.001, maximum: float = 10 * 366 * 86400) -> ReadFn:
    return lambda r, n, p: r.duration(n, p, minimum=minimum, maximum=maximum)


_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([A-Za-z]*)")
_UNITS = {"": 1, "B": 1, "kB": 1000, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "KiB": 1024, "MiB": 1024 ** 2,
          "GiB": 1024 ** 3}


def byte_size(lo: int, hi: int) -> ReadFn:
    """A size in bytes: a whole number, or a number and a unit (10MB: 10 000 000 bytes, 10MiB: 10 485 760)."""

    def fn(r: Reader, n: yaml.Node, p: str) -> Any:
        value = r.scalar(n, p)
        if value is MISSING:
            return MISSING
        m = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
        if isinstance(value, int) and not isinstance(value, bool):
            size = value
        elif m and m.group(2) in _UNITS:
            size = int(float(m.group(1)) * _UNITS[m.group(2)])
        else:
            return r.reject(n, p, f"must be a size such as 10MB, 512KiB or 1000000 (bytes), got {value!r}")
        if not lo <= size <= hi:
            return r.reject(n, p, f"must be between {lo} and {hi} bytes, got {value}")
        return size

    return fn


def choice(*options: str) -> ReadFn:
    return lambda r, n, p: r.choice(n, p, options)


def ratio() -> ReadFn:
    return Reader.ratio


def boolean() -> ReadFn:
    return Reader.boolean


def clock_time() -> ReadFn:
    return Reader.clock_time


def secret_file() -> ReadFn:
    return Reader.secret_file


def existing_file() -> ReadFn:
    return Reader.existing_file


def regex() -> ReadFn:
    return Reader.regex


def converted(read: ReadFn, convert: Callable[[Any], Any]) -> ReadFn:
    def fn(r: Reader, n: yaml.Node, p: str) -> Any:
        value = read(r, n, p)
        return value if value is MISSING else convert(value)

    return fn


def list_of(item: ReadFn, *, non_empty: str = "") -> ReadFn:
    """A list whose items are all read (every bad item reported); MISSING when one is bad."""

    def fn(r: Reader, n: yaml.Node, p: str) -> Any:
        items = [item(r, x, f"{p}[{i}]") for i, x in enumerate(r.seq(n, p))]
        if not isinstance(n, yaml.SequenceNode) or MISSING in items:
            return MISSING
        if non_empty and not items:
            return r.reject(n, p, non_empty)
        return tuple(items)

    return fn


def section(fields: Sequence[Field], build: Callable[..., Any],
            rule: Callable[[Reader, Section, str], bool] | None = None) -> ReadFn:
    """A nested mapping read with its own table and built into one object (`build(**values)`).
    `rule` checks fields against each other; it records its errors and returns False on one."""

    def fn(r: Reader, n: yaml.Node, p: str) -> Any:
        s = read_table(r, n, p, fields)
        if rule is not None and s.ok:
            s.ok = rule(r, s, p)
        return build(**s.values) if s.ok else MISSING

    return fn


def one_of(readers: dict[str, ReadFn]) -> ReadFn:
    """A list item holding exactly one of several keys (`- weekly: {...}` or `- once: {...}`):
    returns (key, value)."""

    def fn(r: Reader, n: yaml.Node, p: str) -> Any:
        m = r.mapping(n, p, readers)
        if len(m) != 1:
            if isinstance(n, yaml.MappingNode) and len(n.value) != 1:
                r.error(n, p, f"must hold exactly one of {' or '.join(f'`{k}`' for k in readers)}")
            return MISSING
        (key, node), = m.items()
        value = readers[key](r, node, join(p, key))
        return MISSING if value is MISSING else (key, value)

    return fn
