"""Configuration: frozen dataclasses (model) and a strict YAML loader (load); each probe type reads its
own options (probes/<type>/spec.py) with the same machinery (schema/)."""
from ..schema import ConfigError, ConfigIssue
from .load import load_config, parse_config, split_listen
from .model import (AgentSettings, AvailabilitySpec, Config, Contract, EvidenceSettings, LatencyBound, LatencySpec, ObjectiveSpec,
                    OnceWindow, ServicePolicy, Target, TicketResponseSpec, WeeklyWindow)

__all__ = ["AgentSettings", "AvailabilitySpec", "Config", "ConfigError", "ConfigIssue", "Contract", "EvidenceSettings",
           "LatencyBound",
           "LatencySpec", "ObjectiveSpec", "OnceWindow", "ServicePolicy", "Target", "TicketResponseSpec",
           "WeeklyWindow", "load_config", "parse_config", "split_listen"]
