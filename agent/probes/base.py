"""The probe interface, its result, the error kinds and how each maps to an outcome (CONTRACT §3)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

UP, DOWN, INCONCLUSIVE = "up", "down", "inconclusive"
OUTCOMES = (UP, DOWN, INCONCLUSIVE)
PHASES = ("dns", "connect", "tls", "ttfb", "transfer")

# error_kind -> outcome. Provider failures are `down`; what the agent cannot attribute is `inconclusive`.
ERROR_KINDS: dict[str, str] = {
    "dns": DOWN,                 # the name does not resolve (while the control checks are healthy)
    "connect_refused": DOWN,     # nothing listens / RST on SYN
    "connect_timeout": DOWN,     # no TCP connection (or no DNS answer) within the timeout
    "connect_error": DOWN,       # other connection failure (unreachable host...)
    "tls": DOWN,                 # handshake failed or stalled, certificate invalid, expired or for another host
    "timeout": DOWN,             # connected, the request was sent, no complete answer within the timeout
    "reset": DOWN,               # the server reset or closed the connection before a complete response
    "protocol": DOWN,            # not HTTP (garbage), malformed response, bad redirect
    "too_many_redirects": DOWN,  # redirect loop or more than max_redirects
    "http_status": DOWN,         # status not in expect_status
    "assertion": DOWN,           # a body regex or JSON assertion failed
    "body_too_large": DOWN,      # the body exceeded max_body_bytes (read stopped at the limit)
    "skipped": INCONCLUSIVE,     # the previous probe of the target was still in flight at the tick
    "agent_overload": INCONCLUSIVE,  # the event loop lagged past the bound during the probe
    "agent_network": INCONCLUSIVE,   # the control checks were failing: the agent's own network is suspect
    "agent_error": INCONCLUSIVE,     # a fault inside the agent (file descriptors exhausted, a bug)
}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe, one outcome. Times: started_at is wall-clock UTC epoch seconds (for calendar
    buckets only); mono_start and duration_s come from the monotonic clock."""

    target: str
    service: str
    started_at: float
    mono_start: float
    duration_s: float
    outcome: str
    error_kind: str = ""
    status: int | None = None
    phases: tuple[float, float, float, float, float] | None = None  # dns, connect, tls, ttfb, transfer
    failed_assertions: tuple[str, ...] = ()
    latency_counted: bool = False  # in the latency population: sent and answered, or timed out
    tls_not_after: float | None = None
    error: str = ""

    def replace_outcome(self, outcome: str, error_kind: str, error: str) -> "ProbeResult":
        return ProbeResult(self.target, self.service, self.started_at, self.mono_start, self.duration_s, outcome,
                           error_kind, self.status, self.phases, self.failed_assertions, False,
                           self.tls_not_after, error)


def inconclusive(target: str, service: str, started_at: float, mono_start: float, kind: str, error: str) -> ProbeResult:
    return ProbeResult(target, service, started_at, mono_start, 0.0, INCONCLUSIVE, kind, error=error)


class Probe(Protocol):
    async def run(self) -> ProbeResult: ...

    async def close(self) -> None: ...


PROBE_TYPES: dict[str, Callable[..., Probe]] = {}


def register(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        PROBE_TYPES[name] = cls
        return cls

    return deco
