"""The commands that keep records in the ledger database beside the running daemon: tickets (rows 4-6)
and declared maintenance or exclusion windows."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from ..calendar import Calendar, iso
from ..calendar.business import BusinessHours
from ..config import Config, TicketResponseSpec
from ..store import Store, StoreError
from ..tickets import MAX_FILE_BYTES, TicketFileError, evaluate_ticket, parse_export
from ..timeutil import parse_instant, parse_month
from .common import EXIT_INPUT, EXIT_OK, EXIT_RUNTIME, err, load, state_dir

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _open(args: argparse.Namespace, cfg: Config) -> Store | None:
    try:
        return Store(state_dir(args, cfg), thresholds=cfg.contract.thresholds)
    except StoreError as exc:
        err(str(exc))
        return None


def _read_export(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TicketFileError([f"{path}:1: the file is {size} bytes; the limit is {MAX_FILE_BYTES}"])
        return path.read_bytes()
    except OSError as exc:
        raise TicketFileError([f"{path}:1: cannot read the file: {exc.strerror or exc}"]) from None


def _import(args: argparse.Namespace, cfg: Config) -> int:
    try:
        tickets = parse_export(cfg, args.export, _read_export(Path(args.export)))
    except TicketFileError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"{args.export}: rejected, nothing imported ({len(exc.problems)} problem"
              f"{'s' if len(exc.problems) != 1 else ''})", file=sys.stderr)
        return EXIT_INPUT
    store = _open(args, cfg)
    if store is None:
        return EXIT_RUNTIME
    try:
        inserted, updated = store.upsert_tickets(tickets)
    finally:
        store.close()
    print(f"{args.export}: {inserted} tickets added, {updated} updated, {len(tickets) - inserted - updated} unchanged")
    return EXIT_OK


def _list(args: argparse.Namespace, cfg: Config) -> int:
    cal = Calendar(cfg.contract)
    span = cal.month_bounds(*parse_month(args.month)) if args.month else (None, None)
    store = _open(args, cfg)
    if store is None:
        return EXIT_RUNTIME
    try:
        tickets = store.tickets(*span)
    finally:
        store.close()
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    bh = BusinessHours(cfg.contract)
    deadlines = {s.priority: s.deadline_s for s in cfg.contract.objectives if isinstance(s, TicketResponseSpec)}
    print(f"{'id':<14} {'prio':<4} {'opened':<25} {'responded':<25} {'business h':>10} {'limit h':>7}  state")
    for t in tickets:
        if t.priority not in deadlines:
            continue
        o = evaluate_ticket(t, bh, deadlines[t.priority], now)
        d = o.to_dict(cal.tz)
        print(f"{t.id:<14} {t.priority:<4} {d['opened_at']:<25} {d['responded_at'] or '-':<25} "
              f"{d['business_response_h']:>10.2f} {d['deadline_h']:>7g}  {o.state}")
    return EXIT_OK


def _remove(args: argparse.Namespace, cfg: Config) -> int:
    store = _open(args, cfg)
    if store is None:
        return EXIT_RUNTIME
    try:
        removed = store.remove_tickets(args.ids)
    finally:
        store.close()
    for i in removed:
        print(f"ticket {i} removed")
    missing = [i for i in dict.fromkeys(args.ids) if i not in removed]
    for i in missing:
        err(f"no stored ticket with id {i!r} (see `sla-agent tickets list`)")
    return EXIT_RUNTIME if missing else EXIT_OK


def cmd_tickets(args: argparse.Namespace) -> int:
    if args.tickets_command is None:
        err("tickets needs an action: import, list or remove")
        return EXIT_INPUT
    cfg = load(args)
    if cfg is None:
        return EXIT_INPUT
    if args.tickets_command == "list":
        if args.month:
            try:
                parse_month(args.month)
            except ValueError as exc:
                err(f"--{exc}")
                return EXIT_INPUT
        return _list(args, cfg)
    if args.tickets_command == "remove":
        return _remove(args, cfg)
    return _import(args, cfg)


def _add_window(args: argparse.Namespace, store: Store, cal: Calendar) -> int:
    try:
        start = parse_instant(args.start, cal.tz).timestamp()
        end = parse_instant(args.end, cal.tz).timestamp()
    except ValueError:
        err("--start and --end must be ISO 8601 date-times, e.g. 2026-12-01T22:00 or 2026-12-01T22:00:00+01:00")
        return EXIT_INPUT
    if end <= start:
        err("--end must be later than --start")
        return EXIT_INPUT
    if not args.reason.strip():
        err("--reason must say why")
        return EXIT_INPUT
    wid = store.add_window(args.kind, start, end, args.reason.strip())
    print(f"window {wid} added: {args.kind} {iso(start, cal.tz)} -> {iso(end, cal.tz)}: {args.reason}")
    return EXIT_OK


def _list_windows(store: Store, cfg: Config, cal: Calendar) -> int:
    print("weekly (config): " + ", ".join(f"{DAY_NAMES[w.day]} {w.start:%H:%M}-{w.end:%H:%M}"
                                          for w in cfg.contract.weekly) + f" ({cfg.contract.timezone})")
    for w in cfg.contract.windows:
        print(f"config  {w.kind:<11} {w.start.isoformat()} -> {w.end.isoformat()}  {w.reason}")
    for wid, w in store.windows():
        print(f"{wid:<7} {w.kind:<11} {iso(w.start, cal.tz)} -> {iso(w.end, cal.tz)}  {w.reason}")
    return EXIT_OK


def cmd_maintenance(args: argparse.Namespace) -> int:
    if args.maintenance_command is None:
        err("maintenance needs an action: add, list or remove")
        return EXIT_INPUT
    cfg = load(args)
    if cfg is None:
        return EXIT_INPUT
    store = _open(args, cfg)
    if store is None:
        return EXIT_RUNTIME
    cal = Calendar(cfg.contract)
    try:
        if args.maintenance_command == "add":
            return _add_window(args, store, cal)
        if args.maintenance_command == "list":
            return _list_windows(store, cfg, cal)
        if not store.remove_window(args.id):
            err(f"no declared window with id {args.id} (see `sla-agent maintenance list`)")
            return EXIT_INPUT
        print(f"window {args.id} removed")
        return EXIT_OK
    finally:
        store.close()
