"""`sla-agent evidence verify --checkpoint FILE [--key KEY]` and `sla-agent evidence rotate-key NEW_KEY`."""
from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..config import Config
from ..report import checkpoint
from ..report.rotation import rotate
from ..report.signing import SigningError, key_id, load_private, load_public
from ..report.verify import public_key
from ..report.witnessed import bundle_ledger, verify
from ..store import Store, StoreError
from ..store.schema import tx
from .common import EXIT_INPUT, EXIT_OK, EXIT_RUNTIME, err, load, state_dir


def add_arguments(verify_parser: argparse.ArgumentParser, actions: Any, config_arg: Any) -> None:
    verify_parser.add_argument(
        "--checkpoint", action="append", default=[], metavar="FILE",
        help="a signed checkpoint a witness kept (repeat it): the chain must extend each, signed by a key the "
             "trusted key reaches through the chain's key rotation records; the first one contradicted is named")
    r = actions.add_parser("rotate-key", help="hand signing over to a new key, in a record the old key signs",
                           description="Append a record to the hash chain, signed by the key evidence.signing_key_file "
                                       "names, that names NEW_KEY as its successor. Then point "
                                       "evidence.signing_key_file at NEW_KEY and reload the agent (SIGHUP): "
                                       "checkpoints signed by the old key after the record are refused.")
    config_arg(r)
    r.add_argument("new_key", metavar="NEW_KEY", help="the new key: its private key file (or its public key file)")


def on_ledger(conn: sqlite3.Connection, args: argparse.Namespace, cfg: Config) -> tuple[list[str], dict[str, str]]:
    try:
        own = public_key(cfg)
    except SigningError as exc:
        return [str(exc)], {}
    return verify(conn, args.checkpoint, own, args.key, "the agent's")


def on_bundle(path: str, args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    if not args.checkpoint:
        return [], {}
    with bundle_ledger(Path(path)) as (conn, own, refused):
        if conn is None:
            return refused, {}
        problems, facts = verify(conn, args.checkpoint, own, args.key, "the bundle's own")
    if args.key is None and facts:
        facts["checkpoints"] += ": the key was taken from the bundle itself"
    return problems, facts


def _new_key(path: str) -> Any:
    text = Path(path).read_bytes()
    return load_private(path).public_key() if b"PRIVATE KEY" in text else load_public(path)


def cmd_rotate(args: argparse.Namespace) -> int:
    cfg = load(args)
    if cfg is None:
        return EXIT_INPUT
    if not cfg.evidence.signing_key_file:
        err("rotate-key needs evidence.signing_key_file: the key handing over signs the record")
        return EXIT_INPUT
    try:
        old, new = load_private(cfg.evidence.signing_key_file), _new_key(args.new_key)
    except (OSError, SigningError) as exc:
        err(f"{getattr(exc, 'strerror', None) or exc}")
        return EXIT_INPUT
    try:
        store = Store(state_dir(args, cfg), thresholds=cfg.contract.thresholds)
    except StoreError as exc:
        err(str(exc))
        return EXIT_RUNTIME
    try:
        with tx(store.conn) as conn:
            rid, seq = rotate(conn, old, new, time.time())
    except SigningError as exc:
        err(str(exc))
        return EXIT_INPUT
    finally:
        store.close()
    name = checkpoint.origin_of(cfg.agent.location)
    print(f"key rotation record {rid} sealed in link {seq}: key {key_id(old.public_key())} hands over to\n"
          f"  {key_id(new)} (fingerprint: send it to whoever checks)\n  verifier key {checkpoint.verifier_key(name, new)}\n"
          f"Now point evidence.signing_key_file at {args.new_key} and reload the agent (SIGHUP).")
    return EXIT_OK
