"""Fuzzing the two inputs users hand us: every generated config or ticket export gives a valid result or
a clean error with a line (and a field path), never a traceback."""
from __future__ import annotations

import json
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import Config, ConfigError, parse_config
from agent.config.contract import KEYS as CONTRACT_KEYS
from agent.config.load import AGENT_KEYS
from agent.config.targets import all_target_keys
from agent.tickets import FIELDS, TicketFileError, parse_export

from .conftest import ROOT

TARGET_KEYS = all_target_keys()
KEYS = sorted(AGENT_KEYS | CONTRACT_KEYS | TARGET_KEYS | {"agent", "contract", "targets", "controls", "weekly", "once",
                                                            "day", "start", "end", "reason", "objectives", "below",
                                                            "ratio", "verify", "ca_file", "path", "equals"})
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10 ** 6), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1s", "250ms", "5m", "0s", "-1s", "1x", "http://127.0.0.1:9/", "https://[::1]:9/x", "ftp://x",
                     "thursday", "06:00", "25:99", "+01:00", "Europe/Paris", "Nowhere/City", "${UNSET_VAR}",
                     "(unclosed", "api", "web", "P1", "GET", "2026-12-01T22:00:00+01:00", "", " "]),
    st.text(max_size=20),
)
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children,
                                                    max_size=4)), max_leaves=8)
TARGET = st.fixed_dictionaries({"name": scalars, "service": scalars, "url": scalars},
                               optional={k: values for k in ("interval", "timeout", "max_in_flight", "headers",
                                                             "expect_status", "body_regex", "json", "tls", "labels")})
documents = st.fixed_dictionaries({}, optional={
    "agent": st.dictionaries(st.sampled_from(sorted(AGENT_KEYS) + ["bogus"]), values, max_size=4),
    "contract": st.dictionaries(st.sampled_from(sorted(CONTRACT_KEYS) + ["bogus"]), values, max_size=4),
    "targets": st.lists(TARGET, max_size=3),
    "controls": st.lists(TARGET, max_size=2),
})

ISSUE = re.compile(r"^<fuzz>:\d+: ")


def _check(text: str) -> None:
    try:
        cfg = parse_config(text, "<fuzz>", environ={})
    except ConfigError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.line >= 1 and issue.message
            assert ISSUE.match(str(issue)), str(issue)
        return
    assert isinstance(cfg, Config) and cfg.targets


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(documents)
def test_config_loader_never_crashes_on_structured_input(doc):
    _check(yaml.safe_dump(doc, allow_unicode=True))


SEEDS = [p.read_text() for p in sorted((ROOT / "config").glob("*.yaml")) +
         sorted((ROOT / "tests" / "data" / "config").glob("bad-*.yaml"))]
NOISE = ["", "  ", "- ", ": ", "{", "}", "[", "]", "'", '"', "#", "&a ", "*a", "!!python/object:os.system ", "\t",
         "0", "-1", "1e309", "null", "true", "9999999999999999999999", "1s", "0ms", "${X}", "\u0000", "é", "<<: *a"]


def _mutate(rnd, text: str) -> str:
    lines = text.splitlines()
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(6)
        i = rnd.randrange(len(lines)) if lines else 0
        if op == 0 and lines:
            del lines[i]
        elif op == 1 and lines:
            lines.insert(i, lines[rnd.randrange(len(lines))])  # a duplicated line: duplicate keys, shifted lists
        elif op == 2 and lines:
            j = rnd.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:j] + rnd.choice(NOISE) + lines[i][j:]
        elif op == 3 and lines and ":" in lines[i]:
            key, _, _ = lines[i].partition(":")
            lines[i] = f"{key}: {rnd.choice(NOISE + KEYS)}"
        elif op == 4 and lines:
            lines[i] = " " * rnd.randint(0, 6) + lines[i].lstrip()  # broken indentation
        else:
            lines.insert(i, f"{' ' * rnd.choice((0, 2, 4))}{rnd.choice(KEYS)}: {rnd.choice(NOISE)}")
    return "\n".join(lines) + "\n"


@settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False), st.integers(0, len(SEEDS) - 1))
def test_config_loader_never_crashes_on_mutated_configs(rnd, seed):
    """Mutations of real configs (the shipped ones and every bad-*.yaml) reach deep into the loader."""
    _check(_mutate(rnd, SEEDS[seed]))


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=200))
def test_config_loader_never_crashes_on_any_text(text):
    _check(text)


TS = st.one_of(st.sampled_from(["2026-11-24T10:00:00+01:00", "2026-11-24T09:00:00Z", "2026-11-24T10:00:00",
                                "2026-02-30T10:00:00", "yesterday", "", "2026-11-24", "10:00"]),
               st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=12))
ROW = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.text(max_size=6), st.integers(), st.none(), st.booleans()),
    "priority": st.one_of(st.sampled_from(["P1", "P2", "P3", "p1", "1", "P4", ""]), st.text(max_size=3)),
    "opened_at": TS, "responded_at": st.one_of(TS, st.none()), "workaround_at": st.one_of(TS, st.none()),
    "resolved_at": TS, "extra": st.text(max_size=5)})
PROBLEM = re.compile(r"^export\.(csv|json):\d+: ")


def _check_tickets(name: str, data: bytes, cfg) -> None:
    try:
        tickets = parse_export(cfg, name, data)
    except TicketFileError as exc:
        assert exc.problems
        for p in exc.problems:
            assert PROBLEM.match(p), p
        return
    assert tickets and len({t.id for t in tickets}) == len(tickets)
    for t in tickets:
        assert t.priority in ("P1", "P2", "P3")
        assert t.responded_at is None or t.responded_at >= t.opened_at


CFG = parse_config('targets: [{name: a, service: web, url: "http://127.0.0.1:9/"}]')


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(ROW, max_size=6), st.lists(st.sampled_from(list(FIELDS) + ["extra", "x"]), max_size=8, unique=True))
def test_ticket_csv_import_never_crashes(rows, header):
    lines = [",".join(header)] + [",".join(str(r.get(h, "")).replace(",", ";").replace("\n", " ") for h in header)
                                  for r in rows]
    _check_tickets("export.csv", "\n".join(lines).encode(), CFG)


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.lists(ROW, max_size=6), st.lists(values, max_size=3), values))
def test_ticket_json_import_never_crashes(doc):
    try:
        data = json.dumps(doc, indent=1).encode()
    except (ValueError, TypeError):
        return
    _check_tickets("export.json", data, CFG)


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300))
def test_ticket_import_of_random_bytes(data):
    _check_tickets("export.csv", data, CFG)
