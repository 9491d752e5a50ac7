"""What the objectives' Prometheus rules share: the burn-rate windows, the quorum across locations, the
maintenance guard, the group names, label spellings.

Every error ratio is computed per location and then combined across locations as "the second worst, or
the only one": one location's network failure never pages alone, and the same rules serve one agent or
many (federation, Thanos, Mimir).
"""
from __future__ import annotations

from typing import Iterable

# (severity, long window, short window, burn factor, for): the SRE workbook's multiwindow alerts
BURN_ALERTS = (
    ("page", "1h", "5m", 14.4, "2m"),
    ("page", "6h", "30m", 6.0, "15m"),
    ("ticket", "1d", "2h", 3.0, "1h"),
    ("ticket", "3d", "6h", 1.0, "3h"),
)
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
NOT_IN_MAINTENANCE = "unless on () (max(sla_maintenance_active) > 0)"

# Each alert sits in the group of the recording rules it reads, after them: a group evaluates its rules in
# order, while separate groups race each other (an alert could read the previous value).
AVAILABILITY_GROUP = "sla-agent-availability"
LATENCY_GROUP = "sla-agent-latency"
WINDOWS_GROUP = "sla-agent-windows"
HEALTH_GROUP = "sla-agent-health"
CONTRACT_GROUP = "sla-agent-contract"  # alerts on the contract's own terms, for vendor management
GROUPS = (AVAILABILITY_GROUP, LATENCY_GROUP, WINDOWS_GROUP, HEALTH_GROUP, CONTRACT_GROUP)
CONTRACT = {"audience": "contract"}  # Alertmanager routes these to the contract receiver, never the on-call


def le(seconds: float) -> str:
    """The `le` label value prometheus_client writes for a bucket bound (0.5 -> "0.5", 1 -> "1.0")."""
    return repr(float(seconds))


def threshold_label(seconds: float) -> str:
    return f"{seconds:g}"


def objective_name(seconds: float) -> str:
    return f"latency_{int(round(seconds * 1000))}ms" if seconds < 1 else f"latency_{seconds:g}s"


def service_selector(services: Iterable[str]) -> str:
    return f'service=~"{"|".join(services)}"'


def quorum(record: str, by: str = "service") -> str:
    """Across locations: the second-highest ratio (two places must agree), or the only one."""
    return f"min by ({by}) (topk by ({by}) (2, {record}))"


def agreed(expr: str, by: str, k: int) -> str:
    """Across locations, for figures where higher is worse: the k-th highest (k places must agree, as a
    minute counts down in the report over several places), or the lowest when fewer report."""
    return f"min by ({by}) (topk by ({by}) ({k}, {expr}))"


def across_places(expr: str, by: str, contract_min_agree: int, latency_locations: str = "") -> str:
    """A figure where higher is worse (an overrun), across locations as the report over several places
    decides: latency by the place most favourable to the vendor (`best`: all must be over), any place
    (`each`), all places' requests together (`pooled`), or `min_agree` places for availability."""
    if latency_locations == "best":
        return f"min by ({by}) ({expr})"
    if latency_locations == "each":
        return f"max by ({by}) ({expr})"
    if latency_locations == "pooled":  # counts add up across places, and so do the allowances
        return f"sum by ({by}) ({expr})"
    return agreed(expr, by, max(1, contract_min_agree))


def links(url: str, service: str = "{{ $labels.service }}") -> dict[str, str]:
    """The annotations that point at the month's live report and its failure journal on the agent."""
    return {"report": f"{url}/report?month={{{{ $labels.month }}}}",
            "evidence": f"{url}/api/v1/journal?month={{{{ $labels.month }}}}&service={service}"}


def lost_and_at_risk(name: str, lost: str, at_risk: str, by: str, labels: dict[str, str],
                     notes: tuple[dict[str, str], dict[str, str]]) -> list[dict]:
    """A contract alert pair: `{name}Lost` (nothing later can save the objective) and `{name}AtRisk` (the
    recent trend will lose it), the second held while the first fires."""
    return [{"alert": f"{name}Lost", "expr": lost, "labels": dict(labels), "annotations": notes[0]},
            {"alert": f"{name}AtRisk", "expr": f"{at_risk}\nunless on ({by}) ({lost})", "for": "30m",
             "labels": dict(labels), "annotations": notes[1]}]


def burn_name(prefix: str, severity: str, long_w: str) -> str:
    return f"{prefix}{'Fast' if severity == 'page' else 'Slow'}{long_w}"


def burn_expr(record: str, threshold: float, long_w: str, short_w: str, selector: str = "") -> str:
    return (f"(\n  {record}{long_w}{selector} > {threshold}\n  and\n"
            f"  {record}{short_w}{selector} > {threshold}\n)\n{NOT_IN_MAINTENANCE}")
