"""An Alertmanager configuration: pages and tickets routed by severity, SLA alerts held during
maintenance and while a location's own network fails."""
from __future__ import annotations

from typing import Any

from ..config.model import Config


def alertmanager_config(cfg: Config) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "sla-ticket",
            "group_by": ["alertname", "service"],
            "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h",
            "routes": [
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
            {"name": "null"},
        ],
    }
