"""Prometheus recording and alerting rules, generated from the config so the alerts measure what the
report measures: each objective class gives the rules of its objectives (slo/), this module adds the
agent's own health and puts them in groups."""
from __future__ import annotations

from typing import Any

from ..config.model import Config, Contract
from ..probes import CONTROL_SERVICE
from ..slo import OBJECTIVE_CLASSES, by_class, objectives_of
from ..slo.objective import RuleContext
from ..slo.promql import GROUPS, HEALTH_GROUP


def _health(c: Contract) -> list[dict[str, Any]]:
    """The agent's own health: not scraped, its network, certificates, coverage, its ledger."""
    return [
        {"alert": "SLAAgentDown", "expr": 'up{job="sla-agent"} == 0', "for": "2m",
         "labels": {"severity": "page", "slo": "agent"},
         "annotations": {"summary": "sla-agent {{ $labels.instance }} is down or not answering scrapes",
                         "description": "No measurement is being taken: the month's coverage drops."}},
        {"alert": "SLAAgentNotScraped", "expr": 'absent(up{job="sla-agent"})', "for": "10m",
         "labels": {"severity": "ticket", "slo": "agent"},
         "annotations": {"summary": "Prometheus has no sla-agent target",
                         "description": "Check the scrape configuration (job sla-agent)."}},
        {"alert": "SLAControlChecksFailing",
         "expr": f'max by (location) (sla_probe_success{{service="{CONTROL_SERVICE}"}}) == 0', "for": "2m",
         "labels": {"severity": "ticket", "slo": "agent"},
         "annotations": {"summary": "Every control check fails at {{ $labels.location }}: the agent's own network "
                                    "is in trouble",
                         "description": "Provider failures seen meanwhile are recorded as inconclusive."}},
        {"alert": "SLATLSCertificateExpiringSoon",
         "expr": "(min by (service, target, location) (sla_tls_cert_expiry_timestamp_seconds) - time()) < 14 * 86400",
         "for": "1h", "labels": {"severity": "ticket", "slo": "tls"},
         "annotations": {"summary": "{{ $labels.target }}: certificate expires in "
                                    "{{ $value | humanizeDuration }}",
                         "description": "An expired certificate makes every probe of the target fail."}},
        {"alert": "SLACoverageBelowFloor",
         "expr": f'sla_coverage_ratio{{window="month"}} < {c.coverage_floor}', "for": "30m",
         "labels": {"severity": "ticket", "slo": "coverage"},
         "annotations": {"summary": "{{ $labels.service }}: only {{ $value | humanizePercentage }} of the month "
                                    "observed",
                         "description": f"Below {c.coverage_floor * 100:g} % the month's verdict is "
                                        f"'insufficient data', never 'met'."}},
        {"alert": "SLAStateWriteErrors", "expr": "increase(sla_state_write_errors_total[10m]) > 0",
         "labels": {"severity": "page", "slo": "agent"},
         "annotations": {"summary": "sla-agent {{ $labels.instance }} cannot write its ledger",
                         "description": "Probing goes on in memory; a restart now would lose data. Disk full?"}},
    ]


def _ticket_feed(every: float) -> dict[str, Any]:
    return {"alert": "SLATicketFeedFailing", "expr": "sla_tickets_fetch_success == 0", "for": f"{int(every * 2)}s",
            "labels": {"severity": "ticket", "slo": "agent"},
            "annotations": {"summary": "sla-agent {{ $labels.instance }} cannot import the support tool's export",
                            "description": "The stored tickets are kept but go stale: open tickets answered since "
                                           "keep their deadline alerts. See the agent's log for the reason."}}


def _timestamping(every: float) -> dict[str, Any]:
    """No token for twice the interval (its gauge starts at the agent's start): the chain's recent links have
    no independent time. The next token covers them, once the authority answers again."""
    return {"alert": "SLAEvidenceTimestampsMissing",
            "expr": f"time() - sla_evidence_timestamp_last_success_timestamp_seconds > {int(every * 2)}",
            "labels": {"severity": "ticket", "slo": "agent"},
            "annotations": {"summary": "sla-agent {{ $labels.instance }}: no time-stamp from {{ $labels.tsa }} for "
                                       "{{ $value | humanizeDuration }}",
                            "description": "The evidence written since has no independent time yet; probing goes on. "
                                           "See the agent's log and sla_evidence_timestamp_failures_total."}}


def _delivery() -> dict[str, Any]:
    """A closed month's report that has not reached a receiver within an hour of its first failure: its
    gauge is set from the agent's record (so a restart does not hide it) and cleared by a later success."""
    since = "sla_report_delivery_failing_since_timestamp_seconds"
    return {"alert": "SLAReportDeliveryFailing", "expr": f"time() - {since} > 3600 and {since} > 0",
            "labels": {"severity": "ticket", "slo": "agent"},
            "annotations": {"summary": "sla-agent {{ $labels.instance }}: the month's report has not reached its "
                                       "{{ $labels.channel }} receiver for {{ $value | humanizeDuration }}",
                            "description": "It is tried again, up to a day after the first failure; the agent's "
                                           "log, its status page and the revision's delivery.json say why."}}


def _maintenance() -> dict[str, Any]:
    return {"alert": "SLAMaintenanceWindow", "expr": "max(sla_maintenance_active) > 0",
            "labels": {"severity": "info", "slo": "maintenance"},
            "annotations": {"summary": "A maintenance or exclusion window is open: SLA alerts are held",
                            "description": "Alertmanager inhibits availability and latency alerts meanwhile."}}


def rule_groups(cfg: Config) -> list[dict[str, Any]]:
    """Recording rules first in their group, the alerts that read them after (a group evaluates in order)."""
    recording: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    alerts: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    alerts[HEALTH_GROUP] += _health(cfg.contract)
    present = by_class(objectives_of(cfg.contract))
    rc = RuleContext(cfg.contract, cfg.agent.url, cfg.alerts.ticket_deadline_soon, cfg.alerts.projection_window)
    for cls in OBJECTIVE_CLASSES.values():
        rs = cls.rules(present.get(cls, []), rc)
        for group, rules in rs.recording.items():
            recording[group] += rules
        for group, rules in rs.alerts.items():
            alerts[group] += rules
    if cfg.tickets is not None:
        alerts[HEALTH_GROUP].append(_ticket_feed(cfg.tickets.every))
    if cfg.evidence.timestamping is not None:
        alerts[HEALTH_GROUP].append(_timestamping(cfg.evidence.timestamping.every))
    if cfg.reports.deliver.channels:
        alerts[HEALTH_GROUP].append(_delivery())
    alerts[HEALTH_GROUP].append(_maintenance())
    return [{"name": g, "rules": recording[g] + alerts[g]} for g in GROUPS if recording[g] or alerts[g]]
