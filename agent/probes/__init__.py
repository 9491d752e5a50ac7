"""Probes: one small interface (base.Probe) and a registry of types chosen by the config's `type:`."""
from .base import (DOWN, ERROR_KINDS, INCONCLUSIVE, OUTCOMES, PHASES, PROBE_TYPES, UP, Probe, ProbeResult,
                   inconclusive)
from . import http  # noqa: F401  (registers "http")


def applicable_phases(target) -> tuple[str, ...]:
    """The phases a probe of this target can spend time in."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(target.url)
    try:
        ipaddress.ip_address(parts.hostname or "")
        literal = True
    except ValueError:
        literal = False
    return tuple(p for p in PHASES if not (p == "dns" and literal) and not (p == "tls" and parts.scheme != "https"))


def make_probe(target, **kwargs) -> Probe:
    return PROBE_TYPES[target.type](target, **kwargs)


__all__ = ["DOWN", "ERROR_KINDS", "INCONCLUSIVE", "OUTCOMES", "PHASES", "PROBE_TYPES", "UP", "Probe",
           "ProbeResult", "applicable_phases", "inconclusive", "make_probe"]
