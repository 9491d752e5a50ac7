"""The monthly SLA report: the contract's table filled from the stored ledger, with the evidence.

build.py makes the JSON document (the same one /api/v1/report serves), sections.py its per-service
parts, evidence.py and verify.py its proof, formats/ its renderings.
"""
from .build import ReportError, StoreView, build, build_report, open_store
from .evidence import evidence_hash, report_hash
from .formats import FORMATS, render
from .verify import verify_report

__all__ = ["FORMATS", "ReportError", "StoreView", "build", "build_report", "evidence_hash", "open_store", "render",
           "report_hash", "verify_report"]
