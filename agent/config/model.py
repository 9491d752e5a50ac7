"""The configuration as frozen dataclasses. Nothing downstream reads YAML or the environment."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from typing import Union

from ..probes.base import Target
from ..probes.http.oauth2 import OAuth2Options
from ..probes.tls import TLSOptions
from ..schema import ConfigIssue

LOCATION_NAME_RULE = "letters, digits, '.', '_' or '-', at most 63 of them, and not '.' or '..'"


def is_location_name(value: object) -> bool:
    """A location's name (agent.location, `--location NAME=`, a bundle's report): it becomes a label and
    names a folder and files, so it holds only LOCATION_NAME_RULE's characters and is no path."""
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", value) is not None \
        and value not in (".", "..")


DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
PRIORITIES = ("P1", "P2", "P3")
DEFAULT_TITLES = {"web": "Web interface", "api": "API"}


@dataclass(frozen=True)
class WeeklyWindow:
    day: int  # 0 = Monday
    start: dt.time
    end: dt.time  # end <= start means the window runs past midnight
    reason: str = "weekly maintenance"


@dataclass(frozen=True)
class OnceWindow:
    start: dt.datetime  # aware
    end: dt.datetime
    reason: str
    kind: str = "maintenance"  # maintenance | exclusion


@dataclass(frozen=True)
class LatencyBound:
    """`ratio` of the requests must be strictly faster than `below` seconds."""

    below: float
    ratio: float


@dataclass(frozen=True)
class ServicePolicy:
    combine: str = "any"  # any | all | majority


# -- the contract's table: one objective spec per row ---------------------------------------------------
@dataclass(frozen=True)
class AvailabilitySpec:
    service: str
    objective: float = 0.99
    row: int = 0
    title: str = ""

    kind = "availability"


@dataclass(frozen=True)
class LatencySpec:
    service: str
    bounds: tuple[LatencyBound, ...] = (LatencyBound(0.5, 0.98), LatencyBound(1.0, 0.99))
    row: int = 0
    title: str = ""

    kind = "latency"


@dataclass(frozen=True)
class TicketResponseSpec:
    priority: str
    deadline_s: float
    objective: float = 0.95
    row: int = 0
    title: str = ""

    kind = "ticket_response"


ObjectiveSpec = Union[AvailabilitySpec, LatencySpec, TicketResponseSpec]


