"""The SLO engine: pure functions of (ledger view, calendar, now) -> typed results. No clock reads.

slices.py holds the one-minute slice rules and the exact counts (docs/contract.md); each objective of the
contract's table is one class (availability.py, latency.py, tickets.py) with the shared verdict ladder
(verdict.py); engine.py evaluates them all for the exporter and the status page, month.py prepares a
month for the report. Verdicts come from exact counts only.
"""
from .availability import Availability, AvailabilityObjective, availability
from .engine import (OBJECTIVE_CLASSES, Snapshot, by_class, context, evaluate, objectives_of, seal_delay_of,
                     settle_of)
from .latency import Latency, LatencyObjective, latency
from .month import HEARTBEAT_NAMES, S_DEGRADED, MonthContext, ServiceMonth, runs
from .objective import EvalContext, Objective, RuleSet, Sample
from .promql import objective_name, threshold_label
from .slices import (S_DOWN, S_MASKED, S_UNKNOWN, S_UP, STATE_NAMES, DayCache, LedgerView, combine, range_counts,
                     service_states, slice_states)
from .tickets import TicketResponseObjective
from .verdict import INSUFFICIENT, MET, MISSED, NO_DATA, combine_verdicts, rounded, verdict

__all__ = ["HEARTBEAT_NAMES", "S_DEGRADED", "Availability", "AvailabilityObjective", "DayCache", "EvalContext", "INSUFFICIENT", "Latency",
           "LatencyObjective", "LedgerView", "MET", "MISSED", "MonthContext", "NO_DATA", "OBJECTIVE_CLASSES",
           "Objective", "RuleSet", "STATE_NAMES", "S_DOWN", "S_MASKED", "S_UNKNOWN", "S_UP", "Sample", "ServiceMonth",
           "Snapshot", "TicketResponseObjective", "availability", "by_class", "combine", "combine_verdicts", "context",
           "evaluate", "latency", "objective_name", "objectives_of", "range_counts", "rounded", "runs",
           "service_states", "seal_delay_of", "settle_of", "slice_states", "threshold_label", "verdict"]
