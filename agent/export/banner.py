"""The status page's headline: per row of the contract's table, where the month is heading, from the
projections the engine already makes (docs/metrics.md, "The status page"). It never replaces the
verdict column, which stays the contract's: the banner reads ahead, the verdict judges what is observed."""
from __future__ import annotations

from typing import Any

from ..report.formats.common import pct

ON_TRACK, AT_RISK, LOST, PENDING = "on_track", "at_risk", "lost", "pending"
TEXT = {ON_TRACK: "ON TRACK", AT_RISK: "AT RISK", LOST: "LOST", PENDING: "NOT ENOUGH DATA YET"}
MEANING = {
    ON_TRACK: "at the recent rate the row ends the month within its objective",
    AT_RISK: "at the recent rate it ends below; still recoverable",
    LOST: "already beyond what the month allows, whatever comes next",
    PENDING: "too little observed to project: no verdict either way yet",
}


def hm(seconds: float) -> str:
    m = int(abs(seconds) // 60)
    return f"{m // 60} h {m % 60:02d} min"


def _availability(r: dict[str, Any]) -> tuple[str, str]:
    d = r["details"]
    observed = d["slices"]["up"] + d["slices"]["down"]
    so_far = f"{pct(d['ratio'])} so far ({observed} min observed)" if observed else "no minute observed yet"
    if d["lost"]:
        return LOST, f"{so_far}; down time {hm(-d['budget_remaining_s'])} beyond the month's budget"
    if d["projected_ratio"] is None:
        return PENDING, so_far
    state = ON_TRACK if d["projected_ratio"] >= r["objective"] else AT_RISK
    return state, f"{so_far}, heading for {pct(d['projected_ratio'])}; {hm(d['budget_remaining_s'])} of down time left"


def _latency(r: dict[str, Any], status: dict[str, Any], report: dict[str, Any]) -> tuple[str, str]:
    live = status["services"].get(r["service"], {}).get("latency", {})
    period, allowance = live.get("period"), live.get("allowance")
    missed = [p for p in report["periods"] if p["service"] == r["service"] and p["complete"]
              and p["verdict"] == "missed"]
    if missed:
        return LOST, f"the 7-day period from {missed[0]['start'][:10]} ended below its objective"
    if not period or not period["count"] or not allowance:
        return PENDING, "no request measured in the current 7-day period yet"
    so_far = ", ".join(f"{pct(b['fraction'])} < {t} s" for t, b in period["below"].items())
    so_far += f" so far this 7-day period ({period['count']} requests)"
    bounds = allowance["below"].values()
    if any(b["lost"] for b in bounds):
        return LOST, f"{so_far}; more slow requests than the period allows"
    if any(b["projected"] > b["allowed"] for b in bounds):
        return AT_RISK, f"{so_far}; at the recent slow share it ends beyond its allowance"
    return ON_TRACK, so_far


def _tickets(r: dict[str, Any]) -> tuple[str, str]:
    f = r["details"]
    if f["ratio"] is None:
        return PENDING, f"{f['total']} ticket(s), none answered or overdue yet"
    so_far = f"{pct(f['ratio'], 1)} answered in time so far ({f['met']} of {f['met'] + f['missed']})"
    return (ON_TRACK if f["ratio"] >= r["objective"] else AT_RISK), so_far


def failing_now(status: dict[str, Any], service: str) -> list[tuple[str, str]]:
    """The service's targets whose last probe failed: (target, since). Their open minutes count once closed."""
    return [(name, (t["state_since"] or "")[11:19]) for name, t in status["targets"].items()
            if t["service"] == service and not t["control"] and t["outcome"] == "down"]


def verdicts(status: dict[str, Any], report: dict[str, Any]) -> list[dict[str, Any]]:
    """One headline per row: its state and the figure so far."""
    out = []
    for r in report["rows"]:
        if r["measure"] == "availability":
            state, figure = _availability(r)
        elif r["measure"] == "latency":
            state, figure = _latency(r, status, report)
        else:
            state, figure = _tickets(r)
        out.append({"row": r["row"], "service": r["service"], "measure": r["measure"], "state": state,
                    "figure": figure, "failing": failing_now(status, r["service"])})
    return out