@dataclass(frozen=True)
class Contract:
    timezone: str = "+01:00"
    weekly: tuple[WeeklyWindow, ...] = (WeeklyWindow(3, dt.time(6), dt.time(8)),)
    windows: tuple[OnceWindow, ...] = ()
    slice_down_ratio: float = 0.5
    coverage_floor: float = 0.9
    period: str = "iso_week"  # iso_week | month_start
    services: tuple[tuple[str, ServicePolicy], ...] = ()
    business_start: dt.time = dt.time(9, 0)
    business_end: dt.time = dt.time(18, 30)
    business_timezone: str | None = None  # the contract's when None
    holidays_country: str = "FR"
    holidays_subdivision: str | None = None
    closed_days: tuple[dt.date, ...] = ()
    ticket_columns: tuple[tuple[str, str], ...] = ()  # our name -> export's column name
    # The annexe's shorthand (contract.availability, .latency, .tickets): the defaults of the table below.
    availability_objective: float = 0.99
    latency_services: tuple[str, ...] = ("api",)
    latency_objectives: tuple[LatencyBound, ...] = (LatencyBound(0.5, 0.98), LatencyBound(1.0, 0.99))
    ticket_deadlines: tuple[tuple[str, float], ...] = (("P1", 8 * 3600.0), ("P2", 24 * 3600.0), ("P3", 40 * 3600.0))
    ticket_objective: float = 0.95
    # Several vantage points (contract.locations): how many must see a slice down for it to count, and
    # which location's latency decides (best: the one most favourable to the vendor; pooled; each).
    min_agree: int = 2
    latency_locations: str = "best"
    # The contract's table, one spec per report row. Empty: the annexe's table for services web and api.
    objectives: tuple[ObjectiveSpec, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.objectives:
            object.__setattr__(self, "objectives", default_table(self, ("web", "api")))

    def policy(self, service: str) -> ServicePolicy:
        return dict(self.services).get(service, ServicePolicy())

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The ledger counts requests below each of these: every bound of the table and of the shorthand
        (so that adding a service's targets or a latency row keeps the ledger's layout)."""
        bounds = {b.below for o in self.objectives if isinstance(o, LatencySpec) for b in o.bounds}
        return tuple(sorted(bounds | {b.below for b in self.latency_objectives}))

    def latency_bounds(self, service: str) -> tuple[LatencyBound, ...]:
        return tuple(b for o in self.objectives if isinstance(o, LatencySpec) and o.service == service
                     for b in o.bounds)


def default_table(c: Contract, services: tuple[str, ...]) -> tuple[ObjectiveSpec, ...]:
    """The annexe's table from the shorthand: availability of each service, latency of the latency
    services, first response of each ticket priority; rows numbered in that order."""
    specs: list[ObjectiveSpec] = [AvailabilitySpec(s, c.availability_objective) for s in services]
    specs += [LatencySpec(s, c.latency_objectives) for s in c.latency_services if s in services]
    specs += [TicketResponseSpec(p, d, c.ticket_objective) for p, d in c.ticket_deadlines]
    return numbered(specs)


def numbered(specs: list[ObjectiveSpec]) -> tuple[ObjectiveSpec, ...]:
    """Rows without a number take their position; titles default to the service's name in the annexe."""
    out = []
    for i, s in enumerate(specs):
        changes = {}
        if not s.row:
            changes["row"] = i + 1
        if not s.title:
            subject = s.priority if isinstance(s, TicketResponseSpec) else s.service
            changes["title"] = f"Ticket {subject}" if isinstance(s, TicketResponseSpec) else \
                DEFAULT_TITLES.get(subject, subject)
        out.append(replace(s, **changes) if changes else s)
    return tuple(out)


@dataclass(frozen=True)
class AgentSettings:
    listen: str = "127.0.0.1:9810"
    state_dir: str = "/var/lib/sla-agent"
    location: str = ""
    rate_limit: int = 2000  # probes per second, all targets together
    per_host_concurrency: int = 100
    browser_workers: int = 1  # Chromium processes for browser checks: checks beyond wait their turn
    loop_lag_bound: float = 0.05
    flush_interval: float = 5.0
    retention_days: int = 400
    shutdown_grace: float = 10.0
    web_config_file: str | None = None
    log_level: str = "info"
    external_url: str = ""  # how people reach this agent (links in alerts); http://LISTEN when empty

    @property
    def url(self) -> str:
        return (self.external_url or f"http://{self.listen}").rstrip("/")


DEFAULT_HEADERS = ("Date", "Server", "Via", "X-Request-Id", "CF-Ray", "X-Amz-Cf-Id")


@dataclass(frozen=True)
class SmtpSettings:
    """How mail leaves the agent (notify/mail.py): a smarthost, STARTTLS, a login whose password is in a file."""

    smarthost: str  # host:port
    from_addr: str
    username: str | None = None
    password: str | None = None  # read from password_file (a secret: redacted wherever text leaves)
    starttls: bool = True


@dataclass(frozen=True)
class WitnessSettings:
    """Where the chain's signed checkpoints are pushed (`evidence.witnesses:`, notify/witness.py)."""

    webhooks: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    every: float = 3600.0
    smtp: SmtpSettings | None = None


@dataclass(frozen=True)
class TimestampSettings:
    """RFC 3161 time-stamps of the chain's head (`evidence.timestamping`): by each authority, this often."""

    tsa: tuple[str, ...]  # the authorities' URLs (RFC 3161 over HTTP: a POST of the request)
    every: float = 3600.0
    ca_file: str | None = None  # PEM: the authorities' roots; answers are checked against them as they arrive
    timeout: float = 30.0  # one request, whole


@dataclass(frozen=True)
class PathOwner:
    """Who holds the addresses of a network, as the user knows it (an AS, a provider): the report names it."""

    network: str  # a CIDR block, 192.0.2.0/24 or 2001:db8::/32
    owner: str


@dataclass(frozen=True)
class PathSettings:
    """The path to a failing target, traced and kept in the journal (`evidence.path`, paths/)."""

    enabled: bool = True
    every: float = 300.0  # while a target keeps failing, one trace this often at most
    max_hops: int = 30
    wait: float = 3.0  # a trace waits this long for the routers' answers, whatever the path's length
    owners: tuple[PathOwner, ...] = ()


@dataclass(frozen=True)
class EvidenceSettings:
    """The failure journal and the signing of reports (`evidence:`)."""

    journal: bool = True
    headers: tuple[str, ...] = DEFAULT_HEADERS  # response headers kept in a journal record
    body_bytes: int = 1024  # the first bytes of the body kept (redacted)
    failures_per_minute: int = 20  # records per target-minute; the counts stay exact beyond
    sample_up_every: float = 60.0  # one up record per target this often (0: none): proof of health, same terms
    signing_key_file: str | None = None  # Ed25519 private key (PEM): reports are signed
    public_key_file: str | None = None  # to check signatures without the private key
    witnesses: WitnessSettings = WitnessSettings()
    timestamping: TimestampSettings | None = None
    path: PathSettings = PathSettings()


@dataclass(frozen=True)
class AlertSettings:
    """The alerts on the contract itself (`alerts:`): how they project, when a ticket warns, who gets them."""

    projection_window: float = 86400.0  # projections go on at the burn of this last stretch of time
    ticket_deadline_soon: float = 0.25  # a ticket warns when this share of its deadline is left
    contract_webhook_url: str = "http://127.0.0.1:9095/contract"  # the vendor-management receiver
    contract_email: str | None = None  # ...or an e-mail address, sent through smtp_smarthost
    smtp_smarthost: str | None = None
    smtp_from: str | None = None


@dataclass(frozen=True)
class DeliverEmail:
    """A closed month's report by mail (`reports.deliver.email`): the PDF attached, the bundle up to a size."""

    to: tuple[str, ...]
    smtp: SmtpSettings
    attach_bundle_max: int = 10 * 1000 * 1000  # bytes; a larger evidence bundle is linked instead


@dataclass(frozen=True)
class DeliverWebhook:
    url: str  # gets a JSON POST: the month, its verdict rows, the links; shown without userinfo nor query


@dataclass(frozen=True)
class DeliverSettings:
    """Where each closed month's report goes (`reports.deliver`, notify/deliver.py)."""

    email: DeliverEmail | None = None
    webhook: DeliverWebhook | None = None
    base_url: str = ""  # the links' start (…/reports/YYYY-MM/rN/…); the agent's own URL when not set

    @property
    def channels(self) -> tuple[str, ...]:
        return (("email",) if self.email else ()) + (("webhook",) if self.webhook else ())


@dataclass(frozen=True)
class ReportSettings:
    """The month close and what it does with each closed month (`reports:`, report/closing.py)."""

    close_after: float = 7200.0  # settle time after the month's end before its report is archived
    deliver: DeliverSettings = DeliverSettings()


@dataclass(frozen=True)
class TicketFeedSettings:
    """A support tool's export fetched on a schedule (`tickets:`), with the auth options of an http target."""

    url: str
    every: float = 900.0
    timeout: float = 30.0
    format: str = "auto"  # auto | csv | json
    headers: tuple[tuple[str, str], ...] = ()  # headers, header files and basic auth together
    auth: OAuth2Options | None = None
    tls: TLSOptions = field(default_factory=TLSOptions)


@dataclass(frozen=True)
class Config:
    agent: AgentSettings
    contract: Contract
    targets: tuple[Target, ...]
    controls: tuple[Target, ...] = ()
    evidence: EvidenceSettings = EvidenceSettings()
    alerts: AlertSettings = AlertSettings()
    tickets: TicketFeedSettings | None = None
    reports: ReportSettings = ReportSettings()
    source: str = "<memory>"
    secrets: frozenset[str] = frozenset()  # values to redact wherever text leaves the agent
    warnings: tuple[ConfigIssue, ...] = ()  # what probing would need on this machine, when read only to report

    @property
    def all_targets(self) -> tuple[Target, ...]:
        return self.targets + self.controls

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.service for t in self.targets))

    def targets_of(self, service: str) -> tuple[Target, ...]:
        return tuple(t for t in self.targets if t.service == service)
