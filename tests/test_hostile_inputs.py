"""Hostile input files and arguments: each is refused with a located error and exit 2, never a traceback,
and nothing refused leaves the ledger in a state later commands trip over."""
from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from agent.cli import main
from agent.export.server import _month_of
from agent.store import Store
from agent.timeutil import parse_month

BASE = 'targets: [{name: a, service: web, url: "http://127.0.0.1:9/"}]\n'


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
