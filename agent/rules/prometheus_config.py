"""A Prometheus configuration that scrapes the agent and loads its rules."""
from __future__ import annotations

from typing import Any

from ..config.model import Config


def prometheus_config(cfg: Config) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "30s"},
        "rule_files": ["rules/sla-agent.rules.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]},
        "scrape_configs": [{
            "job_name": "sla-agent",
            "scrape_interval": "15s",
            "static_configs": [{"targets": [cfg.agent.listen]}],
        }],
    }
