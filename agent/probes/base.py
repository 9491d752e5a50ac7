"""The probe interface: a target's common options, the result of one probe, the error kinds and their
outcome (docs/contract.md, "What a single probe says"), and the registry of probe types.

A probe type is a folder under probes/ that registers a ProbeType: its own config fields (read by the
loader next to the options every target has), the phases its probes spend time in, and the factory of
its Probe. Nothing outside the folder knows the type's options.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..schema import Field, Reader, Section

UP, DOWN, INCONCLUSIVE = "up", "down", "inconclusive"
CONTROL_SERVICE = "_control"  # the service of control checks: part of no SLA

# error_kind -> outcome. Provider failures are `down`; what the agent cannot attribute is `inconclusive`.
ERROR_KINDS: dict[str, str] = {
    "dns": DOWN,                 # the name does not resolve; for a dns check, no answer or an unexpected rcode
    "connect_refused": DOWN,     # nothing listens / RST on SYN
    "connect_timeout": DOWN,     # no TCP connection (or no DNS answer) within the timeout
    "connect_error": DOWN,       # other connection failure (unreachable host...)
    "tls": DOWN,                 # handshake failed or stalled, certificate invalid, expired or for another host
    "timeout": DOWN,             # connected, the request was sent, no complete answer within the timeout
    "reset": DOWN,               # the server reset or closed the connection before a complete response
    "protocol": DOWN,            # not HTTP (garbage), malformed response, bad redirect
    "too_many_redirects": DOWN,  # redirect loop or more than max_redirects
    "http_status": DOWN,         # status not in expect_status
    "assertion": DOWN,           # a body regex, JSON assertion or expected line failed
    "body_too_large": DOWN,      # the body exceeded max_body_bytes (read stopped at the limit)
    "auth": DOWN,                # no token from the OAuth2 token endpoint (outcome configurable per target)
    "resource_error": DOWN,      # a browser check: a same-origin request of the page failed (>= 500, network)
    "script_error": DOWN,        # a browser check: an uncaught JavaScript exception on the page
    "skipped": INCONCLUSIVE,     # the previous probe of the target was still in flight at the tick
    "agent_overload": INCONCLUSIVE,  # the event loop lagged past the bound during the probe
    "agent_network": INCONCLUSIVE,   # the control checks were failing: the agent's own network is suspect
    "agent_error": INCONCLUSIVE,     # a fault inside the agent (file descriptors exhausted, a bug)
    "agent_browser": INCONCLUSIVE,   # the agent's browser did not start, crashed or hung (killed, restarted)
}


@dataclass(frozen=True)
class Target:
    """The options every target has. `options` is the type's own frozen spec (HttpOptions, TcpOptions...)
    and names the type; `control` marks a control check (canary), part of no service."""

    name: str
    service: str
    options: Any
    interval: float = 5.0
    timeout: float = 5.0
    max_in_flight: int = 1
    labels: tuple[tuple[str, str], ...] = ()
    control: bool = False

    @property
    def type(self) -> str:
        return self.options.TYPE

    @property
    def address(self) -> str:
        """What is probed, for people (status page, sla_target_info): a URL, host:port..."""
        return self.options.address


@dataclass(frozen=True)
class Capture:
    """What a probe keeps for the failure journal: the response headers named here and the first
    `body_bytes` of the body. A probe captures for every failure and the first up result of every
    `up_every` seconds."""

    headers: tuple[str, ...] = ()
    body_bytes: int = 0
    up_every: float = 60.0  # 0: no up result is captured

    def up_bucket(self, wall: float) -> int:
        return int(wall // self.up_every) if self.up_every > 0 else -1


SECRET_SLACK = 1024  # a body is redacted before it is cut, so that no secret is kept cut in two


class FirstUp:
    """A probe's side of Capture: is this up result the first of its span of `up_every`? (The journal keeps
    those, and every failure.)"""

    def __init__(self, capture: Capture | None) -> None:
        self.capture = capture
        self._span = -1  # the span whose first up result was captured

    def __call__(self, wall: float) -> bool:
        span = self.capture.up_bucket(wall) if self.capture is not None else -1
        if span < 0 or span == self._span:
            return False
        self._span = span
        return True


class Failed(Exception):
    """A failure whose kind the probe already knows (an unexpected answer, a peer that closed)."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Detail:
    """The facts of one probe a journal record keeps beside its outcome (not yet redacted)."""

    address: str = ""  # the peer the probe reached or tried, ip:port
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""  # the first bytes of the body (or of the line a tcp probe read), SECRET_SLACK more
    cert_sha256: str = ""  # the server certificate's SHA-256 fingerprint
    body_bytes: int = 0  # what is kept of `body` once redacted
    artifacts: tuple[tuple[str, bytes], ...] = ()  # files kept with the record: (name, content), redacted


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One request a probe made to a token endpoint before its measured request (never part of it)."""

    duration_s: float
    result: str  # ok | error
    reason: str  # first | refresh | rejected (after a 401) | retry (after a failed request)


def address_text(sockaddr: tuple) -> str:
    """A socket address as Detail.address writes it: 192.0.2.1:443, [2001:db8::1]:443."""
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe, one outcome. Times: started_at is wall-clock UTC epoch seconds (for calendar
    buckets only); mono_start and duration_s come from the monotonic clock. `phases` holds one
    duration per phase of the target's type, in the type's order."""

    target: str
    service: str
    started_at: float
    mono_start: float
    duration_s: float
    outcome: str
    error_kind: str = ""
    status: int | None = None
    phases: tuple[float, ...] | None = None
    failed_assertions: tuple[str, ...] = ()
    latency_counted: bool = False  # in the latency population: sent and answered, or timed out
    tls_not_after: float | None = None
    error: str = ""
    detail: Detail | None = None
    token_requests: tuple[TokenRequest, ...] = ()
    marks: tuple[tuple[str, float], ...] = ()  # instants after the start a type reports (a browser's lcp)

    def replace_outcome(self, outcome: str, error_kind: str, error: str) -> "ProbeResult":
        return dataclasses.replace(self, outcome=outcome, error_kind=error_kind, error=error, latency_counted=False)


def inconclusive(target: str, service: str, started_at: float, mono_start: float, kind: str, error: str) -> ProbeResult:
    return ProbeResult(target, service, started_at, mono_start, 0.0, INCONCLUSIVE, kind, error=error)


class Probe(Protocol):
    async def run(self) -> ProbeResult: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ProbeType:
    """What a probe type brings. `build` makes the options from the fields read out of a target's
    mapping (it checks fields against each other, records errors on the reader, and returns None on
    one); `applicable` gives the phases a given target's probes can have, a subset of `phases`."""

    name: str
    fields: tuple[Field, ...]
    build: Callable[[Reader, Section, str], Any]
    phases: tuple[str, ...]
    applicable: Callable[[Any], tuple[str, ...]]
    probe: Callable[..., Probe]
    min_interval: float = 0.05
    default_interval: float = 5.0
    # the longest one probe may run, given the target's timeout (a transaction runs several requests)
    longest: Callable[[Any, float], float] = lambda options, timeout: timeout


PROBE_TYPES: dict[str, ProbeType] = {}


def register(ptype: ProbeType) -> ProbeType:
    PROBE_TYPES[ptype.name] = ptype
    return ptype
