"""`sla-agent report close --month M [--rebuild]`: a month's close by hand (the running agent closes each
month itself, report/closing.py): its first revision when it has none, a new one with --rebuild (after a
ticket correction, say), beside the ones before and never over them."""
from __future__ import annotations

import argparse
import datetime as dt

from ..timeutil import parse_month
from .common import EXIT_INPUT, EXIT_OK, EXIT_RUNTIME, err, load, state_dir


def add_close(rep: argparse.ArgumentParser, config_arg) -> None:
    sub = rep.add_subparsers(dest="report_command", metavar="close")
    c = sub.add_parser("close", help="archive a closed month's report, PDF and bundle", description=(
        "Write an ended month's report in every format, signed, its PDF and its evidence bundle into "
        "STATE_DIR/reports/YYYY-MM/rN/, as the running agent does once the month is final. A month closed "
        "already is left as it is; --rebuild writes a new revision beside it, with changes.json saying which "
        "figures differ. The running agent hands the new revision to its delivery at its next look."))
    config_arg(c)
    c.add_argument("--month", metavar="YYYY-MM", required=True, help="the month to close")
    c.add_argument("--rebuild", action="store_true", help="write a new revision of a month closed already")


def cmd_close(args: argparse.Namespace) -> int:
    from ..calendar import Calendar
    from ..report import ReportError, open_store
    from ..report.archive import Archive
    from ..report.revision import inputs_hash, write_revision
    from .sealing import refuse_unsealed, unsealed_month

    cfg = load(args)
    if cfg is None:
        return EXIT_INPUT
    try:
        year, mon = parse_month(args.month)
    except ValueError as exc:
        err(f"--{exc}")
        return EXIT_INPUT
    state, now = state_dir(args, cfg), dt.datetime.now(dt.timezone.utc).timestamp()
    if Calendar(cfg.contract).month_bounds(year, mon)[1] > now:
        err(f"{args.month} has not ended: a month is closed once it has")
        return EXIT_INPUT
    archive = Archive(state)
    latest = archive.latest(args.month)
    if latest is not None and not args.rebuild:
        print(f"{args.month} is closed already: {latest.path} (--rebuild writes a new revision beside it)")
        return EXIT_OK
    if missing := unsealed_month(cfg, state, args.month, now):
        refuse_unsealed(cfg, state, missing, args.month, "close")
        return EXIT_RUNTIME
    try:
        store = open_store(cfg, state)
        try:
            inputs = inputs_hash(cfg, store, args.month)
        finally:
            store.close()
        why = "rebuilt by `sla-agent report close --rebuild`" if latest else "closed by `sla-agent report close`"
        rev = write_revision(cfg, state, args.month, now, archive, {"reason": why, "inputs": inputs})
    except ReportError as exc:
        err(str(exc))
        return EXIT_RUNTIME
    meta = rev.meta()
    print(f"{args.month} {rev.name} written to {rev.path} (PDF {meta['pdf']}; bundle {meta['bundle']}"
          + (f"; {meta['changes']} figures changed since r{rev.number - 1}, in changes.json)" if latest else ")"))
    return EXIT_OK
