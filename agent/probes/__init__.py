"""Probes: one small interface (base.Probe) and a registry of types chosen by the config's `type:`."""
from .base import (DOWN, ERROR_KINDS, INCONCLUSIVE, OUTCOMES, PHASES, PROBE_TYPES, UP, Probe, ProbeResult,
                   inconclusive)
from . import http  # noqa: F401  (registers "http")


def make_probe(target, **kwargs) -> Probe:
    return PROBE_TYPES[target.type](target, **kwargs)


__all__ = ["DOWN", "ERROR_KINDS", "INCONCLUSIVE", "OUTCOMES", "PHASES", "PROBE_TYPES", "UP", "Probe",
           "ProbeResult", "inconclusive", "make_probe"]
