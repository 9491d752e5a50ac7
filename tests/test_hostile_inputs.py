"""Hostile input files and arguments: each is refused with a located error and exit 2, never a traceback,
and nothing refused leaves the ledger in a state later commands trip over."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from agent.cli import main
from agent.config import ConfigError, parse_config
from agent.export.server import _month_of
from agent.store import Store
from agent.tickets import TicketFileError, parse_export
from agent.timeutil import parse_month

from .conftest import ROOT

BASE = 'targets: [{name: a, service: web, url: "http://127.0.0.1:9/"}]\n'
CSV_HEAD = "id,priority,opened_at,responded_at\n"
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # the limits docs/checks.md states
MAX_TARGETS = 10_000


def _run(args: list[str], env: dict[str, str] | None = None, memory: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:  # a runaway read dies here instead of taking the test machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, **(env or {})}, preexec_fn=limit if memory else None)


# -- A: the config's size -------------------------------------------------------------------------
def test_check_config_of_dev_zero_is_refused_without_reading_it_all():
    proc = _run(["check-config", "/dev/zero"], memory=2 << 30)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"/dev/zero:1: the file is larger than {MAX_CONFIG_BYTES} bytes" in proc.stderr


def test_config_file_over_the_size_limit_names_its_size(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text(BASE + "#" * MAX_CONFIG_BYTES + "\n")
    assert main(["check-config", str(big)]) == 2
    err = capsys.readouterr().err
    assert f"{big}:1: the file is {MAX_CONFIG_BYTES + len(BASE) + 1} bytes; a config file may hold at most " \
           f"{MAX_CONFIG_BYTES}" in err


def _targets(n: int, first: int = 0) -> str:
    return "".join(f'  - {{name: t{i}, service: web, url: "http://127.0.0.1:9/"}}\n' for i in range(first, first + n))


def test_too_many_targets_is_one_located_error():
    with pytest.raises(ConfigError) as exc:
        parse_config("agent: {rate_limit: 5}\ntargets:\n" + _targets(MAX_TARGETS + 1))
    assert [str(i) for i in exc.value.issues] == [
        f"<config>:3: targets: holds {MAX_TARGETS + 1} entries; targets and controls together may be at most "
        f"{MAX_TARGETS} (split the config between agents)"]
    with pytest.raises(ConfigError) as exc:
        parse_config("targets:\n" + _targets(MAX_TARGETS - 1) + "controls:\n" + _targets(2, MAX_TARGETS))
    assert [(i.line, i.path) for i in exc.value.issues] == [(MAX_TARGETS + 2, "controls")]
    assert len(parse_config("targets:\n" + _targets(MAX_TARGETS)).targets) == MAX_TARGETS


# -- B: months ------------------------------------------------------------------------------------
@pytest.mark.parametrize("month", ["9999-12", "0001-01", "0000-01", "1999-12", "2200-01"])
def test_months_outside_2000_to_2199_are_refused(month):
    with pytest.raises(ValueError) as exc:
        parse_month(month)
    assert str(exc.value) == f"month must be between 2000-01 and 2199-12, got {month!r}"


def test_month_13_says_the_month_is_01_to_12():
    with pytest.raises(ValueError) as exc:
        parse_month("2026-13")
    assert str(exc.value) == "month must be 01 to 12 in YYYY-MM, got '2026-13'"
    with pytest.raises(ValueError, match="must be YYYY-MM, such as 2026-11, got '26-1'"):
        parse_month("26-1")
    assert parse_month("2000-01") == (2000, 1) and parse_month("2199-12") == (2199, 12)


@pytest.mark.parametrize("command", [["report"], ["tickets", "list"], ["evidence", "export", "-o", "b.tar.gz"],
                                     ["evidence", "verify"]])
@pytest.mark.parametrize("month, says", [("9999-12", "between 2000-01 and 2199-12"), ("0000-01", "between"),
                                         ("2026-13", "01 to 12")])
def test_cli_month_out_of_range_exits_2(tmp_path, capsys, command, month, says):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE)
    Store(tmp_path / "s", thresholds=(0.5, 1.0)).close()  # a ledger, so that the month is what fails
    argv = command[:2] + ["--config", str(cfg), "--state-dir", str(tmp_path / "s"), "--month", month] + command[2:]
    if "-o" in argv:
        argv[argv.index("-o") + 1] = str(tmp_path / "b.tar.gz")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sla-agent: --month must ") and says in err and month in err


def test_http_month_out_of_range_is_a_400():
    with pytest.raises(web.HTTPBadRequest):
        _month_of(make_mocked_request("GET", "/api/v1/report?month=9999-12"))


# -- C: ticket exports ----------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE)
    common = ["--config", str(cfg), "--state-dir", str(tmp_path / "s")]

    def run(*args: str) -> tuple[int, str, str]:
        code = main([args[0], args[1], *common, *args[2:]])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _import_refused(cli, path, content: str | bytes, *expected: str) -> None:
    """Refused with these located messages, and `tickets list` still works afterwards."""
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, _, err = cli("tickets", "import", str(path))
    assert code == 2, err
    assert "Traceback" not in err and "rejected, nothing imported" in err
    for e in expected:
        assert e in err
    code, out, err = cli("tickets", "list")
    assert code == 0, err
    assert out.count("\n") == 1  # the heading alone: nothing was imported


def test_csv_field_over_the_csv_limit_is_a_located_error(tmp_path, cli):
    text = CSV_HEAD + "A-1,P1,2026-11-24T10:00:00Z,\n" + '"' + "x" * (200 * 1024) + '",P1,2026-11-24T10:00:00Z,\n'
    _import_refused(cli, tmp_path / "e.csv", text,
                    f"{tmp_path / 'e.csv'}:3: a field is longer than 131072 characters")
    _import_refused(cli, tmp_path / "h.csv", CSV_HEAD.replace("id,", "id," + "x" * (200 * 1024) + ","),
                    f"{tmp_path / 'h.csv'}:1: a field is longer than 131072 characters")


def test_json_nested_very_deep_is_a_located_error(tmp_path, cli):
    text = '[\n{"id": "A-1", "priority": "P1", "opened_at": "2026-11-24T10:00:00Z"},\n' + "[" * 100_000 + "]" * 100_001
    _import_refused(cli, tmp_path / "e.json", text, f"{tmp_path / 'e.json'}:3: cannot be read: nested too deeply")


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00", "9999-12-31T23:00:00-10:00",
                                  "1999-12-31T23:59:59Z", "2200-01-01T00:00:00Z"])
def test_instants_outside_2000_to_2199_are_refused(tmp_path, cli, when):
    text = CSV_HEAD + f"A-1,P1,2026-11-24T10:00:00Z,\nA-2,P1,{when},\n"
    _import_refused(cli, tmp_path / "e.csv", text,
                    f"{tmp_path / 'e.csv'}:3: opened_at: must be between 2000-01-01 and 2199-12-31, got {when!r}")


@pytest.mark.parametrize("bad_id", ["A\x001", "A\n1", "A\r1", "A\t1", "A\x7f1", "A\x851"])
def test_control_characters_in_ticket_ids_are_refused(tmp_path, cli, bad_id):
    rows = [{"id": "A-0", "priority": "P1", "opened_at": "2026-11-24T10:00:00Z"},
            {"id": bad_id, "priority": "P1", "opened_at": "2026-11-24T10:00:00Z"}]
    where = tmp_path / "e.json"
    _import_refused(cli, where, "[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]",
                    f"{where}:3: id: must not hold control characters (such as a NUL or a line break), "
                    f"got {bad_id!r}")
    _import_refused(cli, tmp_path / "e.csv", CSV_HEAD + f'A-0,P1,2026-11-24T10:00:00Z,\n"{bad_id}",P1,'
                                                        f'2026-11-24T10:00:00Z,\n', "id: must not hold control")


def test_tickets_remove_deletes_stored_tickets_and_the_chain_still_verifies(tmp_path, cli):
    export = tmp_path / "e.csv"
    export.write_text(CSV_HEAD + "A-1,P1,2026-11-24T10:00:00Z,\nA-2,P2,2026-11-24T10:00:00Z,\n"
                                 "A-3,P3,2026-11-24T10:00:00Z,\n")
    assert cli("tickets", "import", str(export))[0] == 0
    code, out, _ = cli("tickets", "remove", "A-1", "A-3")
    assert code == 0 and out == "ticket A-1 removed\nticket A-3 removed\n"
    code, out, err = cli("tickets", "remove", "A-2", "A-9")
    assert code == 1
    assert out == "ticket A-2 removed\n"
    assert err == "sla-agent: no stored ticket with id 'A-9' (see `sla-agent tickets list`)\n"
    code, out, _ = cli("tickets", "list")
    assert code == 0 and out.count("\n") == 1
    code, out, err = cli("evidence", "verify")
    assert code == 0, err
    assert cli("tickets", "import", str(export))[0] == 0  # imported again after the removal: sealed again
    assert cli("evidence", "verify")[0] == 0
    assert cli("tickets", "list")[1].count("\n") == 4


def test_semicolon_and_tab_separated_exports_are_read():
    cfg = parse_config(BASE)
    for sep in (";", "\t"):
        text = CSV_HEAD.replace(",", sep) + sep.join(["A-1", "P1", "2026-11-24T10:00:00+01:00", ""]) + "\n"
        assert [(t.id, t.priority) for t in parse_export(cfg, "e.csv", text.encode())] == [("A-1", "P1")]


def test_export_with_another_delimiter_names_it():
    cfg = parse_config(BASE)
    with pytest.raises(TicketFileError) as exc:
        parse_export(cfg, "e.csv", b"id|priority|opened_at\nA-1|P1|2026-11-24T10:00:00Z\n")
    assert exc.value.problems == ["e.csv:1: the header line is separated by '|'; a CSV export must separate its "
                                  "columns with ',', ';' or a tab"]
    with pytest.raises(TicketFileError) as exc:
        parse_export(cfg, "e.csv", b"id;priority;opened\nA-1;P1;2026-11-24T10:00:00Z\n")
    assert exc.value.problems == ["e.csv:1: header lacks column opened_at (found, separated by ';': id, priority, "
                                  "opened); map names with contract.tickets.columns"]


# -- D: secrets in config errors ------------------------------------------------------------------
@pytest.mark.parametrize("value", ["user:s3cr3tPW@127.0.0.1:1/", "s3cr3tPW\\with'quote", "user:s3cr3tPW@[::1]/"])
def test_check_config_never_prints_an_environment_value(tmp_path, value):
    (tmp_path / "c.yaml").write_text('targets: [{name: a, service: web, url: "${SLA_URL}"}]\n')
    proc = _run(["check-config", str(tmp_path / "c.yaml")], env={"SLA_URL": value})
    assert proc.returncode == 2
    assert "s3cr3tPW" not in proc.stdout + proc.stderr
    assert "targets[0].url: must be an http:// or https:// URL, got " in proc.stderr and "<redacted>" in proc.stderr


def test_config_errors_drop_userinfo_of_urls_without_a_scheme(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text('targets: [{name: a, service: web, url: "ops:hunter2pw@127.0.0.1:1/"}]\n')
    assert main(["check-config", str(tmp_path / "c.yaml")]) == 2
    out = capsys.readouterr()
    assert "hunter2pw" not in out.out + out.err
    assert "got '<redacted>@127.0.0.1:1/'" in out.err
