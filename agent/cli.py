"""The `sla-agent` command. Exit status: 0 success; 1 runtime failure; 2 bad usage, config or input."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path
from typing import Sequence

from . import __version__

EXIT_OK, EXIT_RUNTIME, EXIT_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit status is 2 as well; keep the text short
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INPUT)


def _config_arg(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--config", "-c", metavar="FILE", default=os.environ.get("SLA_AGENT_CONFIG"),
                   help="configuration file (default: $SLA_AGENT_CONFIG)")
    p.add_argument("--state-dir", metavar="DIR", default=os.environ.get("SLA_AGENT_STATE_DIR"),
                   help="directory of the ledger database (default: $SLA_AGENT_STATE_DIR, then agent.state_dir)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sla-agent", description=(
        "Synthetic uptime and latency monitoring that proves, or disproves, a vendor's SLA. It probes the "
        "vendor's web interface and API, keeps an exact ledger of every result, masks maintenance windows, "
        "exports Prometheus metrics and writes the monthly SLA report."),
        epilog="Exit status: 0 success, 1 runtime failure, 2 bad usage, config or input. "
               "Start with `sla-agent demo`.")
    p.add_argument("--version", action="version", version=f"sla-agent {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    r = sub.add_parser("run", help="run the monitoring daemon", description=(
        "Run the daemon: probe every target on its fixed-rate schedule, record results in the ledger, serve "
        "/metrics, /healthz, /readyz, /api/v1/status and /report. SIGTERM stops it cleanly (in-flight probes "
        "finish, the ledger is flushed); SIGHUP reloads the configuration (a bad one is refused and logged)."))
    _config_arg(r)
    r.add_argument("--listen", metavar="HOST:PORT", help="override agent.listen")
    r.add_argument("--log-level", choices=("debug", "info", "warning", "error"))

    d = sub.add_parser("demo", help="run the agent against a built-in simulated web UI and API", description=(
        "Start a simulated CRM web interface and API on 127.0.0.1 (lognormal latency with a slow tail, "
        "occasional errors and short outages) and the agent against them. Prints where the metrics and the "
        "report are, and a live summary per target."))
    d.add_argument("--duration", type=float, metavar="SECONDS", help="stop by itself after this long")
    d.add_argument("--state-dir", metavar="DIR", default=os.environ.get("SLA_AGENT_STATE_DIR"),
                   help="ledger directory (default: ./sla-demo-state)")
    d.add_argument("--summary-every", type=float, default=5.0, metavar="SECONDS", help="live summary period")
    d.add_argument("--error-rate", type=float, default=None, help="share of simulated 500 answers (0.002)")
    d.add_argument("--outage-every", type=float, default=None, metavar="SECONDS",
                   help="seconds between simulated outages (240; 0 = none)")
    d.add_argument("--outage-seconds", type=float, default=None, help="length of an outage (20)")
    d.add_argument("--slow-share", type=float, default=None, help="share of requests in the slow tail (0.015)")
    d.add_argument("--seed", type=int, default=None, help="random seed for a repeatable run")

    c = sub.add_parser("check-config", help="validate a configuration file", description=(
        "Validate a configuration file. Every error is printed as FILE:LINE: field.path: message."))
    c.add_argument("file", metavar="FILE", nargs="?", default=os.environ.get("SLA_AGENT_CONFIG"))

    rep = sub.add_parser("report", help="write the monthly SLA report", description=(
        "Fill the contract's table with the measured values for a month, with the evidence behind each "
        "row. Works while the daemon runs. With --verify, check that a JSON report still matches the ledger."))
    _config_arg(rep)
    rep.add_argument("--month", metavar="YYYY-MM", help="the month (default: the current month)")
    rep.add_argument("--format", "-f", choices=("text", "json", "markdown", "html", "csv"), default="text")
    rep.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    rep.add_argument("--verify", metavar="REPORT.json", help="verify a JSON report against the stored ledger")

    ru = sub.add_parser("rules", help="generate Prometheus rules and the Grafana dashboard", description=(
        "Generate Prometheus recording and alerting rules, an Alertmanager config and a Grafana dashboard from "
        "the configuration, so the alerts measure exactly what the report measures."))
    _config_arg(ru)
    ru.add_argument("--output-dir", "-o", metavar="DIR", required=True)

    t = sub.add_parser("tickets", help="support tickets (rows 4-6)", description="Support tickets (rows 4-6).")
    tsub = t.add_subparsers(dest="tickets_command", metavar="ACTION", parser_class=_Parser)
    ti = tsub.add_parser("import", help="load a support-tool export (CSV or JSON), idempotent by ticket id",
                         description="Load a support-tool export (CSV with a header line, or a JSON list). The whole "
                                     "file is validated first: one bad line rejects it all, every bad line listed.")
    _config_arg(ti)
    ti.add_argument("export", metavar="EXPORT", help="EXPORT.csv or EXPORT.json")
    tl = tsub.add_parser("list", help="list stored tickets with their business response time")
    _config_arg(tl)
    tl.add_argument("--month", metavar="YYYY-MM")

    m = sub.add_parser("maintenance", help="declared maintenance and exclusion windows", description=(
        "Declare windows outside the weekly maintenance: planned maintenance announced by the vendor, or "
        "exclusions (network incident outside the vendor's control, force majeure). Kept in the state "
        "database; the running daemon picks them up within a minute."))
    msub = m.add_subparsers(dest="maintenance_command", metavar="ACTION", parser_class=_Parser)
    ma = msub.add_parser("add", help="declare a window")
    _config_arg(ma)
    ma.add_argument("--start", required=True, help="ISO 8601; without an offset it is read in the contract time zone")
    ma.add_argument("--end", required=True)
    ma.add_argument("--reason", required=True, help="why (shown in the report)")
    ma.add_argument("--kind", choices=("maintenance", "exclusion"), default="maintenance")
    ml = msub.add_parser("list", help="list declared windows")
    _config_arg(ml)
    mr = msub.add_parser("remove", help="remove a declared window by id")
    _config_arg(mr)
    mr.add_argument("id", type=int)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_INPUT
    from . import logs

    logs.setup(getattr(args, "log_level", None) or "info")
    handler = {
        "run": cmd_run, "demo": cmd_demo, "check-config": cmd_check_config, "report": cmd_report,
        "rules": cmd_rules, "tickets": cmd_tickets, "maintenance": cmd_maintenance,
    }[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return EXIT_RUNTIME
    except BrokenPipeError:
        return EXIT_OK


def _err(message: str) -> None:
    print(f"sla-agent: {message}", file=sys.stderr)


def _load(args: argparse.Namespace):
    from .config import ConfigError, load_config

    if not args.config:
        _err("no configuration: pass --config FILE or set SLA_AGENT_CONFIG")
        return None
    try:
        return load_config(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None


def _state_dir(args: argparse.Namespace, cfg) -> str:
    return args.state_dir or cfg.agent.state_dir


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config

    if not args.file:
        _err("check-config needs a FILE (or SLA_AGENT_CONFIG)")
        return EXIT_INPUT
    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{args.file}: {len(exc.issues)} error{'s' if len(exc.issues) != 1 else ''}", file=sys.stderr)
        return EXIT_INPUT
    print(f"{args.file}: OK: {len(cfg.targets)} targets in services {', '.join(cfg.services)}, "
          f"{len(cfg.controls)} control checks, timezone {cfg.contract.timezone}")
    return EXIT_OK


def _event_loop_policy() -> str:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    except ImportError:
        return "asyncio"


def cmd_run(args: argparse.Namespace) -> int:
    from .app import run_agent
    from .logs import set_redactor, setup
    from .redact import Redactor

    cfg = _load(args)
    if cfg is None:
        return EXIT_INPUT
    setup(args.log_level or cfg.agent.log_level, Redactor(cfg.secrets))
    if args.listen:
        from dataclasses import replace

        from .config import split_listen

        try:
            split_listen(args.listen)
        except ValueError as exc:
            _err(str(exc))
            return EXIT_INPUT
        cfg = replace(cfg, agent=replace(cfg.agent, listen=args.listen))
    set_redactor(Redactor(cfg.secrets))
    _event_loop_policy()
    return asyncio.run(run_agent(cfg, state_dir=_state_dir(args, cfg), config_path=args.config))


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.run import run_demo

    _event_loop_policy()
    return asyncio.run(run_demo(args))


_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def cmd_report(args: argparse.Namespace) -> int:
    from .report import ReportError, build_report, verify_report
    from .report.render import render

    cfg = _load(args)
    if cfg is None:
        return EXIT_INPUT
    state = _state_dir(args, cfg)
    if args.verify:
        try:
            doc = json.loads(Path(args.verify).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            _err(f"cannot read {args.verify}: {exc}")
            return EXIT_INPUT
        try:
            problems = verify_report(cfg, state, doc)
        except ReportError as exc:
            _err(str(exc))
            return EXIT_INPUT
        if problems:
            for p in problems:
                print(f"{args.verify}: MISMATCH: {p}", file=sys.stderr)
            return EXIT_RUNTIME
        print(f"{args.verify}: verified: the numbers and the evidence match the stored ledger")
        return EXIT_OK
    month = args.month
    if month is None:
        from .calendar import Calendar

        y, mo = Calendar(cfg.contract).month_of(dt.datetime.now(dt.timezone.utc).timestamp())
        month = f"{y:04d}-{mo:02d}"
    if not _MONTH.match(month):
        _err(f"--month must be YYYY-MM, got {month!r}")
        return EXIT_INPUT
    try:
        doc = build_report(cfg, state, month, dt.datetime.now(dt.timezone.utc).timestamp())
    except ReportError as exc:
        _err(str(exc))
        return EXIT_RUNTIME
    text = render(doc, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"report for {month} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_rules(args: argparse.Namespace) -> int:
    from .rules import write_all

    cfg = _load(args)
    if cfg is None:
        return EXIT_INPUT
    for path in write_all(cfg, Path(args.output_dir)):
        print(path)
    return EXIT_OK


def cmd_tickets(args: argparse.Namespace) -> int:
    if args.tickets_command is None:
        _err("tickets needs an action: import or list")
        return EXIT_INPUT
    from .report.tickets import ImportError_, cmd_list, import_file

    cfg = _load(args)
    if cfg is None:
        return EXIT_INPUT
    if args.tickets_command == "list":
        return cmd_list(cfg, _state_dir(args, cfg), args.month)
    try:
        inserted, updated = import_file(cfg, _state_dir(args, cfg), Path(args.export))
    except ImportError_ as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"{args.export}: rejected, nothing imported ({len(exc.problems)} problem"
              f"{'s' if len(exc.problems) != 1 else ''})", file=sys.stderr)
        return EXIT_INPUT
    print(f"{args.export}: {inserted} tickets added, {updated} updated")
    return EXIT_OK


def cmd_maintenance(args: argparse.Namespace) -> int:
    if args.maintenance_command is None:
        _err("maintenance needs an action: add, list or remove")
        return EXIT_INPUT
    from .calendar import Calendar, iso
    from .store import Store, StoreError
    from .timeutil import parse_instant

    cfg = _load(args)
    if cfg is None:
        return EXIT_INPUT
    cal = Calendar(cfg.contract)
    try:
        store = Store(_state_dir(args, cfg), thresholds=cfg.contract.thresholds)
    except StoreError as exc:
        _err(str(exc))
        return EXIT_RUNTIME
    try:
        if args.maintenance_command == "add":
            try:
                start = parse_instant(args.start, cal.tz).timestamp()
                end = parse_instant(args.end, cal.tz).timestamp()
            except ValueError:
                _err("--start and --end must be ISO 8601 date-times, e.g. 2026-12-01T22:00 or 2026-12-01T22:00:00+01:00")
                return EXIT_INPUT
            if end <= start:
                _err("--end must be later than --start")
                return EXIT_INPUT
            if not args.reason.strip():
                _err("--reason must say why")
                return EXIT_INPUT
            wid = store.add_window(args.kind, start, end, args.reason.strip())
            print(f"window {wid} added: {args.kind} {iso(start, cal.tz)} -> {iso(end, cal.tz)}: {args.reason}")
        elif args.maintenance_command == "list":
            rows = store.windows()
            print("weekly (config): " + ", ".join(
                f"{['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][w.day]} {w.start:%H:%M}-{w.end:%H:%M}"
                for w in cfg.contract.weekly) + f" ({cfg.contract.timezone})")
            for w in cfg.contract.windows:
                print(f"config  {w.kind:<11} {w.start.isoformat()} -> {w.end.isoformat()}  {w.reason}")
            for wid, w in rows:
                print(f"{wid:<7} {w.kind:<11} {iso(w.start, cal.tz)} -> {iso(w.end, cal.tz)}  {w.reason}")
        else:
            if not store.remove_window(args.id):
                _err(f"no declared window with id {args.id} (see `sla-agent maintenance list`)")
                return EXIT_INPUT
            print(f"window {args.id} removed")
    finally:
        store.close()
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
