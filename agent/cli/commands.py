"""The commands that run the agent or read its config and ledger: run, demo, check-config, report, rules."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from ..config import ConfigError, load_config, split_listen
from ..timeutil import parse_month
from . import period
from .common import EXIT_INPUT, EXIT_OK, EXIT_RUNTIME, err, load, print_issues, state_dir, write_output
from .sealing import refuse_unsealed, unsealed_month


def cmd_check_config(args: argparse.Namespace) -> int:
    if not args.file:
        err("check-config needs a FILE (or SLA_AGENT_CONFIG)")
        return EXIT_INPUT
    try:
        cfg = load_config(args.file, probing=False)  # what only `run` needs here is a warning
    except ConfigError as exc:
        print_issues(exc)
        print(f"{args.file}: {len(exc.issues)} error{'s' if len(exc.issues) != 1 else ''}", file=sys.stderr)
        return EXIT_INPUT
    for issue in cfg.warnings:
        print(f"{issue} (warning: `sla-agent run` needs it on this machine; reports do not)", file=sys.stderr)
    signer = _signer(cfg)
    if signer is None:
        return EXIT_INPUT
    print(f"{args.file}: OK: {len(cfg.targets)} targets in services {', '.join(cfg.services)}, "
          f"{len(cfg.controls)} control checks, timezone {cfg.contract.timezone}{signer}")
    return EXIT_OK


def _signer(cfg) -> str | None:
    """", signed by key ..." when the signing key loads as this user; None after saying why it does not:
    every report would fail on it later."""
    from ..report.signing import SigningError, key_id, load_private

    if not cfg.evidence.signing_key_file:
        return ""
    try:
        key = load_private(cfg.evidence.signing_key_file)
    except SigningError as exc:
        err(f"evidence.signing_key_file: {exc}")
        return None
    return f", reports signed by key {key_id(key.public_key())[:16]}... ({cfg.evidence.signing_key_file})"


def _event_loop_policy() -> str:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    except ImportError:
        return "asyncio"


def cmd_run(args: argparse.Namespace) -> int:
    from ..daemon import run_agent
    from ..probes import offloop
    from ..logs import setup
    from ..redact import Redactor

    cfg = load(args, probing=True)
    if cfg is None:
        return EXIT_INPUT
    setup(args.log_level or cfg.agent.log_level, Redactor(cfg.secrets))
    if args.listen:
        try:
            split_listen(args.listen)
        except ValueError as exc:
            err(str(exc))
            return EXIT_INPUT
        cfg = replace(cfg, agent=replace(cfg.agent, listen=args.listen))
    _event_loop_policy()
    code = asyncio.run(run_agent(cfg, state_dir=state_dir(args, cfg), config_path=args.config))
    if offloop.running():  # a regular expression still searching a vendor's answer: it cannot be stopped,
        logging.shutdown()  # and the ledger is flushed already
        sys.stdout.flush()
        os._exit(code)
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo.run import run_demo

    _event_loop_policy()
    return asyncio.run(run_demo(args))


def cmd_simulate(args: argparse.Namespace) -> int:
    from ..demo.run import run_simulator

    _event_loop_policy()
    return asyncio.run(run_simulator(args))


def _verify(args: argparse.Namespace, cfg, state: str) -> int:
    from ..report import ReportError, verify_report
    from ..report.period import is_period, verify_period
    from ..report.signing import SigningError, pinned
    from ..report.verify import report_key

    try:
        doc = json.loads(Path(args.verify).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        err(f"cannot read {args.verify}: {exc}")
        return EXIT_INPUT
    try:
        key = report_key(cfg, pinned(args.key) if args.key else None)
        problems = (verify_period if is_period(doc) else verify_report)(cfg, state, doc, key)
    except (ReportError, SigningError) as exc:
        err(str(exc))
        return EXIT_INPUT
    print(f"{args.verify}: " + (f"signature checked against {key.origin} (fingerprint {key.fingerprint})" if key
                                else "no key to check a signature with (evidence.public_key_file, --key)"))
    for p in problems:
        print(f"{args.verify}: MISMATCH: {p}", file=sys.stderr)
    if problems:
        return EXIT_RUNTIME
    print(f"{args.verify}: verified: the numbers and the evidence match the stored ledger")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from ..calendar import Calendar
    from ..report import ReportError, build_report
    from ..report.signing import SigningError

    if getattr(args, "report_command", None) == "close":
        from .close import cmd_close
        return cmd_close(args)
    cfg = load(args)
    if cfg is None:
        return EXIT_INPUT
    if args.verify:
        return _verify(args, cfg, state_dir(args, cfg))
    if args.format == "pdf" and not args.output:
        err("--format pdf needs --output FILE.pdf")
        return EXIT_INPUT
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    if period.asked(args):
        return period.cmd_period(args, cfg, now)
    month = args.month or "{:04d}-{:02d}".format(*Calendar(cfg.contract).month_of(now))
    try:
        parse_month(month)
    except ValueError as exc:  # its message says what a valid month is
        err(f"--{exc}")
        return EXIT_INPUT
    try:
        if args.location:
            doc = _over_locations(args, cfg, month, now)
        elif missing := unsealed_month(cfg, state_dir(args, cfg), month, now):
            refuse_unsealed(cfg, state_dir(args, cfg), missing, month, "report")
            return EXIT_RUNTIME
        else:
            doc = build_report(cfg, state_dir(args, cfg), month, now)
    except (ReportError, SigningError) as exc:
        err(str(exc))
        return EXIT_RUNTIME
    return write_output(args, doc, month)


def _over_locations(args: argparse.Namespace, cfg, month: str, now: float) -> dict:
    """The report over several locations; what each agent said of the ledger it served goes to stderr."""
    from ..report.combined import report_over

    doc, locations = report_over(cfg, args.location, state_dir(args, cfg), month, now, args.ca_file)
    for loc in locations:
        served = loc.pulled
        if not served:
            print(f"location {loc.name}: read from {loc.source}", file=sys.stderr)
            continue
        sig = ("not signed" if "signed_by" not in served else
               f"signed by key {served['signed_by'][:16]}...: " +
               ("signature valid" if served["signature_valid"] else "SIGNATURE INVALID"))
        check = "hash as served" if served["hash_matches"] else "HASH DIFFERS FROM WHAT THE AGENT SENT"
        print(f"location {loc.name}: pulled from {loc.source} ({served['sha256'][:16]}..., {check}; {sig})",
              file=sys.stderr)
    return doc


def cmd_rules(args: argparse.Namespace) -> int:
    from ..rules import write_all

    cfg = load(args)
    if cfg is None:
        return EXIT_INPUT
    for path in write_all(cfg, Path(args.output_dir)):
        print(path)
    return EXIT_OK
