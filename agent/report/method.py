"""The method that travels with a bundle's figures (method.json): which agent, which config, how the
contract was read, what the report was built from, the Python, OpenSSL and TLS groups of the probes, and
the clocks that placed each result in its minute. `evidence verify` checks it against the bundle's other
files and prints it.

The runtime is the one of the installation that made the bundle, when it made it (an agent writes its
bundles with the code and libraries it probes with)."""
from __future__ import annotations

import hashlib
import platform
import ssl
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config
from ..probes.tls import offered_groups
from ..timestamping.stamper import shown

NAME = "method.json"
CLOCKSOURCE = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
WALL = ("the system clock, read through the agent's steady clock: it never goes back (a step back is met at the "
        "monotonic pace for an hour, then at half of it), so no result is filed in a minute already counted")
DURATIONS = "the monotonic clock: a latency never includes a step of the system clock"


def _clock(name: str) -> str:
    info = time.get_clock_info(name)
    return f"{info.implementation}, resolution {info.resolution:g} s{', adjustable' if info.adjustable else ''}"


def _clocksource() -> str:
    try:
        return CLOCKSOURCE.read_text(encoding="ascii").strip()
    except OSError:
        return "unknown"


def method(cfg: Config, doc: dict[str, Any], config_file: Path) -> dict[str, Any]:
    """The method of the report `doc`, whose config travels as `config_file`."""
    offered, shares = offered_groups()
    ev = doc["evidence"]
    ledgers = {name: part.get("chain") for name, part in (ev.get("locations") or {}).items()} \
        if "locations" in doc else {cfg.agent.location or "this agent": ev.get("chain")}
    return {
        "agent_version": __version__,
        "config_sha256": hashlib.sha256(config_file.read_bytes()).hexdigest(),
        "readings": doc.get("readings"),
        "built_from": {"ledgers": ledgers, "range": ev.get("range"), "cutoff": ev.get("cutoff"),
                       "rows_hashed": ev.get("rows_hashed"), "ledger_sha256": ev.get("ledger_sha256")},
        "runtime": {"python": f"{platform.python_implementation()} {platform.python_version()}",
                    "openssl": ssl.OPENSSL_VERSION, "platform": platform.platform()},
        "tls": {"groups_offered": offered, "key_share": shares,
                "browser": "browser checks use Chromium's own TLS, not this OpenSSL"
                if any(t.type == "browser" for t in cfg.all_targets) else None},
        "time": {"wall": WALL, "wall_clock": _clock("time"), "durations": DURATIONS,
                 "monotonic_clock": _clock("monotonic"), "clocksource": _clocksource(),
                 # the authorities that time-stamp the chain's head; their tokens travel in the ledger extract
                 "timestamps": [shown(u) for u in getattr(cfg.evidence.timestamping, "tsa", ())]},
    }


def check(stated: dict[str, Any], doc: dict[str, Any], config_file: Path) -> list[str]:
    """What method.json says that the bundle's other files contradict."""
    want = {"agent_version": doc.get("agent_version"), "readings": doc.get("readings"),
            "config_sha256": hashlib.sha256(config_file.read_bytes()).hexdigest()}
    problems = [f"{NAME}: {key} is not the bundle's (report.json, config.yaml)" for key, value in want.items()
                if stated.get(key) != value]
    built = stated.get("built_from") if isinstance(stated.get("built_from"), dict) else {}
    ev = doc.get("evidence") or {}
    problems += [f"{NAME}: built_from.{key} is not report.json's" for key in ("range", "cutoff", "rows_hashed",
                                                                             "ledger_sha256")
                 if built.get(key) != ev.get(key)]
    return problems


def describe(stated: dict[str, Any]) -> list[str]:
    """The lines `evidence verify` prints."""
    rt, tls, t = (stated.get(k) if isinstance(stated.get(k), dict) else {} for k in ("runtime", "tls", "time"))
    built = stated.get("built_from") if isinstance(stated.get("built_from"), dict) else {}
    stamps = t.get("timestamps") or []
    return [f"agent {stated.get('agent_version')}, config.yaml sha256 {stated.get('config_sha256')}",
            f"built from the ledger of {', '.join(str(k) for k in built.get('ledgers') or {})}: "
            f"{built.get('rows_hashed')} stored rows "
            f"over {' to '.join(map(str, built.get('range') or []))}",
            f"runtime: {rt.get('python')}, {rt.get('openssl')}, {rt.get('platform')}",
            f"TLS of the probes: key share {', '.join(tls.get('key_share') or []) or 'unknown'}; groups offered "
            f"{', '.join(tls.get('groups_offered') or []) or 'unknown'}" + (f" ({tls['browser']})" if tls.get('browser')
                                                                              else ""),
            f"clocks: wall time {t.get('wall_clock')} (clocksource {t.get('clocksource')}), durations "
            f"{t.get('monotonic_clock')}; RFC 3161 authorities: {', '.join(map(str, stamps)) or 'none'}"]
