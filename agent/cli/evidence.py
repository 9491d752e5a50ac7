"""`sla-agent evidence verify | seal | export | keygen | rotate-key`."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from ..calendar import Calendar
from ..report import ReportError
from ..report.bundle import export_bundle
from ..report.method import describe
from ..report.unbundle import verify_bundle, write_journal
from ..report.signing import SigningError, key_id, keygen, load_public, pinned
from ..slo import seal_delay_of
from ..store import Store, StoreError
from ..store.lock import in_use
from ..timeutil import parse_month
from . import timestamps, witness
from .common import EXIT_INPUT, EXIT_OK, EXIT_RUNTIME, err, load, state_dir
from .sealing import cmd_seal, print_outside, refuse_unsealed, unsealed_month


def _month(args: argparse.Namespace, cal: Calendar) -> str | None:
    month = args.month or "{:04d}-{:02d}".format(*cal.month_of(time.time()))
    try:
        parse_month(month)
    except ValueError as exc:  # its message says what a valid month is
        err(f"--{exc}")
        return None
    return month


def _print_problems(what: str, problems: list[str]) -> int:
    for p in problems[:20]:
        print(f"{what}: MISMATCH: {p}", file=sys.stderr)
    if len(problems) > 20:
        print(f"{what}: ... and {len(problems) - 20} more", file=sys.stderr)
    return EXIT_RUNTIME if problems else EXIT_OK


def _verify_bundle(args: argparse.Namespace) -> int:
    path = args.bundle
    try:
        tsa_roots = timestamps.roots(args)
        found = verify_bundle(Path(path), pinned(args.key) if args.key else None, args.allow_unsigned, tsa_roots)
    except (ReportError, SigningError, ValueError) as exc:
        err(str(exc))
        return EXIT_INPUT
    key, problems, facts = found.key, found.problems, found.stats
    print(f"{path}: " + (f"signatures checked against {key.origin} (fingerprint {key.fingerprint})" if key
                         else "not signed"))
    for warning in found.warnings:
        print(f"{path}: WARNING: {warning}", file=sys.stderr)
    for line in describe(found.method) if found.method else ():
        print(f"{path}: {line}")
    more, seen = witness.on_bundle(path, args)
    problems, facts = problems + more, {**facts, **seen}
    problems += timestamps.missing(facts.get("time-stamps", 0), tsa_roots is not None)
    timestamps.show(path, facts.get("time-stamps", 0), tsa_roots is not None, facts.pop(timestamps.PROVEN, []))
    if not problems:
        print(f"{path}: verified: files, chain, journal, report and signatures agree "
              f"({', '.join(f'{k} {v}' for k, v in facts.items())})")
    return _print_problems(path, problems)


def _verify_store(args: argparse.Namespace) -> int:
    cfg = load(args)
    if cfg is None:
        return EXIT_INPUT
    cal = Calendar(cfg.contract)
    since = until = None
    if args.month:
        if (month := _month(args, cal)) is None:
            return EXIT_INPUT
        since, until = cal.month_bounds(*parse_month(month))
    running = in_use(state_dir(args, cfg))  # asked first: an agent stopping meanwhile seals what it wrote
    try:
        tsa_roots = timestamps.roots(args, cfg)
        store = Store(state_dir(args, cfg), thresholds=cfg.contract.thresholds, readonly=True)
    except (StoreError, ValueError) as exc:
        err(str(exc))
        return EXIT_INPUT if isinstance(exc, ValueError) else EXIT_RUNTIME
    try:
        problems, stats = store.verify(since, until, seal_delay_of(cfg))
        more, found_w = witness.on_ledger(store.conn, args, cfg)
        problems, stats = problems + more, {**stats, **found_w}
        proof = store.check_timestamps(tsa_roots)
        # on a running agent, what it should have sealed by now: final a seal delay ago (a journal record: a run
        # ago), with a flush and a minute to write the seal
        due = time.time() - cfg.agent.flush_interval - 60.0 if running and not args.month else None
        found = store.outside(since, until, due, seal_delay_of(cfg))
    finally:
        store.close()
    problems += proof.problems + timestamps.missing(proof.tokens, args.tsa_ca is not None)
    stats["time-stamps"] = proof.tokens
    timestamps.show(str(store.path), proof.tokens, proof.signatures_checked, proof.proven)
    failed = _print_problems(str(store.path), problems) != EXIT_OK
    return print_outside(str(store.path), stats, found, cal, "month" if args.month else
                         "running" if running else "stopped", failed)


def _export(args: argparse.Namespace) -> int:
    cfg = load(args)
    if cfg is None:
        return EXIT_INPUT
    if (month := _month(args, Calendar(cfg.contract))) is None:
        return EXIT_INPUT
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    try:
        missing = [] if args.location else unsealed_month(cfg, state_dir(args, cfg), month, now)
        if missing and not args.allow_unsealed:
            refuse_unsealed(cfg, state_dir(args, cfg), missing, month, "bundle")
            err("(--allow-unsealed makes the bundle anyway: its check then names them and fails)")
            return EXIT_RUNTIME
        doc = export_bundle(cfg, state_dir(args, cfg), month, now, Path(args.output), args.location, args.ca_file,
                            args.journal_lines)
    except (ReportError, SigningError) as exc:
        err(str(exc))
        return EXIT_RUNTIME
    sig = doc["evidence"].get("signature")
    print(f"{args.output}: evidence of {month} up to {doc['evidence']['cutoff']}, "
          + (f"signed by key {sig['key_sha256']}" if sig else "not signed (evidence.signing_key_file)"))
    return EXIT_OK


def _journal(args: argparse.Namespace) -> int:
    try:
        written = write_journal(Path(args.bundle), Path(args.output))
    except ReportError as exc:
        err(str(exc))
        return EXIT_RUNTIME
    for path, n in written:
        print(f"{path}: {n} records")
    return EXIT_OK


def cmd_evidence(args: argparse.Namespace) -> int:
    command = args.evidence_command
    if command is None:
        err("evidence needs an action: verify, seal, export, journal, keygen or rotate-key")
        return EXIT_INPUT
    if command == "keygen":
        try:
            private, public = keygen(args.output)
        except (SigningError, OSError) as exc:
            err(str(exc))
            return EXIT_RUNTIME
        print(f"{private} (keep it secret: evidence.signing_key_file)\n{public} (give it to whoever checks)\n"
              f"fingerprint {key_id(load_public(public))}\n  send it once to whoever checks your bundles (the "
              "vendor), by a way of its own: they check with `sla-agent evidence verify BUNDLE --key FINGERPRINT`")
        return EXIT_OK
    if command == "export":
        return _export(args)
    if command == "journal":
        return _journal(args)
    if command == "rotate-key":
        return witness.cmd_rotate(args)
    if command == "seal":
        return cmd_seal(args, time.time())
    if args.bundle:
        return _verify_bundle(args)
    if args.allow_unsigned or (args.key and not args.checkpoint):
        err("--key goes with a BUNDLE.tar.gz or --checkpoint, --allow-unsigned with a BUNDLE.tar.gz (the ledger's "
            "chain itself is not signed)")
        return EXIT_INPUT
    return _verify_store(args)
