"""The `sla-agent` command. Exit status: 0 success; 1 runtime failure; 2 bad usage, config or input."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from .. import __version__
from ..report import FORMATS
from ..tickets.model import FIELDS, REQUIRED
from . import commands, evidence, period, records, timestamps, witness
from .close import add_close
from .common import EXIT_INPUT, EXIT_OK, EXIT_RUNTIME


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit status is 2 as well; keep the text short
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INPUT)


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", default=os.environ.get("SLA_AGENT_CONFIG"),
                   help="configuration file (default: $SLA_AGENT_CONFIG)")
    p.add_argument("--state-dir", metavar="DIR", default=os.environ.get("SLA_AGENT_STATE_DIR"),
                   help="directory of the ledger database (default: $SLA_AGENT_STATE_DIR, then agent.state_dir)")


def _run_and_demo(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run the monitoring daemon", description=(
        "Run the daemon: probe every target on its fixed-rate schedule, record results in the ledger, serve "
        "/metrics, /healthz, /readyz, /api/v1/status and /report. SIGTERM stops it cleanly (in-flight probes "
        "finish, the ledger is flushed); SIGHUP reloads the configuration (a bad one is refused and logged)."))
    _config_arg(r)
    r.add_argument("--listen", metavar="HOST:PORT", help="override agent.listen")
    r.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="override agent.log_level")
    d = sub.add_parser("demo", help="run the agent against a built-in simulated web UI and API", description=(
        "Start a simulated CRM web interface and API on 127.0.0.1 (lognormal latency with a slow tail, "
        "occasional errors and short outages) and the agent against them. Prints where the metrics and the "
        "report are, and a live summary per target."))
    d.add_argument("--duration", type=float, metavar="SECONDS", help="stop by itself after this long")
    d.add_argument("--state-dir", metavar="DIR", default=os.environ.get("SLA_AGENT_STATE_DIR"),
                   help="ledger directory (default: ./sla-demo-state)")
    d.add_argument("--summary-every", type=float, default=5.0, metavar="SECONDS", help="live summary period")
    _sim_args(d)
    s = sub.add_parser("simulate", help="run the simulated web UI and API alone (for run --config config/demo.yaml)",
                       description="Serve the demo's simulated CRM web interface and API on 127.0.0.1:9811, the "
                                   "address config/demo.yaml probes, until stopped (Ctrl-C, SIGTERM) or --duration.")
    s.add_argument("--port", type=int, default=9811, help="port on 127.0.0.1 (9811: what config/demo.yaml probes)")
    s.add_argument("--duration", type=float, metavar="SECONDS", help="stop by itself after this long")
    _sim_args(s)


def _sim_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--error-rate", type=float, default=None, help="share of simulated 500 answers (0.002)")
    p.add_argument("--outage-every", type=float, default=None, metavar="SECONDS",
                   help="seconds between simulated outages (240; 0 = none)")
    p.add_argument("--outage-seconds", type=float, default=None, help="length of an outage (20)")
    p.add_argument("--slow-share", type=float, default=None, help="share of requests in the slow tail (0.015)")
    p.add_argument("--seed", type=int, default=None, help="random seed for a repeatable run")


def _reports(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("check-config", help="validate a configuration file", description=(
        "Validate a configuration file. Every error is printed as FILE:LINE: field.path: message."))
    c.add_argument("file", metavar="FILE", nargs="?", default=os.environ.get("SLA_AGENT_CONFIG"),
                   help="the configuration file (default: $SLA_AGENT_CONFIG)")
    rep = sub.add_parser("report", help="write the monthly SLA report", description=(
        "Fill the contract's table with the measured values for a month, with the evidence behind each "
        "row. Works while the daemon runs. A closed month's report is made from rows sealed final only (sealed "
        "first where no agent runs, else refused naming them). With --quarter, --year or --from/--to: over several "
        "months, each month's rows and the period's totals. With --verify, check that a JSON report still "
        "matches the ledger."))
    _config_arg(rep)
    over = rep.add_mutually_exclusive_group()
    over.add_argument("--month", metavar="YYYY-MM", help="the month (default: the current month)")
    period.add_arguments(over, rep)
    rep.add_argument("--format", "-f", choices=(*FORMATS, "pdf"), default="text",
                     help="pdf: the HTML report printed by the system's Chromium (needs --output)")
    rep.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    rep.add_argument("--verify", metavar="REPORT.json", help="verify a JSON report against the stored ledger")
    _key_arg(rep, "the report (default: the configuration's key)")
    _locations_args(rep)
    add_close(rep, _config_arg)
    ru = sub.add_parser("rules", help="generate Prometheus rules and the Grafana dashboard", description=(
        "Generate Prometheus recording and alerting rules, an Alertmanager config and a Grafana dashboard from "
        "the configuration, so the alerts measure exactly what the report measures."))
    _config_arg(ru)
    ru.add_argument("--output-dir", "-o", metavar="DIR", required=True,
                    help="written into DIR/prometheus, DIR/alertmanager and DIR/grafana")


def _tickets(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tickets", help="support tickets (rows 4-6)", description="Support tickets (rows 4-6).")
    tsub = t.add_subparsers(dest="tickets_command", metavar="ACTION", parser_class=_Parser)
    ti = tsub.add_parser("import", help="load a support-tool export (CSV or JSON), idempotent by ticket id",
                         description="Load a support-tool export (CSV with a header line, its columns separated by ',', "
                                     "';' or a tab, or a JSON list of objects). Columns (keys): "
                                     f"{', '.join(REQUIRED)} required, {', '.join(f for f in FIELDS if f not in REQUIRED)} "
                                     "when known; times as ISO 8601, read in the contract time zone without an "
                                     "offset; other names mapped with contract.tickets.columns. The whole "
                                     "file is validated first: one bad line rejects it all, every bad line listed.")
    _config_arg(ti)
    ti.add_argument("export", metavar="EXPORT", help="EXPORT.csv or EXPORT.json")
    tl = tsub.add_parser("list", help="list stored tickets with their business response time",
                         description="List the stored tickets, one a line: id, priority, opened and first response "
                                     "times, the business hours between them, the priority's limit in hours, state.")
    _config_arg(tl)
    tl.add_argument("--month", metavar="YYYY-MM", help="only the tickets opened in this month (default: all)")
    tr = tsub.add_parser("remove", help="delete stored tickets by id (one imported by mistake)",
                         description="Delete stored tickets by id. Each removal is sealed in the hash chain, so "
                                     "`evidence verify` shows it as a removal. Exit 1 when an id is not stored.")
    _config_arg(tr)
    tr.add_argument("ids", metavar="ID", nargs="+", help="the tickets' ids, as imported")


def _maintenance(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("maintenance", help="declared maintenance and exclusion windows", description=(
        "Declare windows outside the weekly maintenance: planned maintenance announced by the vendor, or "
        "exclusions (network incident outside the vendor's control, force majeure). Kept in the state "
        "database; the running daemon picks them up within a minute."))
    msub = m.add_subparsers(dest="maintenance_command", metavar="ACTION", parser_class=_Parser)
    ma = msub.add_parser("add", help="declare a window", description=(
        "Declare a window from --start to --end: maintenance (announced by the vendor) or an exclusion; the "
        "slices touching it are masked in the report. Prints the window's id."))
    _config_arg(ma)
    ma.add_argument("--start", required=True, help="ISO 8601; without an offset it is read in the contract time zone")
    ma.add_argument("--end", required=True, help="ISO 8601, after --start; read as --start is")
    ma.add_argument("--reason", required=True, help="why (shown in the report)")
    ma.add_argument("--kind", choices=("maintenance", "exclusion"), default="maintenance",
                    help="maintenance: announced by the vendor; exclusion: an incident outside its control "
                         "(default: maintenance)")
    ml = msub.add_parser("list", help="list declared windows", description=(
        "List the windows: the config's weekly ones and its own, then the declared ones, one a line: id, kind, "
        "start -> end (in the contract time zone), reason."))
    _config_arg(ml)
    mr = msub.add_parser("remove", help="remove a declared window by id", description=(
        "Remove a declared window by the id `maintenance list` shows; the removal is sealed in the hash chain. "
        "Exit 2 when no window has that id."))
    _config_arg(mr)
    mr.add_argument("id", type=int, help="the window's id (maintenance list)")


def _locations_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--location", action="append", default=[], metavar="NAME=URL|PATH", help=(
        "a location's ledger, for one report over several places (repeat it): a running agent's URL "
        "(https://user:password@agent-paris:9810, its /api/v1/ledger is pulled), or a state directory, a "
        "ledger.db, a pulled .db.gz. The local ledger joins as agent.location when the config names one."))
    p.add_argument("--ca-file", metavar="PEM", help="the CA that signs the agents' HTTPS certificates")


def _key_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--key", metavar="FILE|FINGERPRINT", help=(
        f"the only key accepted to have signed {what}: the agent owner's public key file, or its fingerprint as "
        "`evidence keygen` printed it"))


def _evidence(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("evidence", help="the failure journal, the hash chain, signed bundles", description=(
        "Evidence a vendor cannot wave away: check the hash chain over the stored rows, export a month's "
        "report with its journal and ledger extract as one bundle, check a bundle offline, make a signing key."))
    esub = e.add_subparsers(dest="evidence_command", metavar="ACTION", parser_class=_Parser)
    ev = esub.add_parser("verify", help="walk the chain over the stored rows, or check a bundle offline",
                         description="With --config: walk the hash chain over the stored rows (of one month with "
                                     "--month), name the first rows that do not match, and list the rows outside "
                                     "the chain (not sealed yet). Exit 0 only when something was verified and every "
                                     "row asked about is sealed: on a running agent without --month, but for the "
                                     "recent rows it has not had to seal yet (listed as NOT COVERED YET). With "
                                     "BUNDLE.tar.gz: check a bundle without any ledger, as a vendor or an "
                                     "arbitrator would.")
    _config_arg(ev)
    ev.add_argument("bundle", metavar="BUNDLE.tar.gz", nargs="?", help="a bundle made by `evidence export`")
    ev.add_argument("--month", metavar="YYYY-MM", help="only the rows of this month (the chain is walked whole)")
    se = esub.add_parser("seal", help="seal what a stopped agent left unsealed",
                         description="On a stopped agent's state directory (it takes the agent's lock): seal every "
                                     "row not sealed yet, as a clean stop does, and seal final the rows sealed at a "
                                     "stop that are final now. Needed only after an agent was killed.")
    _config_arg(se)
    witness.add_arguments(ev, esub, _config_arg)
    timestamps.add_argument(ev)
    _key_arg(ev, "the bundle, or the checkpoints given (reached through the chain's key rotation records)")
    ev.add_argument("--allow-unsigned", action="store_true",
                    help="check an unsigned bundle anyway (it shows the bundle agrees with itself, not who made it)")
    ex = esub.add_parser("export", help="a month's report, journal, ledger extract and key in one bundle",
                         description="A closed month's bundle is made from rows sealed final only: with no agent "
                                     "running on the state directory, its final rows are sealed first; the export "
                                     "stops naming any row not sealed final yet (exit 1), unless --allow-unsealed.")
    _config_arg(ex)
    ex.add_argument("--month", metavar="YYYY-MM", help="the month (default: the current month)")
    ex.add_argument("--allow-unsealed", action="store_true",
                    help="make the bundle of a closed month although rows of it are not sealed (its check names them)")
    ex.add_argument("--output", "-o", metavar="FILE.tar.gz", required=True, help="the bundle to write")
    ex.add_argument("--journal-lines", action="store_true",
                    help="carry the journal as JSON lines too (journal.jsonl, checked against ledger.db), as bundles "
                         "did before the journal was packed: a bigger bundle, slower to make and to check; "
                         "`evidence journal BUNDLE` writes the same lines from any bundle")
    _locations_args(ex)
    jo = esub.add_parser("journal", help="write a bundle's failure journal out as JSON lines",
                         description="The journal of failed probes (and one successful probe per target and minute) "
                                     "a bundle's ledger.db holds, written as JSON lines, one record a line, into "
                                     "DIR: journal.jsonl (journal-NAME.jsonl per location of a report over "
                                     "several). The same lines bundles carried as journal.jsonl before the "
                                     "journal was packed. It reads, it does not check: `evidence verify` does.")
    jo.add_argument("bundle", metavar="BUNDLE.tar.gz", help="a bundle made by `evidence export`")
    jo.add_argument("--output", "-o", metavar="DIR", default=".", help="the folder to write into (default: here)")
    kg = esub.add_parser("keygen", help="make an Ed25519 key pair for signing reports",
                         description="Write sla-agent-signing.key (private, mode 0600) and sla-agent-signing.pub "
                                     "into DIR; point evidence.signing_key_file at the first. Prints the public "
                                     "key's fingerprint: send it to whoever checks your bundles, once, by a way "
                                     "of its own (they give it to `evidence verify --key`).")
    kg.add_argument("--output", "-o", metavar="DIR", required=True, help="the folder to write the pair into")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sla-agent", description=(
        "Synthetic uptime and latency monitoring that proves, or disproves, a vendor's SLA. It probes the "
        "vendor's web interface and API, keeps an exact ledger of every result, masks maintenance windows, "
        "exports Prometheus metrics and writes the monthly SLA report."),
        epilog="Exit status: 0 success, 1 runtime failure, 2 bad usage, config or input. "
               "Start with `sla-agent demo`.")
    p.add_argument("--version", action="version", version=f"sla-agent {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_run_and_demo, _reports, _tickets, _maintenance, _evidence):
        add(sub)
    return p


HANDLERS = {
    "run": commands.cmd_run, "demo": commands.cmd_demo, "simulate": commands.cmd_simulate, "check-config": commands.cmd_check_config,
    "report": commands.cmd_report, "rules": commands.cmd_rules, "tickets": records.cmd_tickets,
    "maintenance": records.cmd_maintenance, "evidence": evidence.cmd_evidence,
}


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command given, for its usage line in an error."""
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        sub = action.choices.get(getattr(args, "command", None) or "")
        if sub is None:
            continue
        for inner in sub._subparsers._group_actions if sub._subparsers else ():
            leaf = inner.choices.get(getattr(args, inner.dest, None) or "")
            if leaf is not None:
                return leaf
        return sub
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser, with its usage: not the top-level one
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return EXIT_INPUT
    from .. import logs

    logs.setup(getattr(args, "log_level", None) or "info")
    try:
        return HANDLERS[args.command](args)
    except KeyboardInterrupt:
        return EXIT_RUNTIME
    except BrokenPipeError:
        return EXIT_OK


__all__ = ["build_parser", "main"]
