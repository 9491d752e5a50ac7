"""Probes: one small interface (base.Probe), and a registry of types chosen by the config's `type:`.
Each type is a folder that registers itself on import; adding one is adding a folder and a line here."""
from .base import CONTROL_SERVICE, DOWN, Capture, Detail, ERROR_KINDS, INCONCLUSIVE, PROBE_TYPES, UP, Probe, ProbeResult, ProbeType, Target, inconclusive
from . import browser, dns, http, icmp, tcp  # noqa: F401  (register the types)


def probe_type(target: Target) -> ProbeType:
    return PROBE_TYPES[target.type]


def applicable_phases(target: Target) -> tuple[str, ...]:
    """The phases a probe of this target can spend time in."""
    return probe_type(target).applicable(target.options)


def make_probe(target: Target, **kwargs) -> Probe:
    return probe_type(target).probe(target, **kwargs)


__all__ = ["CONTROL_SERVICE", "Capture", "DOWN", "Detail", "ERROR_KINDS", "INCONCLUSIVE", "PROBE_TYPES", "UP", "Probe", "ProbeResult", "ProbeType", "Target",
           "applicable_phases", "inconclusive", "make_probe", "probe_type"]
