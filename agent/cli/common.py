"""What the commands share: exit statuses, error lines, reading the config."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, load_config

EXIT_OK, EXIT_RUNTIME, EXIT_INPUT = 0, 1, 2


def err(message: str) -> None:
    print(f"sla-agent: {message}", file=sys.stderr)


def print_issues(exc: ConfigError) -> None:
    for issue in exc.issues:
        print(issue, file=sys.stderr)


def load(args: argparse.Namespace, *, probing: bool = False) -> Config | None:
    """The config of --config (or $SLA_AGENT_CONFIG); None after printing why not. Only a command that
    probes needs what probing needs on this machine (a Chromium): a report host has none."""
    if not args.config:
        err("no configuration: pass --config FILE or set SLA_AGENT_CONFIG")
        return None
    try:
        return load_config(args.config, probing=probing)
    except ConfigError as exc:
        print_issues(exc)
        return None


def state_dir(args: argparse.Namespace, cfg: Config) -> str:
    return args.state_dir or cfg.agent.state_dir


def write_output(args: argparse.Namespace, doc: dict[str, Any], what: str) -> int:
    """The report in --format, to --output or standard output; `what`: the month or period it is of."""
    from ..report import render

    if args.format == "pdf":
        return _write_pdf(doc, Path(args.output), what)
    text = render(doc, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"report for {what} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _write_pdf(doc: dict[str, Any], out: Path, what: str) -> int:
    from ..report import render
    from ..report.formats.pdf import PdfUnavailable, footer_text, render_pdf

    try:
        render_pdf(render(doc, "html"), out, footer=footer_text(doc))
    except PdfUnavailable as exc:  # its message names what to install
        err(str(exc))
        return EXIT_RUNTIME
    print(f"report for {what} written to {out}", file=sys.stderr)
    return EXIT_OK
