"""What every rendering of the report shares: how verdicts, shares and durations are written."""
from __future__ import annotations

from typing import Any

VERDICT_TEXT = {"met": "MET", "missed": "MISSED", "insufficient_data": "INSUFFICIENT DATA", "no_data": "NO DATA"}


def pct(x: float | None, nd: int = 3) -> str:
    return "-" if x is None else f"{x * 100:.{nd}f} %"


def row_value(r: dict[str, Any]) -> str:
    v = r["value"]
    if isinstance(v, dict):
        return ", ".join(f"{pct(f)} < {t} s" for t, f in v.items())
    return pct(v)


def row_objective(r: dict[str, Any]) -> str:
    o = r["objective"]
    if isinstance(o, dict):
        return ", ".join(f">= {r * 100:g} % < {t} s" for t, r in o.items())
    return f">= {o * 100:g} %"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f} ms"


def kinds(i: dict[str, Any]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in i["error_kinds"].items())
