"""The report over several months (`report --from/--to`, `--quarter`, `--year`): each month's report as
build.py makes it, whole and unchanged under `reports`, and under `period` one row per month and
objective and the period's totals, which each objective adds up from its own monthly rows
(slo's Objective.period). A month's report inside can be checked as it stands; the totals are checked by
adding the months up again."""
from __future__ import annotations

import re
from typing import Any

from .. import __version__
from ..calendar import Calendar, iso
from ..config.model import Config
from ..slo import objectives_of
from ..store import Store
from ..timeutil import parse_month
from . import signing
from .build import ReportError, build, open_store
from .evidence import sealed
from .verify import own_problems, verify_report

MAX_MONTHS = 36  # three years: a contract's term; more is a job for several reports
ROW_KEYS = ("row", "service", "measure", "objective", "value", "verdict")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_YEAR = re.compile(r"^\d{4}$")


def quarter(text: str) -> tuple[str, str]:
    """'2026-Q4' -> ('2026-10', '2026-12'). Raises ValueError saying what a quarter is."""
    m = _QUARTER.match(text.strip())
    if not m:
        raise ValueError(f"quarter must be YYYY-Qn, n from 1 to 4, such as 2026-Q4, got {text!r}")
    first = (int(m.group(2)) - 1) * 3 + 1
    return f"{m.group(1)}-{first:02d}", f"{m.group(1)}-{first + 2:02d}"


def year(text: str) -> tuple[str, str]:
    """'2026' -> ('2026-01', '2026-12'). Raises ValueError saying what a year is."""
    if not _YEAR.match(text.strip()):
        raise ValueError(f"year must be YYYY, such as 2026, got {text!r}")
    return f"{text.strip()}-01", f"{text.strip()}-12"


def months_between(first: str, last: str) -> list[str]:
    """The months from `first` to `last`, both included. Raises ValueError for a bad month or range."""
    (y0, m0), (y1, m1) = parse_month(first), parse_month(last)
    n = (y1 - y0) * 12 + m1 - m0 + 1
    if n < 1:
        raise ValueError(f"the period ends ({last}) before it begins ({first})")
    if n > MAX_MONTHS:
        raise ValueError(f"{first} to {last} is {n} months; a period report covers {MAX_MONTHS} at most: ask for "
                         "it in parts")
    return [f"{y0 + (m0 - 1 + i) // 12:04d}-{(m0 - 1 + i) % 12 + 1:02d}" for i in range(n)]


def months_of(cfg: Config, first: str, last: str, now: float) -> list[str]:
    """The months of the period, none of them still to begin as of `now` (the month under way is in, its
    report saying so). Raises ValueError saying what is wrong."""
    months = months_between(first, last)
    current = "{:04d}-{:02d}".format(*Calendar(cfg.contract).month_of(now))
    if months[-1] > current:
        ahead = next(m for m in months if m > current)
        raise ValueError(f"{ahead} has not begun (it is {current} in the contract's time zone): end the period at "
                         f"{current} at the latest")
    return months


def summary(cfg: Config, reports: list[dict[str, Any]], first: str, last: str) -> dict[str, Any]:
    """The `period` part of the document from the months' reports: their rows side by side, and per
    objective its row over the period, with the verdict it had each month."""
    totals = []
    for o in objectives_of(cfg.contract):
        row = o.period(reports, cfg.contract)
        row["months"] = {doc["month"]: r["verdict"] for doc, r in zip(reports, o.rows_in(reports))}
        totals.append(row)
    return {"from": first, "to": last, "months": [doc["month"] for doc in reports],
            "rows": [{"month": doc["month"], **{k: r[k] for k in ROW_KEYS}} for doc in reports for r in doc["rows"]],
            "totals": {"rows": totals}}


def build_period(cfg: Config, store: Store, first: str, last: str, now: float, sign: bool = True) -> dict[str, Any]:
    """The report of the months from `first` to `last` as of `now`: each month's built as `report --month`
    builds it; signed when a signing key is configured and `sign` is on."""
    try:
        months = months_of(cfg, first, last, now)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    reports = [build(cfg, store, m, now, sign) for m in months]
    doc: dict[str, Any] = {
        "period": summary(cfg, reports, first, last),
        "timezone": cfg.contract.timezone,
        "generated_at": iso(now, Calendar(cfg.contract).tz),
        "complete": all(r["complete"] for r in reports),
        "agent_version": __version__,
        "reports": reports,
    }
    doc["evidence"] = sealed(doc, {"algorithm": "sha256", "generated_epoch": now}, cfg, sign)
    return doc


def build_period_report(cfg: Config, state_dir: str, first: str, last: str, now: float) -> dict[str, Any]:
    store = open_store(cfg, state_dir)
    try:
        return build_period(cfg, store, first, last, now)
    finally:
        store.close()


def is_period(doc: Any) -> bool:
    return isinstance(doc, dict) and "period" in doc and "month" not in doc


def verify_period(cfg: Config, state_dir: str, doc: dict[str, Any], key: Any = None) -> list[str]:
    """Checks a period's JSON report: its own hash and signature, each month's report against the stored
    ledger (as `report --verify` checks one), and its totals added up again from those months."""
    period, reports = doc.get("period"), doc.get("reports")
    if not isinstance(period, dict) or not isinstance(reports, list) or not reports or \
            not all(isinstance(r, dict) for r in reports) or "generated_epoch" not in (doc.get("evidence") or {}):
        raise ReportError("not an sla-agent JSON period report (no period, reports or evidence block)")
    problems = own_problems(cfg, doc, key)
    for r in reports:
        try:
            problems += [f"{r.get('month')}: {p}" for p in verify_report(cfg, state_dir, r, key)]
        except ReportError as exc:
            problems.append(f"{r.get('month')}: {exc}")
    try:
        if [r["month"] for r in reports] != months_between(str(period.get("from")), str(period.get("to"))):
            problems.append(f"the months inside are not those from {period.get('from')} to {period.get('to')}")
        fresh = summary(cfg, reports, str(period["from"]), str(period["to"]))
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration, ZeroDivisionError) as exc:
        return problems + [f"the totals cannot be added up again from the months inside: {exc!r}"]
    if signing.canonical(fresh) != signing.canonical(period):
        problems.append("`period` (its rows or totals) differs from what the months' reports add up to")
    return problems
