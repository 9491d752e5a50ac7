"""`report --from/--to`, `--quarter`, `--year`: the report over several months (report/period.py)."""
from __future__ import annotations

import argparse

from ..calendar import Calendar
from ..config import Config
from ..report import ReportError
from ..report.signing import SigningError
from ..report.period import MAX_MONTHS, build_period_report, months_of, quarter, year
from ..timeutil import parse_month
from .common import EXIT_INPUT, EXIT_RUNTIME, err, state_dir, write_output
from .sealing import refuse_unsealed, unsealed_month


def add_arguments(choice: argparse._MutuallyExclusiveGroup, rep: argparse.ArgumentParser) -> None:
    """`choice`: the group of --month, one of which the report is over."""
    choice.add_argument("--from", dest="period_from", metavar="YYYY-MM", help=(
        "a report over several months, from this one to --to (default: the current month), at most "
        f"{MAX_MONTHS}: each month's rows as its own report has them, and the period's totals"))
    rep.add_argument("--to", dest="period_to", metavar="YYYY-MM", help="the last month of --from's period")
    choice.add_argument("--quarter", metavar="YYYY-Qn", help="the report over a quarter's three months (2026-Q4)")
    choice.add_argument("--year", metavar="YYYY", help="the report over a year's twelve months")


def asked(args: argparse.Namespace) -> bool:
    return bool(args.period_from or args.period_to or args.quarter or args.year)


def _span(args: argparse.Namespace, cfg: Config, now: float) -> tuple[str, str]:
    """The first and last month asked for. Raises ValueError naming the option."""
    if args.quarter:
        return _named("quarter", quarter, args.quarter)
    if args.year:
        return _named("year", year, args.year)
    if not args.period_from:
        raise ValueError("--to needs --from, the period's first month")
    last = args.period_to or "{:04d}-{:02d}".format(*Calendar(cfg.contract).month_of(now))
    for flag, month in (("from", args.period_from), ("to", last)):
        _named(flag, parse_month, month)
    return args.period_from.strip(), last.strip()


def _named(flag: str, parse, text: str):
    try:
        return parse(text)
    except ValueError as exc:  # its message says what a valid value is
        said = str(exc)
        raise ValueError(f"--{said}" if said.startswith(flag) else f"--{flag}: {said}") from None


def cmd_period(args: argparse.Namespace, cfg: Config, now: float) -> int:
    if args.location:
        err("--location reports one month over several places; a period's report reads this agent's ledger only: "
            "leave out --location, or ask for each month with --month")
        return EXIT_INPUT
    try:
        first, last = _span(args, cfg, now)
        months = months_of(cfg, first, last, now)
    except ValueError as exc:
        err(str(exc))
        return EXIT_INPUT
    state = state_dir(args, cfg)
    try:
        for month in months:  # each closed month from rows sealed final only, as `report --month` has it
            if missing := unsealed_month(cfg, state, month, now):
                refuse_unsealed(cfg, state, missing, month, "report")
                return EXIT_RUNTIME
        doc = build_period_report(cfg, state, first, last, now)
    except (ReportError, SigningError) as exc:  # a key this user cannot read
        err(str(exc))
        return EXIT_RUNTIME
    return write_output(args, doc, f"{first} to {last}")
