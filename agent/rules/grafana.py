"""The Grafana dashboard: the month's figures, burn rates, latency shares and quantiles, phases, failures,
tickets and the agent's own health, from the same series the rules read."""
from __future__ import annotations

from typing import Any

from ..config.model import AvailabilitySpec, Config, LatencySpec, TicketResponseSpec


def _panel(pid: int, title: str, exprs: list[tuple[str, str]], x: int, y: int, w: int = 12, h: int = 8,
           kind: str = "timeseries", unit: str = "percentunit", thresholds: list[tuple[float, str]] | None = None,
           decimals: int | None = None) -> dict[str, Any]:
    steps = [{"color": "red", "value": None}] + [{"color": col, "value": v} for v, col in (thresholds or [])]
    panel: dict[str, Any] = {
        "id": pid, "type": kind, "title": title, "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": legend} for i, (e, legend) in enumerate(exprs)],
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                        "overrides": []},
        "options": {},
    }
    if decimals is not None:
        panel["fieldConfig"]["defaults"]["decimals"] = decimals
    return panel


def dashboard(cfg: Config) -> dict[str, Any]:
    c = cfg.contract
    specs = c.objectives
    # one colour scale for every service: red below the least demanding objective is below them all
    obj = min((s.objective for s in specs if isinstance(s, AvailabilitySpec)), default=c.availability_objective)
    first_bounds = next((s.bounds[:1] for s in specs if isinstance(s, LatencySpec)), ())
    ticket_obj = min((s.objective for s in specs if isinstance(s, TicketResponseSpec)), default=c.ticket_objective)
    sel = 'service=~"$service"'
    panels = [
        _panel(1, "Availability, month to date", [(f'sla_availability_ratio{{{sel},window="month"}}', "{{service}}")],
               0, 0, 6, 6, "stat", thresholds=[(obj, "green")], decimals=3),
        _panel(2, "Error budget remaining (month)", [
            (f'sla_error_budget_remaining_ratio{{{sel},objective="availability",window="month"}}', "{{service}}")],
            6, 0, 6, 6, "stat", thresholds=[(0.0, "orange"), (0.25, "green")], decimals=1),
        _panel(3, "Down time left before the objective is missed", [
            (f'sla_error_budget_remaining_seconds{{{sel},window="month"}}', "{{service}}")], 12, 0, 6, 6, "stat",
            unit="s", thresholds=[(0.0, "green")]),
        _panel(4, "Coverage (observed share of the month)", [
            (f'sla_coverage_ratio{{{sel},window="month"}}', "{{service}}")], 18, 0, 6, 6, "stat",
            thresholds=[(c.coverage_floor, "green")], decimals=1),
        _panel(5, f"Availability vs {obj * 100:g} %", [
            (f'sla_availability_ratio{{{sel},window="month"}}', "{{service}} month"),
            (f'sla_availability_ratio{{{sel},window="30d"}}', "{{service}} 30 days"),
            ("1 - sla:availability_error_ratio_quorum:rate1h", "{{service}} last hour (probes)"),
        ], 0, 6, 12, 8, thresholds=[(obj, "green")]),
        _panel(6, "Availability burn rate", [
            (f"sla:availability_error_ratio_quorum:rate{w} / {round(1 - obj, 6)}", f"{{{{service}}}} {w}")
            for w in ("5m", "1h", "6h", "1d")], 12, 6, 12, 8, unit="none"),
        _panel(7, "Requests below the thresholds (current 7-day period)", [
            (f'sla_latency_below_ratio{{{sel},window="period"}}', "{{service}} < {{threshold}} s"),
            (f'sla_latency_below_ratio{{{sel},window="7d"}}', "{{service}} < {{threshold}} s (rolling 7 d)"),
        ], 0, 14, 12, 8, thresholds=[(b.ratio, "green") for b in first_bounds]),
        _panel(8, "Latency quantiles (t-digest)", [
            (f'sla_latency_quantile_seconds{{{sel},window="period",quantile=~"0.98|0.99|0.5"}}',
             "{{service}} p{{quantile}}")], 12, 14, 12, 8, unit="s"),
        _panel(9, "Probe phases (mean)", [
            ('sum by (phase) (rate(sla_probe_phase_duration_seconds_sum{service=~"$service"}[$__rate_interval]))\n/\n'
             'sum by (phase) (rate(sla_probe_phase_duration_seconds_count{service=~"$service"}[$__rate_interval]))',
             "{{phase}}")], 0, 22, 12, 8, unit="s"),
        _panel(10, "Probes by outcome", [
            ('sum by (service, outcome) (rate(sla_probes_total{service=~"$service"}[$__rate_interval]))',
             "{{service}} {{outcome}}")], 12, 22, 12, 8, unit="reqps"),
        _panel(11, "Failures by kind", [
            ('sum by (service, error_kind) (rate(sla_probe_errors_total{service=~"$service"}[$__rate_interval]))',
             "{{service}} {{error_kind}}")], 0, 30, 12, 8, unit="reqps"),
        _panel(12, "Ticket first responses in time (month)", [
            ('sla_ticket_response_met_ratio{window="month"}', "{{priority}}")], 12, 30, 12, 8, "bargauge",
            thresholds=[(ticket_obj, "green")]),
        _panel(13, "Agent health: loop lag p99, skipped and late ticks", [
            ("histogram_quantile(0.99, sum by (le) (rate(sla_agent_loop_lag_seconds_bucket[$__rate_interval])))",
             "loop lag p99"),
            ("sum(rate(sla_agent_ticks_skipped_total[$__rate_interval]))", "skipped/s"),
            ("sum(rate(sla_agent_ticks_late_total[$__rate_interval]))", "late/s"),
        ], 0, 38, 24, 7, unit="s"),
        _panel(14, f"Locations that closed the last minute down (it counts once {c.min_agree} agree)", [
            ('sla:slice_down_locations:1m{service=~"$service"}', "{{service}} locations down"),
            ("clamp_max(sla:locations:count, %d)" % c.min_agree, "needed"),
        ], 0, 45, 24, 7, unit="none", thresholds=[(0, "green"), (c.min_agree, "red")], decimals=0),
    ]
    return {
        "uid": "sla-agent", "title": "SLA: vendor service levels", "tags": ["sla", "sla-agent"],
        "timezone": "browser", "schemaVersion": 39, "version": 1, "refresh": "1m",
        "time": {"from": "now-7d", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "current": {}},
            {"name": "service", "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(sla_probes_total, service)", "refId": "service"},
             "definition": "label_values(sla_probes_total, service)", "includeAll": True, "multi": True,
             "current": {"text": "All", "value": "$__all"}, "refresh": 2},
        ]},
        "annotations": {"list": [{
            "name": "Maintenance and exclusions", "enable": True, "iconColor": "rgba(255, 152, 48, 0.4)",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "expr": "max(sla_maintenance_active) > 0", "step": "60s", "titleFormat": "maintenance window",
            "textFormat": "SLA measurements masked", "useValueForTime": False,
        }]},
        "panels": panels,
    }


def dashboard_exprs(d: dict[str, Any]) -> list[str]:
    out = [t["expr"] for p in d["panels"] for t in p["targets"]]
    out += [a["expr"] for a in d["annotations"]["list"]]
    out += [v["definition"] for v in d["templating"]["list"] if "definition" in v]
    return out
