"""The configuration as frozen dataclasses. Nothing downstream reads YAML or the environment."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class JsonAssertion:
    path: str  # dotted path with [index]: "data.items[0].status"
    equals: Any


@dataclass(frozen=True)
class TLSOptions:
    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None


@dataclass(frozen=True)
class Target:
    name: str
    service: str
    url: str
    type: str = "http"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    expect_status: tuple[int, ...] = ()  # empty: any 2xx
    body_regex: tuple[re.Pattern[str], ...] = ()
    body_not_regex: tuple[re.Pattern[str], ...] = ()
    json: tuple[JsonAssertion, ...] = ()
    timeout: float = 5.0
    interval: float = 5.0
    max_in_flight: int = 1
    max_body_bytes: int = 10 * 1024 * 1024
    tls: TLSOptions = field(default_factory=TLSOptions)
    redirects: str = "follow"  # follow | none
    max_redirects: int = 10
    ip_family: str = "any"  # any | ipv4 | ipv6
    keepalive: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    control: bool = False  # a control check (canary), not part of any service

    def status_ok(self, status: int) -> bool:
        if self.expect_status:
            return status in self.expect_status
        return 200 <= status < 300


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
class LatencyObjective:
    below: float  # seconds, strict "<"
    ratio: float


@dataclass(frozen=True)
class ServicePolicy:
    combine: str = "any"  # any | all | majority


@dataclass(frozen=True)
class Contract:
    timezone: str = "+01:00"
    weekly: tuple[WeeklyWindow, ...] = (WeeklyWindow(3, dt.time(6), dt.time(8)),)
    windows: tuple[OnceWindow, ...] = ()
    availability_objective: float = 0.99
    slice_down_ratio: float = 0.5
    coverage_floor: float = 0.9
    latency_services: tuple[str, ...] = ("api",)
    latency_objectives: tuple[LatencyObjective, ...] = (
        LatencyObjective(0.5, 0.98),
        LatencyObjective(1.0, 0.99),
    )
    period: str = "iso_week"  # iso_week | month_start
    services: tuple[tuple[str, ServicePolicy], ...] = ()
    business_start: dt.time = dt.time(9, 0)
    business_end: dt.time = dt.time(18, 30)
    holidays_country: str = "FR"
    holidays_subdivision: str | None = None
    closed_days: tuple[dt.date, ...] = ()
    ticket_deadlines: tuple[tuple[str, float], ...] = (("P1", 8 * 3600.0), ("P2", 24 * 3600.0), ("P3", 40 * 3600.0))
    ticket_objective: float = 0.95
    ticket_columns: tuple[tuple[str, str], ...] = ()  # our name -> export's column name

    def policy(self, service: str) -> ServicePolicy:
        return dict(self.services).get(service, ServicePolicy())

    @property
    def thresholds(self) -> tuple[float, ...]:
        return tuple(o.below for o in self.latency_objectives)


@dataclass(frozen=True)
class AgentSettings:
    listen: str = "127.0.0.1:9810"
    state_dir: str = "/var/lib/sla-agent"
    location: str = ""
    rate_limit: int = 2000  # probes per second, all targets together
    per_host_concurrency: int = 100
    loop_lag_bound: float = 0.05
    flush_interval: float = 5.0
    retention_days: int = 400
    shutdown_grace: float = 10.0
    web_config_file: str | None = None
    log_level: str = "info"


@dataclass(frozen=True)
class Config:
    agent: AgentSettings
    contract: Contract
    targets: tuple[Target, ...]
    controls: tuple[Target, ...] = ()
    source: str = "<memory>"
    secrets: frozenset[str] = frozenset()  # values to redact wherever text leaves the agent

    @property
    def all_targets(self) -> tuple[Target, ...]:
        return self.targets + self.controls

    @property
    def services(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for t in self.targets:
            seen.setdefault(t.service, None)
        return tuple(seen)

    def targets_of(self, service: str) -> tuple[Target, ...]:
        return tuple(t for t in self.targets if t.service == service)
