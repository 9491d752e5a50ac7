"""Strict YAML -> Config. Unknown keys are errors; every error names its line and field path.

All errors of a file are collected and reported at once, as `FILE:LINE: field.path: message`.
"""
from __future__ import annotations

import ipaddress
import os
import re
import stat
from dataclasses import replace
from pathlib import Path

import yaml

from ..schema import (MISSING, ConfigError, ConfigIssue, Field, Reader, Section, boolean, byte_size, choice, converted,
                      duration,
                      existing_file, integer, keys_of, list_of, ratio, read_table, secret_file, section, string)
from ..probes.addresses import check_url
from ..probes.http.spec import REQUEST_FIELDS, authorization_once
from .contract import read_contract
from .model import (LOCATION_NAME_RULE, AgentSettings, AlertSettings, Config, Contract, DeliverEmail, DeliverSettings,
                    DeliverWebhook, EvidenceSettings, PathOwner, PathSettings, ReportSettings, SmtpSettings, TicketFeedSettings,
                    TimestampSettings, WitnessSettings, is_location_name)
from .objectives import resolve
from .redaction import redacted, secrets_of
from .targets import check_timing, check_unique_names, read_targets

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster, same nodes and line marks
TOP_KEYS = {"agent", "contract", "targets", "controls", "evidence", "alerts", "tickets", "reports"}
# Bounds on what one agent is asked to read: 10,000 targets of a few options each fit well within 4 MiB,
# and what lies beyond (a device, a runaway generator) would only end in a MemoryError.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_TARGETS = 10_000


def _split_listen(value: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d{1,5})|([^:\[\]]*):(\d{1,5})", value.strip())
    if not m:
        return None
    host = m.group(1) if m.group(1) is not None else m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port <= 65535:
        return None
    return host, port


def split_listen(value: str) -> tuple[str, int]:
    parsed = _split_listen(value)
    if parsed is None:
        raise ValueError(f"bad listen address {value!r}")
    return parsed


