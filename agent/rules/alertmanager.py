"""An Alertmanager configuration: the contract alerts (audience="contract") to vendor management and
nowhere else; the on-call's pages and tickets routed by severity; SLA alerts held during maintenance
and while a location's own network fails."""
from __future__ import annotations

from typing import Any

from ..config.model import Config


def _contract_receiver(cfg: Config) -> dict[str, Any]:
    a = cfg.alerts
    if a.contract_email:
        return {"name": "sla-contract", "email_configs": [{"to": a.contract_email, "send_resolved": True}]}
    return {"name": "sla-contract", "webhook_configs": [{"url": a.contract_webhook_url, "send_resolved": True}]}


def alertmanager_config(cfg: Config) -> dict[str, Any]:
    a = cfg.alerts
    smtp = {"global": {"smtp_smarthost": a.smtp_smarthost, "smtp_from": a.smtp_from}} if a.contract_email else {}
    return {
        **smtp,
        "route": {
            "receiver": "sla-ticket",
            "group_by": ["alertname", "service"],
            "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h",
            "routes": [
                # first, and final: a contract alert is for vendor management; the on-call already had the
                # burn-rate alerts for the same minutes. A lost month stays lost: once a day is enough.
                {"matchers": ['audience="contract"'], "receiver": "sla-contract",
                 "group_by": ["alertname", "service", "priority", "ticket", "objective"], "repeat_interval": "24h"},
                {"matchers": ['severity="page"'], "receiver": "sla-page", "repeat_interval": "1h"},
                {"matchers": ['severity="ticket"'], "receiver": "sla-ticket"},
                {"matchers": ['severity="info"'], "receiver": "null"},
            ],
        },
        "inhibit_rules": [{
            # inside a maintenance window the SLA alerts are held (the rules also say so themselves)
            "source_matchers": ['alertname="SLAMaintenanceWindow"'],
            "target_matchers": ['slo=~"availability|latency_.*"'],
        }, {
            # the agent's own network is failing: provider alerts are not to be trusted
            "source_matchers": ['alertname="SLAControlChecksFailing"'],
            "target_matchers": ['slo=~"availability|latency_.*"'],
            "equal": ["location"],
        }],
        "receivers": [
            {"name": "sla-page", "webhook_configs": [{"url": "http://127.0.0.1:9095/page", "send_resolved": True}]},
            {"name": "sla-ticket", "webhook_configs": [{"url": "http://127.0.0.1:9095/ticket", "send_resolved": True}]},
            _contract_receiver(cfg),
            {"name": "null"},
        ],
    }
