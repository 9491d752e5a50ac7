"""The command line: help, version, maintenance windows, exit statuses."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent import __version__
from agent.cli import main
from agent.probes.browser import spec as browser_spec

BASE = 'targets: [{name: a, service: web, url: "http://127.0.0.1:9/"}]\n'


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and __version__ in capsys.readouterr().out
    for cmd in (["--help"], ["run", "--help"], ["demo", "--help"], ["report", "--help"], ["rules", "--help"],
                ["tickets", "import", "--help"], ["maintenance", "add", "--help"], ["check-config", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(cmd)
        assert e.value.code == 0
        assert "usage: sla-agent" in capsys.readouterr().out


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", "--format", "docx"])
    assert e.value.code == 2
    assert main([]) == 2
    assert main(["check-config", "/nonexistent.yaml"]) == 2
    assert "cannot read the file" in capsys.readouterr().err


def test_maintenance_add_list_remove_and_the_report_uses_it(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE)
    common = ["--config", str(cfg), "--state-dir", str(tmp_path / "s")]
    assert main(["maintenance", "add", *common, "--start", "2026-11-24T22:00", "--end", "2026-11-25T01:00",
                 "--reason", "announced upgrade"]) == 0
    assert "window 1 added: maintenance 2026-11-24T22:00:00+01:00 -> 2026-11-25T01:00:00+01:00" in capsys.readouterr().out
    assert main(["maintenance", "add", *common, "--kind", "exclusion", "--start", "2026-11-26T10:00:00Z",
                 "--end", "2026-11-26T11:00:00Z", "--reason", "ISP outage"]) == 0
    capsys.readouterr()
    assert main(["maintenance", "list", *common]) == 0
    out = capsys.readouterr().out
    assert "Thu 06:00-08:00 (+01:00)" in out and "announced upgrade" in out and "ISP outage" in out
    assert main(["report", *common, "--month", "2026-11", "--format", "json", "--output", str(tmp_path / "r.json")]) == 0
    import json
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [x["reason"] for x in doc["exclusions"]] == ["ISP outage"]
    assert "announced upgrade" in [x["reason"] for x in doc["maintenance"]]
    assert main(["maintenance", "remove", *common, "1"]) == 0
    assert main(["maintenance", "remove", *common, "1"]) == 2
    assert main(["maintenance", "add", *common, "--start", "2026-11-24T22:00", "--end", "2026-11-24T21:00",
                 "--reason", "x"]) == 2


def test_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "agent", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("sla-agent ")


def test_a_mistyped_flag_gets_the_usage_of_its_own_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--confg", "x.yaml"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("usage: sla-agent run ") and "unrecognized arguments: --confg" in err
    with pytest.raises(SystemExit):
        main(["evidence", "export", "--bogus"])
    assert capsys.readouterr().err.startswith("usage: sla-agent evidence export ")


def test_commands_that_only_read_the_ledger_need_no_chromium(tmp_path, monkeypatch, capsys):
    """A report host has no browser: only `run` (and `demo`) start one; check-config warns."""
    monkeypatch.setattr(browser_spec, "CHROMIUM_PATHS", ())  # none where distributions put it
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # nor on PATH
    assert browser_spec.find_chromium() is None
    config = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"  # a browser target, no executable_path
    common = ["--config", str(config), "--state-dir", str(tmp_path / "s")]
    commands = [
        ["maintenance", "add", *common, "--start", "2026-11-24T22:00", "--end", "2026-11-25T01:00", "--reason", "x"],
        ["maintenance", "list", *common],
        ["tickets", "list", *common],
        ["report", *common, "--month", "2026-11", "--format", "json", "--output", str(tmp_path / "r.json")],
        ["evidence", "verify", *common],
        ["evidence", "export", *common, "--month", "2026-11", "--output", str(tmp_path / "b.tar.gz")],
        ["rules", "--config", str(config), "--output-dir", str(tmp_path / "rules")],
    ]
    seen = []
    for argv in commands:
        code = main(argv)
        seen.append((argv[0:2], code, capsys.readouterr().err))
    assert [(cmd, code) for cmd, code, _ in seen] == [(argv[0:2], 0) for argv in commands], seen
    assert not any("Chromium" in err for _, _, err in seen)
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr()
    assert "OK" in out.out
    assert re.search(rf"^{re.escape(str(config))}:\d+: targets\[1\]\.executable_path: no Chromium found .*warning",
                     out.err, re.M), out.err
    assert main(["run", *common]) == 2  # the one that probes refuses, as before
    err = capsys.readouterr().err
    assert "targets[1].executable_path: no Chromium found" in err and "warning" not in err


def _helpless(parser, path: str) -> list[str]:
    """Every command without a help line or a description, every option and argument without a help."""
    import argparse

    out = []
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in a._choices_actions}
            for name, sub in a.choices.items():
                out += [f"{path} {name}: no {what}" for what, text in (("help", helps.get(name)),
                                                                       ("description", sub.description))
                        if not (text or "").strip()]
                out += _helpless(sub, f"{path} {name}")
        elif a.help != argparse.SUPPRESS and not (a.help or "").strip():
            out.append(f"{path} {'/'.join(a.option_strings) or a.dest}: no help")
    return out


def test_every_command_and_option_has_a_help():
    from agent.cli import build_parser

    parser = build_parser()
    assert len([a for a in parser._actions if a.option_strings]) >= 2  # the walk sees the options
    assert _helpless(parser, "sla-agent") == []


def test_tickets_import_help_lists_the_columns(capsys):
    with pytest.raises(SystemExit):
        main(["tickets", "import", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert all(c in said for c in ("id", "priority", "opened_at", "responded_at", "workaround_at", "resolved_at",
                                   "closed_at", "contract.tickets.columns"))