AGENT_FIELDS = (
    Field("listen", string(), check=lambda v: None if _split_listen(v) else
          f"must be host:port such as 127.0.0.1:9810 or [::1]:9810, got {v!r}"),
    Field("state_dir", string()),
    Field("web_config_file", string()),
    Field("location", string(allow_empty=True), check=lambda v: None if not v or is_location_name(v) else
          f"must be {LOCATION_NAME_RULE} (it becomes a label and names files), got {v!r}"),
    Field("rate_limit", integer(1, 100_000)),
    Field("per_host_concurrency", integer(1, 10_000)),
    Field("browser_workers", integer(1, 32)),
    Field("loop_lag_bound", duration(minimum=0.005, maximum=10)),
    Field("flush_interval", duration(minimum=0.1, maximum=300)),
    Field("shutdown_grace", duration(minimum=0, maximum=300)),
    Field("retention", converted(duration(minimum=86400), lambda s: int(s // 86400)), dest="retention_days"),
    Field("log_level", choice("debug", "info", "warning", "error")),
    Field("external_url", string(), check=lambda v: check_url(v) and f"{check_url(v)} (the address people use to "
          f"reach this agent, such as https://sla-agent.example.com)"),
)
AGENT_KEYS = keys_of(AGENT_FIELDS)
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def _not_addresses(addrs: tuple[str, ...]) -> str | None:
    return next((f"{a!r} is not an e-mail address" for a in addrs if not _EMAIL.fullmatch(a)), None)


SMTP_FIELDS = (
    Field("smarthost", string(), required=True, check=lambda v: None if _split_listen(v) else
          f"must be host:port such as smtp.example.com:587, got {v!r}"),
    Field("from", string(), dest="from_addr", required=True),
    Field("username", string()),
    Field("password_file", secret_file(), dest="password"),
    Field("starttls", boolean()),
)
WITNESS_FIELDS = (
    Field("webhooks", list_of(string()), check=lambda urls: next(filter(None, map(check_url, urls)), None)),
    Field("emails", list_of(string()), check=_not_addresses),
    Field("every", duration(minimum=60, maximum=7 * 86400)),
    Field("smtp", section(SMTP_FIELDS, SmtpSettings)),
)

DELIVER_EMAIL_FIELDS = (
    Field("to", list_of(string(), non_empty="must name at least one address"), required=True, check=_not_addresses),
    Field("smtp", section(SMTP_FIELDS, SmtpSettings), required=True),
    Field("attach_bundle_max", byte_size(0, 1000 ** 3)),
)
DELIVER_FIELDS = (
    Field("email", section(DELIVER_EMAIL_FIELDS, DeliverEmail)),
    Field("webhook", section((Field("url", string(env=True), required=True, check=check_url),), DeliverWebhook)),
    Field("base_url", string(), check=lambda v: check_url(v) and f"{check_url(v)} (the address the links in the mail "
          f"and the webhook start with, such as https://sla-agent.example.com)"),
)
REPORT_FIELDS = (
    Field("close_after", duration(minimum=0, maximum=31 * 86400)),
    Field("deliver", section(DELIVER_FIELDS, DeliverSettings)),
)


def _reports(r: Reader, node: yaml.Node, agent: AgentSettings) -> ReportSettings:
    """The links of a delivery start with the agent's own URL unless `base_url` says otherwise."""
    s = read_table(r, node, "reports", REPORT_FIELDS)
    d = s.values.get("deliver")
    if d is not None and not d.base_url:
        s.values["deliver"] = replace(d, base_url=agent.url)
    return ReportSettings(**s.values)


def _ca_file(r: Reader, node: yaml.Node, path: str) -> object:
    """A PEM file of certificates: the time-stamping authorities' roots (not read in a config offline)."""
    from cryptography import x509

    name = r.existing_file(node, path)
    if name is MISSING or r.offline:
        return name
    try:
        x509.load_pem_x509_certificates(Path(name).read_bytes())
    except (OSError, ValueError):
        return r.reject(node, path, f"{name} holds no PEM certificate (the time-stamping authorities' CA "
                                    f"certificates, as their operators publish them)")
    return name


def _signing_key_file(r: Reader, node: yaml.Node, path: str) -> object:
    """The private key, or systemd's copy of it: a service run as a throwaway user (DynamicUser=) cannot
    read a root-owned key, so the unit passes it with LoadCredential= under the file's own name, and the
    copy in $CREDENTIALS_DIRECTORY is read instead (deploy/systemd/signing-key.conf)."""
    name = r.string(node, path)
    credentials = None if r.offline else r.env.get("CREDENTIALS_DIRECTORY")
    if name is MISSING or not credentials:
        return name if name is MISSING else r.existing_file(node, path)
    copy = Path(credentials) / r.path_of(name).name
    if not os.path.isfile(copy):
        return r.existing_file(node, path)
    public = r.path_of(name).with_suffix(".pub")  # beside every key `evidence keygen` makes, readable by all
    if _other_key(copy, public):
        return r.reject(node, path, f"systemd's credential {copy} holds another key than {public} beside "
                                    f"{r.path_of(name)}: point LoadCredential= at {r.path_of(name)} "
                                    f"(deploy/systemd/signing-key.conf) and restart the service")
    return str(copy)


def _other_key(private: Path, public: Path) -> bool:
    """The credential's key and the public key file both load and differ: a key rotated to a new file of
    the same name while the unit still passes the old one. Without a public key to compare with, the copy
    is taken; one that does not load is said where the key is checked (check-config, the start)."""
    from cryptography.hazmat.primitives import serialization as ser

    raw = (ser.Encoding.Raw, ser.PublicFormat.Raw)
    try:
        mine = ser.load_pem_private_key(private.read_bytes(), password=None).public_key().public_bytes(*raw)
        theirs = ser.load_pem_public_key(public.read_bytes()).public_bytes(*raw)
    except (OSError, ValueError, TypeError):
        return False
    return mine != theirs


def _timestamping_rule(r: Reader, s: Section, path: str) -> bool:
    tsa, every, timeout = s.values.get("tsa", ()), s.values.get("every", 3600.0), s.values.get("timeout", 30.0)
    twice = [u for i, u in enumerate(tsa) if u in tsa[:i]]
    if twice:
        r.error(s.node_of("tsa"), f"{path}.tsa", f"names {twice[0]!r} twice")
    if timeout >= every:
        r.error(s.node_of("timeout"), f"{path}.timeout", f"must be shorter than every ({every:g}s), got {timeout:g}s")
    return not twice and timeout < every


TIMESTAMP_FIELDS = (
    Field("tsa", list_of(string(env=True), non_empty="must name at least one time-stamping authority URL"),
          required=True, check=lambda us: next((f"{u!r} {check_url(u)}" for u in us if check_url(u)), None)),
    Field("every", duration(minimum=60, maximum=86400)),
    Field("ca_file", _ca_file),
    Field("timeout", duration(minimum=1, maximum=600)),
)
def _network(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=False)
        return None
    except ValueError:
        return f"must be a network in CIDR form, such as 192.0.2.0/24 or 2001:db8::/32, got {value!r}"


PATH_FIELDS = (
    Field("enabled", boolean()),
    Field("every", duration(minimum=10, maximum=86400)),
    Field("max_hops", integer(1, 64)),
    Field("wait", duration(minimum=0.1, maximum=30)),
    Field("owners", list_of(section((Field("network", string(), required=True, check=_network),
                                     Field("owner", string(), required=True)), PathOwner))),
)
EVIDENCE_FIELDS = (
    Field("journal", boolean()),
    Field("headers", list_of(string()), check=lambda hs: next(
        (f"{h!r} is not a valid HTTP header name" for h in hs if not _HEADER.fullmatch(h)), None)),
    Field("body_bytes", integer(0, 65536)),
    Field("failures_per_minute", integer(1, 10_000)),
    Field("sample_up_every", duration(minimum=0, maximum=86400)),
    Field("signing_key_file", _signing_key_file),
    Field("public_key_file", existing_file()),
    Field("witnesses", section(WITNESS_FIELDS, WitnessSettings)),
    Field("timestamping", section(TIMESTAMP_FIELDS, TimestampSettings, _timestamping_rule)),
    Field("path", section(PATH_FIELDS, PathSettings)),
)

ALERT_FIELDS = (
    Field("projection_window", duration(minimum=3600, maximum=30 * 86400)),
    Field("ticket_deadline_soon", ratio(), check=lambda v: None if 0 < v < 1 else
          f"must be a share of the deadline between 0 and 1 (0.25: warn with a quarter left), got {v:g}"),
    Field("contract_webhook_url", string(), check=check_url),
    Field("contract_email", string(), check=lambda v: None if _EMAIL.fullmatch(v) else
          f"must be an e-mail address, got {v!r}"),
    Field("smtp_smarthost", string(), check=lambda v: None if _split_listen(v) else
          f"must be host:port such as smtp.example.com:587, got {v!r}"),
    Field("smtp_from", string()),
)

_REQUEST = {f.key: f for f in REQUEST_FIELDS}
TICKET_FEED_FIELDS = tuple(_REQUEST[k] for k in ("url", "headers", "header_files", "basic_auth", "auth", "tls")) + (
    Field("every", duration(minimum=60, maximum=86400)),
    Field("timeout", duration(minimum=1, maximum=600)),
    Field("format", choice("auto", "csv", "json")),
)


def _ticket_feed(r: Reader, node: yaml.Node) -> TicketFeedSettings | None:
    s = read_table(r, node, "tickets", TICKET_FEED_FIELDS)
    headers = s.values.pop("headers", ()) + s.values.pop("header_files", ()) + s.values.pop("basic_auth", ())
    if not authorization_once(r, s, "tickets", headers) or "url" not in s.values:
        return None
    return TicketFeedSettings(headers=headers, **s.values)


def _alerts(r: Reader, node: yaml.Node) -> AlertSettings:
    s = read_table(r, node, "alerts", ALERT_FIELDS)
    if "contract_email" in s.values and not {"smtp_smarthost", "smtp_from"} <= set(s.values):
        r.error(s.nodes["contract_email"], "alerts.contract_email", "needs smtp_smarthost and smtp_from beside it "
                                                                    "(Alertmanager sends the mail through them)")
    return AlertSettings(**s.values)


def _evidence(r: Reader, node: yaml.Node, alerts: AlertSettings) -> EvidenceSettings:
    """Witnesses need a signing key; e-mailed ones a mail server: their own, else the alerts' (no login)."""
    s = read_table(r, node, "evidence", EVIDENCE_FIELDS)
    w = s.values.get("witnesses")
    if w is not None and (w.webhooks or w.emails) and "signing_key_file" not in s.values:
        r.error(s.nodes["witnesses"], "evidence.witnesses", "needs evidence.signing_key_file beside it (checkpoints "
                                                             "are signed; make a key with `sla-agent evidence keygen`)")
    if w is not None and w.emails and w.smtp is None:
        if alerts.smtp_smarthost and alerts.smtp_from:
            s.values["witnesses"] = replace(w, smtp=SmtpSettings(alerts.smtp_smarthost, alerts.smtp_from))
        else:
            r.error(s.nodes["witnesses"], "evidence.witnesses.emails", "needs evidence.witnesses.smtp (or "
                                                                        "alerts.smtp_smarthost and alerts.smtp_from)")
    return EvidenceSettings(**s.values)


def load_config(path: str | os.PathLike[str], environ: dict[str, str] | None = None, *,
                probing: bool = True) -> Config:
    p = Path(path)
    try:
        text = _read(p)
    except ConfigError as exc:
        raise redacted(exc) from None
    return parse_config(text, str(p), environ=environ, base_dir=p.parent, probing=probing)


def _read(p: Path) -> str:
    """The file's text, read no further than the size limit (a device such as /dev/zero never ends)."""
    def issue(message: str) -> ConfigError:
        return ConfigError([ConfigIssue(str(p), 1, "", message)])

    limit = f"a config file may hold at most {MAX_CONFIG_BYTES} bytes ({MAX_CONFIG_BYTES >> 20} MiB)"
    try:
        with p.open("rb") as f:
            st = os.fstat(f.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size > MAX_CONFIG_BYTES:
                raise issue(f"the file is {st.st_size} bytes; {limit}")
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise issue(f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise issue(f"the file is larger than {MAX_CONFIG_BYTES} bytes; {limit}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise issue("the file is not UTF-8 text") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # the universal newlines read_text gave


def _compose(text: str, filename: str) -> yaml.Node:
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(filename, mark.line + 1 if mark else 1, "", f"not valid YAML: {problem}")]) \
            from None
    if root is None:
        raise ConfigError([ConfigIssue(filename, 1, "", "the file is empty; it needs at least `targets:`")])
    return root


def _too_many(r: Reader, top: dict[str, yaml.Node]) -> bool:
    """More entries than one agent probes: refused before any is read, which would take minutes."""
    total = 0
    for key in ("targets", "controls"):
        node = top.get(key)
        if isinstance(node, yaml.SequenceNode):
            total += len(node.value)
            if total > MAX_TARGETS:
                r.error(node, key, f"holds {len(node.value)} entries; targets and controls together may be at "
                                   f"most {MAX_TARGETS} (split the config between agents)")
                return True
    return False


def parse_config(text: str, filename: str = "<config>", *, environ: dict[str, str] | None = None,
                 base_dir: Path | None = None, offline: bool = False, probing: bool = True) -> Config:
    """`offline`: a copy of a config away from its machine (an evidence bundle's); the environment
    variables and files it names need not exist. `probing` false: read to report on what is stored, so
    what only probing needs (a Chromium) may be missing here; it is in `Config.warnings`."""
    r = Reader(filename, dict(os.environ if environ is None else environ), base_dir or Path("."), offline, probing)
    try:
        return _parse(r, text, filename)
    except ConfigError as exc:
        raise redacted(exc, secrets_of(text, r.env, r.secrets)) from None


def _parse(r: Reader, text: str, filename: str) -> Config:
    root = _compose(text, filename)
    top = r.mapping(root, "", TOP_KEYS)
    agent = AgentSettings(**read_table(r, top["agent"], "agent", AGENT_FIELDS).values) if "agent" in top \
        else AgentSettings()
    alerts = _alerts(r, top["alerts"]) if "alerts" in top else AlertSettings()
    evidence = _evidence(r, top["evidence"], alerts) if "evidence" in top else EvidenceSettings()
    feed = _ticket_feed(r, top["tickets"]) if "tickets" in top else None
    reports = _reports(r, top["reports"], agent) if "reports" in top else ReportSettings()
    contract_kw, contract_nodes = read_contract(r, top.get("contract"))
    if _too_many(r, top):
        raise ConfigError(r.issues)
    if "targets" not in top:
        r.error(root, "targets", "is required: a list of at least one target")
    elif isinstance(top["targets"], yaml.SequenceNode) and not top["targets"].value:
        r.error(top["targets"], "targets", "must hold at least one target")
    targets = read_targets(r, top.get("targets"), "targets")
    controls = read_targets(r, top.get("controls"), "controls")
    services = tuple(dict.fromkeys(t.common.values["service"] for t in targets if "service" in t.common.values))
    shorthand = Contract(**contract_kw)
    contract = Contract(**contract_kw, objectives=resolve(r, shorthand, contract_nodes, services))
    check_timing(r, contract, targets + controls)
    check_unique_names(r, targets + controls)
    if r.issues:
        raise ConfigError(r.issues)  # parse_config redacts and sorts them
    return Config(agent=agent, contract=contract, targets=tuple(t.target for t in targets if t.target),
                  controls=tuple(t.target for t in controls if t.target), evidence=evidence, alerts=alerts, tickets=feed,
                  reports=reports, source=filename, secrets=frozenset(s for s in r.secrets if len(s) >= 3),
                  warnings=tuple(redacted(ConfigError(r.warnings), r.secrets).issues))
