"""The alerts on the contract itself, under `promtool test rules`: the input series are the gauges the
agent's own code computes at each instant from a ledger month and the contract calendar, and the expected
firing instants are worked out here independently, minute by minute."""
from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pytest
import yaml

from agent.calendar import Calendar
from agent.config import parse_config
from agent.ledger import Ledger
from agent.probes import ProbeResult
from agent.rules import write_all
from agent.slo import DayCache, context, objectives_of
from agent.slo.promql import CONTRACT_GROUP
from agent.tickets import Ticket

from .test_deploy import tool

TZ = dt.timezone(dt.timedelta(hours=1))
CONFIG = """
agent: {external_url: "https://sla.example.com"}
contract: {timezone: "+01:00"}
targets:
  - {name: api-health, service: api, url: "http://127.0.0.1:9/", interval: 60s, timeout: 5s}
"""
SETTLE = 10  # the target's timeout + the flush interval: a minute counts once this long has passed
SEP1 = dt.datetime(2026, 9, 1, tzinfo=TZ).timestamp()
STEP = 600  # the gauges are sampled (and the rules evaluated) every ten minutes over the month


def series_values(values: list[float | None]) -> str:
    """promtool's expanding notation: `_xN` for N missing samples, `AxN` for N + 1 equal ones, `A+BxN`
    for integral steps (exact in floating point), the value itself otherwise."""
    out, i = [], 0
    while i < len(values):
        v = values[i]
        j = i + 1
        if v is None:
            while j < len(values) and values[j] is None:
                j += 1
            out.append("_" if j - i == 1 else f"_x{j - i}")
        elif j < len(values) and values[j] is not None and float(v).is_integer() and \
                float(values[j] - v).is_integer():
            step = values[j] - v
            while j < len(values) and values[j] is not None and values[j] == v + step * (j - i):
                j += 1
            n = j - i - 1
            out.append(f"{v:g}x{n}" if step == 0 else f"{v:.0f}{'+' if step > 0 else '-'}{abs(step):.0f}x{n}")
        else:
            while j < len(values) and values[j] == v:
                j += 1
            out.append(repr(float(v)) if j - i == 1 else f"{float(v)!r}x{j - i - 1}")
        i = j
    return " ".join(out)


def sampled(times: list[float], samples_at: Callable[[float], Iterable]) -> dict[str, list[float | None]]:
    """Each series the agent exports, sampled at `times` (None where it is absent)."""
    rows: dict[str, list[float | None]] = {}
    for i, t in enumerate(times):
        for s in samples_at(t):
            key = s.metric + "{" + ",".join(f'{k}="{v}"' for k, v in s.labels) + "}"
            rows.setdefault(key, [None] * len(times))[i] = s.value
    return rows


