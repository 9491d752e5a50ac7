"""`evidence verify --tsa-ca FILE`: the time-stamping authorities' certificates the stored tokens are
checked against, and what the tokens prove, printed after the chain's check."""
from __future__ import annotations

import argparse
from typing import Any

from ..config.model import Config
from ..timestamping import tsp

PROVEN = "time-stamped"  # the facts' key of the lines a bundle's tokens prove


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tsa-ca", metavar="PEM", help="the certificates of the time-stamping authorities you "
                        "trust: each stored RFC 3161 token is checked against them (default with --config: "
                        "evidence.timestamping.ca_file)")


def roots(args: argparse.Namespace, cfg: Config | None = None) -> list[Any] | None:
    """The trusted certificates (--tsa-ca, else the config's ca_file), or None. Raises ValueError."""
    path = getattr(args, "tsa_ca", None)
    if path is None and cfg is not None and cfg.evidence.timestamping is not None:
        path = cfg.evidence.timestamping.ca_file
    return tsp.load_roots(path) if path else None


def missing(tokens: int, asked: bool) -> list[str]:
    """Asked to check time-stamps (trusted certificates given), a ledger without one good token fails."""
    return ["no time-stamp token proves any link: nothing independent says when the rows existed"] \
        if asked and not tokens else []


def show(what: str, tokens: int, checked: bool, proven: list[str]) -> None:
    """What the tokens prove: one line per run of links, the time it existed by."""
    if not tokens and all(line.endswith("not time-stamped yet") for line in proven):
        if proven:  # nothing stamped at all: one plain line, not a warning about signatures never asked for
            print(f"{what}: no time-stamp yet: the links' times rest on this machine's clock alone "
                  f"(evidence.timestamping)")
        return
    how = "signatures checked against --tsa-ca" if checked else \
        "signatures NOT checked: pass --tsa-ca FILE with the authorities' certificates you trust"
    print(f"{what}: time-stamps: {tokens} tokens match the chain ({how})")
    for line in proven:
        print(f"{what}: {line}")
