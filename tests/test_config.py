"""The strict config loader: every invalid file in tests/data/config gives exactly its expected errors."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import ConfigError, load_config, parse_config

from .conftest import ROOT

BAD = sorted((ROOT / "tests" / "data" / "config").glob("bad-*.yaml"))


def test_enough_invalid_cases():
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_invalid_config_gives_exact_errors(path: Path):
    expected = [line.split("# expect: ", 1)[1].replace("{dir}", str(path.parent))
                for line in path.read_text().splitlines() if line.startswith("# expect: ")]
    assert expected, f"{path.name} has no '# expect:' lines"
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    got = [f"{i.line}: {i.path}: {i.message}" if i.path else f"{i.line}: {i.message}" for i in err.value.issues]
    assert got == expected
    for issue in err.value.issues:  # FILE:LINE: path: message
        assert re.match(rf"^{re.escape(str(path))}:\d+: ", str(issue))


@pytest.mark.parametrize("name", ["crm360.yaml", "demo.yaml"])
def test_shipped_configs_are_valid_and_packaged(name: str, capsys):
    assert main(["check-config", str(ROOT / "config" / name)]) == 0
    assert "OK" in capsys.readouterr().out
    packaged = ROOT / "agent" / "data" / name
    shipped = ROOT / "config" / name
    assert shipped.is_symlink() and shipped.resolve() == packaged.resolve(), "config/ must link to agent/data/"


def test_check_config_exit_2_and_errors_on_stderr(capsys):
    path = ROOT / "tests" / "data" / "config" / "bad-many-errors-at-once.yaml"
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: targets[0].url:" in err
    assert "4 errors" in err


def test_check_config_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "agent", "check-config", str(ROOT / "config" / "crm360.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_defaults_are_the_contracts():
    cfg = parse_config('targets: [{name: a, service: api, url: "http://127.0.0.1:1/", timeout: 2s, interval: 2s}]')
    c = cfg.contract
    assert c.timezone == "+01:00"
    assert [(w.day, w.start.hour, w.end.hour) for w in c.weekly] == [(3, 6, 8)]
    assert c.availability_objective == 0.99
    assert [(o.below, o.ratio) for o in c.latency_objectives] == [(0.5, 0.98), (1.0, 0.99)]
    assert dict(c.ticket_deadlines) == {"P1": 8 * 3600, "P2": 24 * 3600, "P3": 40 * 3600}
    assert cfg.agent.listen == "127.0.0.1:9810"


def test_secrets_from_env_and_files_are_collected(tmp_path):
    (tmp_path / "token").write_text("file-secret-value\n")
    cfg = parse_config(
        'targets:\n'
        '  - name: a\n    service: web\n    url: "https://user:urlpass99@127.0.0.1/"\n'
        '    headers: {X-Token: "Bearer ${TOKEN}"}\n'
        '    header_files: {X-Api-Key: token}\n',
        environ={"TOKEN": "env-secret-value"}, base_dir=tmp_path)
    assert {"env-secret-value", "file-secret-value", "urlpass99"} <= cfg.secrets
    assert ("X-Api-Key", "file-secret-value") in cfg.targets[0].options.headers


def test_max_in_flight_allows_interval_below_timeout():
    cfg = parse_config('targets: [{name: a, service: api, url: "http://127.0.0.1:1/", interval: 1s, timeout: 5s, '
                       'max_in_flight: 6}]')
    assert cfg.targets[0].interval == 1.0 and cfg.targets[0].timeout == 5.0


def test_max_in_flight_is_sized_so_a_hanging_target_never_skips_a_tick():
    """5 s every 1 s: five probes run while the sixth tick comes (the timeout fires a little after 5 s).
    Five slots, accepted before, skipped a tick each round; left out it is six, and five is an error."""
    cfg = parse_config('targets: [{name: a, service: api, url: "http://127.0.0.1:1/", interval: 1s, timeout: 5s}]')
    assert cfg.targets[0].max_in_flight == 6
    with pytest.raises(ConfigError, match=r"max_in_flight 5 leaves no free slot .* set max_in_flight >= 6"):
        parse_config('targets: [{name: a, service: api, url: "http://127.0.0.1:1/", interval: 1s, timeout: 5s, '
                     'max_in_flight: 5}]')
    web = parse_config('targets: [{name: w, service: web, url: "http://127.0.0.1:1/", interval: 5s, timeout: 10s}]')
    assert web.targets[0].max_in_flight == 3


def test_iana_and_offset_timezones():
    for tz in ("+01:00", "Europe/Paris", "UTC", "-05:30"):
        parse_config(f'contract: {{timezone: "{tz}"}}\ntargets: [{{name: a, service: web, url: "http://127.0.0.1:1/"}}]')


@pytest.mark.parametrize("yaml_text, message", [
    ('contract: {business_hours: {subdivision: ZZ}}\ntargets: [{name: a, service: web, url: "http://127.0.0.1:1/"}]',
     "subdivision: 'ZZ' is not a subdivision of FR's holiday calendar"),  # failed only at ticket evaluation
    ('targets: [{name: a, service: _control, url: "http://127.0.0.1:1/"}]',
     "service: must not start with '_'"),  # collided with the control checks' label
    ('targets: [{name: a, service: web, url: "http://127.0.0.1:1/", labels: {url: x, type: y}}]',
     "labels.type: is reserved"),  # silently overwrote sla_target_info's own labels
])
def test_values_that_broke_things_later_are_refused_at_load(yaml_text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(yaml_text)


def test_a_quoted_closed_day_is_the_same_date():
    """'"2026-12-24"' was refused with "must be a date YYYY-MM-DD, got '2026-12-24'"."""
    cfg = parse_config('contract: {business_hours: {closed_days: ["2026-12-24", 2026-12-31]}}\n'
                       'targets: [{name: a, service: web, url: "http://127.0.0.1:1/"}]')
    import datetime as dt
    assert cfg.contract.closed_days == (dt.date(2026, 12, 24), dt.date(2026, 12, 31))
    with pytest.raises(ConfigError, match="must be a date YYYY-MM-DD, got '24/12/2026'"):
        parse_config('contract: {business_hours: {closed_days: ["24/12/2026"]}}\n'
                     'targets: [{name: a, service: web, url: "http://127.0.0.1:1/"}]')


# pattern, text: where RE2 reads Python's syntax another way, the agent's regexes keep Python's meaning
PYTHON_MEANING = [
    (r"^ok$", "ok\n"), (r"\d+$", "total 42\n"), (r'"id": (\d+)$', '"id": 7\n'), (r"\s+$", "x \n\n"),
    (r"\w+", "café crème"), (r"\d", "x٣"), (r"\s", "a\u00a0b"), (r"[\w.]+", "é.x"), (r"[^\d]", "٣é"),
    (r"a{,2}", "aaa"), (r"x{}", "x{}"), (r"[[:alpha:]]+", ":a]"), (r"[]a]+", "]a"), (r"a\Z|b$", "a\nb\n"),
    (r"\u00e9|\N{EM DASH}", "—"), (r"\101", "A"), (r"[\b]", "\x08"), (r"(?#note)(?i)OK", "ok"),
    (r"(?P<n>\d+)", "n=12"), (r"(?s)a.b", "a\nb"), (r"(?m)^b$", "a\nb\nc"), (r"\bword\b", "a word."),
]


@pytest.mark.parametrize("pattern, text", PYTHON_MEANING)
def test_a_config_regex_finds_what_pythons_re_finds(pattern, text):
    cfg = parse_config('targets: [{name: a, service: web, url: "http://127.0.0.1:9/", body_regex: [%s]}]'
                       % json.dumps(pattern))
    ours, python = cfg.targets[0].options.body_regex[0].search(text), re.search(pattern, text)
    assert python is not None
    assert ours is not None and (ours.group(0), ours.groups()) == (python.group(0), python.groups())


def test_timestamping_is_read_with_its_defaults_and_a_valid_ca_file(tmp_path):
    from .tsa import make_ca

    ca = make_ca(tmp_path / "ca")
    cfg = parse_config(f"""
evidence:
  timestamping: {{tsa: ["https://u:${{TSA_PW}}@tsa.example.com/tsr"], ca_file: "{ca}"}}
targets: [{{name: api, service: api, url: "https://api.example.com/"}}]
""", environ={"TSA_PW": "tsa-secret-4410"})
    ts = cfg.evidence.timestamping
    assert (ts.tsa, ts.every, ts.ca_file, ts.timeout) == (("https://u:tsa-secret-4410@tsa.example.com/tsr",), 3600.0,
                                                          str(ca), 30.0)
    assert "tsa-secret-4410" in cfg.secrets  # redacted wherever text leaves the agent
    assert parse_config("targets: [{name: api, service: api, url: 'https://a.example.com/'}]").evidence.timestamping \
        is None


def test_tls_resume_is_off_unless_asked():
    cfg = parse_config('targets:\n'
                       '  - {name: a, service: api, url: "https://127.0.0.1:1/"}\n'
                       '  - {name: b, service: api, url: "https://127.0.0.1:1/", tls: {resume: true}}\n'
                       '  - {name: c, service: db, type: tcp, address: "127.0.0.1:1", tls: {resume: true}}\n')
    assert [t.options.tls.resume for t in cfg.targets] == [False, True, True]
