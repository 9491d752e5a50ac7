"""Configuration: frozen dataclasses (model) and a strict YAML loader (load)."""
from .load import ConfigError, ConfigIssue, load_config, parse_config, split_listen
from .model import (AgentSettings, Config, Contract, JsonAssertion, LatencyObjective, OnceWindow, ServicePolicy,
                    Target, TLSOptions, WeeklyWindow)

__all__ = ["AgentSettings", "Config", "ConfigError", "ConfigIssue", "Contract", "JsonAssertion", "LatencyObjective",
           "OnceWindow", "ServicePolicy", "Target", "TLSOptions", "WeeklyWindow", "load_config", "parse_config",
           "split_listen"]