def promtool_test(tmp_path: Path, cfg, interval: int, rows: dict[str, list], checks: list[dict]) -> None:
    write_all(cfg, tmp_path / "gen")
    generated = yaml.safe_load((tmp_path / "gen" / "prometheus" / "rules" / "sla-agent.rules.yml").read_text())
    rules = tmp_path / "contract.rules.yml"  # the contract group alone: it reads the agent's gauges only
    rules.write_text(yaml.safe_dump({"groups": [g for g in generated["groups"] if g["name"] == CONTRACT_GROUP]}))
    doc = {"rule_files": [str(rules)],
           "evaluation_interval": f"{interval}s",
           "tests": [{"interval": f"{interval}s",
                      "input_series": [{"series": k, "values": series_values(v)} for k, v in rows.items()],
                      "alert_rule_test": checks}]}
    path = tmp_path / "contract.test.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=10_000))
    p = subprocess.run([tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]


def check(at: float, alert: str, firing: list[tuple[dict, dict]] | None = None) -> dict:
    return {"eval_time": f"{int(at)}s", "alertname": alert,
            "exp_alerts": [{"exp_labels": lb, "exp_annotations": an} for lb, an in (firing or [])]}


def humanize_duration(v: float) -> str:
    """Prometheus' humanizeDuration template function, for values of a second or more."""
    sign, v = ("-", -v) if v < 0 else ("", v)
    d, h, m, s = int(v // 86400), int(v // 3600 % 24), int(v // 60 % 60), int(v % 60)
    if d:
        return f"{sign}{d}d {h}h {m}m {s}s"
    if h:
        return f"{sign}{h}h {m}m {s}s"
    if m:
        return f"{sign}{m}m {s}s"
    return f"{sign}{v:.4g}s"


def humanize_percentage(v: float) -> str:
    """Prometheus' humanizePercentage: Go's %.4g of the percentage."""
    text = f"{v * 100:.4g}"
    return f"{text}%"


# -- the month --------------------------------------------------------------------------------------------
def in_maintenance(minute_start: float) -> bool:
    local = dt.datetime.fromtimestamp(minute_start, TZ)
    return local.weekday() == 3 and 6 <= local.hour < 8


class Month:
    """September 2026 (+01:00, four Thursday maintenance windows), one probe a minute; `down` says which
    minutes fail."""

    def __init__(self, down: Callable[[int], bool]) -> None:
        self.cfg = parse_config(CONFIG)
        self.cal = Calendar(self.cfg.contract)
        self.start, self.end = self.cal.month_bounds(2026, 9)
        self.minutes = [self.start + 60 * i for i in range(int((self.end - self.start) // 60))]
        self.down = [down(i) for i in range(len(self.minutes))]
        self.down_array = np.array(self.down, dtype=bool)
        self.maint = np.array([in_maintenance(m) for m in self.minutes], dtype=bool)
        led = Ledger(self.cfg.contract.thresholds, day_start=self.cal.day_start)
        led.anchor(self.end)
        for m, is_down in zip(self.minutes, self.down):
            r = ProbeResult("api-health", "api", m + 1, 0.0, 0.1, "down" if is_down else "up", "http_status" if
                            is_down else "", status=503 if is_down else 200, latency_counted=True)
            led.add(r, masked=self.cal.active(m + 1) is not None)
        self.ctx = context(led, self.cfg, self.cal, cache=DayCache(self.cal))
        self.objective = next(o for o in objectives_of(self.cfg.contract) if o.kind == "availability"
                              and o.subject == "api")
        self.times = [self.start + STEP * i for i in range(int((self.end - self.start) // STEP))]

    def gauges(self) -> dict[str, list[float | None]]:
        return sampled(self.times, lambda t: self.objective.samples("budget", self.objective.budget(self.ctx, t)))

    def lost_at(self) -> float | None:
        """The first sample instant at which the counted down minutes exceed 1 % of the month's eligible
        minutes (none unknown here), worked out without the agent."""
        counted = np.cumsum(self.down_array & ~self.maint)
        over = np.flatnonzero(counted > 0.01 * int((~self.maint).sum()))
        if not len(over):
            return None
        closed = self.minutes[over[0]] + 60 + SETTLE
        return next(t for t in self.times if t >= closed)

    def counted(self, t: float, since: float | None = None) -> tuple[int, int, int]:
        """(up, down, eligible minutes still to come) as the month stands at `t`: minutes closed SETTLE
        seconds before, maintenance left out; from `since` on when given."""
        cut = int((t - SETTLE) // 60) - int(self.start // 60)  # minute indexes in the month
        first = 0 if since is None else max(0, int(since // 60) - int(self.start // 60))
        eligible, down = ~self.maint, self.down_array & ~self.maint
        counted = eligible[first:cut].sum()
        return int(counted - down[first:cut].sum()), int(down[first:cut].sum()), int(eligible[cut:].sum())

    def lost_annotations(self, t: float) -> dict:
        up, down, future = self.counted(t)
        over = down * 60 - 0.01 * (up + down + future) * 60
        return {"summary": "api: the 99 % availability of 2026-09 is lost",
                "description": f"Down time already exceeds the month's budget by {humanize_duration(over)}: even if "
                               f"every minute left is up, the month ends below 99 %. Maintenance and declared "
                               f"exclusions are left out.",
                **LINKS}

    def risk_annotations(self, t: float) -> dict:
        up, down, future = self.counted(t)
        r_up, r_down, _ = self.counted(t, since=int((t - SETTLE) // 60) * 60 - 86400)
        projected = (up + future * r_up / (r_up + r_down)) / (up + down + future)
        return {"summary": "api: the 99 % availability of 2026-09 is at risk",
                "description": f"At the burn of the last 1 d the month ends with {humanize_percentage(1 - projected)} "
                               f"of its time down (at most 1 % keeps 99 %): its budget runs out before the month "
                               f"does.", **LINKS}

    def at(self, day: int, hour: int = 0, minute: int = 0) -> float:
        return dt.datetime(2026, 9, day, hour, minute, tzinfo=TZ).timestamp()

    def rel(self, t: float) -> float:
        return t - self.start


LOST = {"service": "api", "month": "2026-09", "severity": "ticket", "slo": "availability", "audience": "contract"}
LINKS = {"report": "https://sla.example.com/report?month=2026-09",
         "evidence": "https://sla.example.com/api/v1/journal?month=2026-09&service=api"}


def test_month_lost_on_day_12_fires_from_that_evaluation_on_and_never_before(tmp_path):
    outage = dt.datetime(2026, 9, 12, 3, 0, tzinfo=TZ).timestamp()
    month = Month(lambda i: outage <= SEP1 + 60 * i < outage + 8 * 3600)
    lost = month.lost_at()
    assert lost is not None and dt.datetime.fromtimestamp(lost, TZ).day == 12
    rows = month.gauges()

    def lost_check(t: float) -> dict:
        return check(month.rel(t), "SLAMonthLost", [(LOST, month.lost_annotations(t))] if t >= lost else [])

    checks = [lost_check(lost - STEP), lost_check(lost)]
    checks += [lost_check(t) for t in month.times[::36]]  # every six hours: silent before, firing after
    checks.append(lost_check(month.times[-1]))
    promtool_test(tmp_path, month.cfg, STEP, rows, checks)
    remaining = rows['sla_month_budget_remaining_seconds{service="api",month="2026-09"}']
    first = month.times.index(lost)
    assert remaining[first - 1] >= 0 > remaining[first]


def test_a_burn_that_exhausts_the_budget_on_day_25_is_at_risk_first(tmp_path):
    month = Month(lambda i: i % 80 == 79)  # 1.25 % of the minutes, evenly
    lost = month.lost_at()
    assert lost is not None and dt.datetime.fromtimestamp(lost, TZ).day == 25
    rows = month.gauges()
    checks = []
    for day in (2, 5, 10, 15, 20, 24):
        t = month.at(day, 12)
        checks += [check(month.rel(t), "SLAMonthAtRisk", [(LOST, month.risk_annotations(t))]),
                   check(month.rel(t), "SLAMonthLost")]
    after = lost + 6 * 3600
    checks += [check(month.rel(after), "SLAMonthLost", [(LOST, month.lost_annotations(after))]),
               check(month.rel(after), "SLAMonthAtRisk")]  # lost, no longer "at risk"
    promtool_test(tmp_path, month.cfg, STEP, rows, checks)


def test_a_burn_that_would_last_past_the_month_is_not_at_risk(tmp_path):
    month = Month(lambda i: i % 110 == 109)  # 0.9 %: the budget would run out around day 35
    assert month.lost_at() is None
    checks = [check(month.rel(t), name) for t in month.times[::18] for name in ("SLAMonthAtRisk", "SLAMonthLost")]
    promtool_test(tmp_path, month.cfg, STEP, month.gauges(), checks)


def test_maintenance_masks_the_month_alerts(tmp_path):
    """Every Thursday window fully down: 480 minutes, more than the 427 the month allows, all masked."""
    month = Month(lambda i: in_maintenance(SEP1 + 60 * i))
    assert sum(month.down) == 480 and month.lost_at() is None
    rows = month.gauges()
    assert set(rows['sla_month_budget_spent_seconds{service="api",month="2026-09"}']) == {0.0}
    checks = [check(month.rel(month.at(d, h)), name) for d in (3, 10, 17, 24) for h in (7, 8, 12)
              for name in ("SLAMonthAtRisk", "SLAMonthLost")]
    promtool_test(tmp_path, month.cfg, STEP, rows, checks)


# -- tickets ------------------------------------------------------------------------------------------------
def ticket_rows(cfg, opened: float, answered: float | None, times: list[float]) -> dict[str, list]:
    """The agent's open-ticket gauge at each minute; the answer is known from the minute it was given."""
    cal = Calendar(cfg.contract)
    objective = next(o for o in objectives_of(cfg.contract) if o.kind == "ticket_response" and o.subject == "P1")

    def samples(t: float) -> Iterable:
        known = answered if answered is not None and answered <= t else None
        ctx = context(None, cfg, cal, tickets=lambda a, b: [Ticket("T-42", "P1", opened, known)])
        return objective.samples("open", objective.live(ctx, t)["open"])

    return sampled(times, samples)


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=TZ).timestamp()


SOON = {"ticket": "T-42", "priority": "P1", "severity": "page", "slo": "tickets", "audience": "contract"}


def soon_alert(month: str, left: float) -> tuple[dict, dict]:
    return {**SOON, "month": month}, {
        "summary": f"P1 ticket T-42 is unanswered with {humanize_duration(left) if left else '0s'} of business time "
                   f"left",
        "description": "The first response is due within 8 business hours; 25 % or less of it is left. Worth a "
                       "call to the vendor now.",
        "report": f"https://sla.example.com/report?month={month}"}


@pytest.mark.parametrize("friday, due_day, holiday", [
    ((2026, 11, 20), (2026, 11, 23), None),  # Friday 17:00 -> Monday
    ((2026, 4, 3), (2026, 4, 7), (2026, 4, 6)),  # Easter Monday is a holiday in France -> Tuesday
])
def test_p1_opened_friday_evening_warns_at_the_right_business_minute(tmp_path, friday, due_day, holiday):
    """Business hours 09:00-18:30: Friday 17:00-18:30 uses 1 h 30, so 6 of the 8 hours are used (2 h, a
    quarter, left) at 13:30 on the next working day, and the deadline passes at 15:30."""
    cfg = parse_config(CONFIG)
    opened = local(*friday, 17)
    start = local(*friday, 16)
    times = [start + 60 * i for i in range(int((local(*due_day, 20) - start) // 60))]
    rows = ticket_rows(cfg, opened, None, times)
    month = f"{friday[0]:04d}-{friday[1]:02d}"
    soon = soon_alert(month, 2 * 3600)
    missed = ({**soon[0], "severity": "ticket"}, {
        "summary": "P1 ticket T-42 missed its 8 business hours first-response deadline",
        "description": "Still unanswered, 1m 0s of business time past the deadline.", "report": soon[1]["report"]})

    def rel(t: float) -> float:
        return t - start

    checks = [check(rel(opened + 3600), "SLATicketDeadlineSoon"),
              check(rel(local(*friday, 23)), "SLATicketDeadlineSoon"),
              check(rel(local(*due_day, 13, 29)), "SLATicketDeadlineSoon"),
              check(rel(local(*due_day, 13, 30)), "SLATicketDeadlineSoon", [soon]),
              check(rel(local(*due_day, 15, 30)), "SLATicketDeadlineSoon", [soon_alert(month, 0)]),
              check(rel(local(*due_day, 15, 30)), "SLATicketDeadlineMissed"),
              check(rel(local(*due_day, 15, 31)), "SLATicketDeadlineSoon"),
              check(rel(local(*due_day, 15, 31)), "SLATicketDeadlineMissed", [missed])]
    if holiday:
        checks.append(check(rel(local(*holiday, 13, 30)), "SLATicketDeadlineSoon"))
    promtool_test(tmp_path, cfg, 60, rows, checks)
    left = rows[f'sla_ticket_business_seconds_left{{priority="P1",ticket="T-42",month="{month}"}}']
    assert left[times.index(local(*due_day, 13, 30))] == 7200.0


def test_the_warning_stops_when_the_ticket_is_answered(tmp_path):
    cfg = parse_config(CONFIG)
    opened, answered = local(2026, 11, 20, 17), local(2026, 11, 23, 14, 0)
    start = local(2026, 11, 20, 16)
    times = [start + 60 * i for i in range(int((local(2026, 11, 23, 20) - start) // 60))]
    rows = ticket_rows(cfg, opened, answered, times)
    checks = [check(local(2026, 11, 23, 13, 45) - start, "SLATicketDeadlineSoon", [soon_alert("2026-11", 6300)]),
              check(answered + 6 * 60 - start, "SLATicketDeadlineSoon"),  # the series is gone (5 min lookback)
              check(local(2026, 11, 23, 16) - start, "SLATicketDeadlineMissed")]
    promtool_test(tmp_path, cfg, 60, rows, checks)
