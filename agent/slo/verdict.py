"""The verdict ladder every objective shares, and how a month's row combines its periods' verdicts."""
from __future__ import annotations

from typing import Sequence

MET, MISSED, INSUFFICIENT, NO_DATA = "met", "missed", "insufficient_data", "no_data"


def verdict(has_data: bool, sufficient: bool, met: bool) -> str:
    """No data at all; too little to judge (coverage below the floor, nothing decided yet); met or missed."""
    if not has_data:
        return NO_DATA
    if not sufficient:
        return INSUFFICIENT
    return MET if met else MISSED


def combine_verdicts(verdicts: Sequence[str]) -> str:
    """A month's latency row: met when every period is met; missed when one is missed."""
    if not verdicts:
        return NO_DATA
    if MISSED in verdicts:
        return MISSED
    if INSUFFICIENT in verdicts:
        return INSUFFICIENT
    if all(v == NO_DATA for v in verdicts):
        return NO_DATA
    if NO_DATA in verdicts:
        return INSUFFICIENT
    return MET


def rounded(x: float | None, nd: int = 6) -> float | None:
    """Figures as documents show them (JSON, status, report)."""
    return None if x is None else round(float(x), nd)
