"""One revision of a closed month in the archive (archive.py): the report in every format, signed as
`sla-agent report` signs it, its PDF when a renderer is at hand, the evidence bundle, what it was built
from (metadata.json) and, for a rebuild, the figures that differ from the revision before (changes.json).
Made by the running agent's close (closing.py) and by `sla-agent report close`."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable

from ..calendar import Calendar
from ..config import Config
from ..store import Store
from ..timeutil import parse_month
from .archive import CHANGES, META, Archive, Revision, bundle_name, read_json
from .build import ReportError, build_report
from .bundle import export_bundle, sha256_file
from .evidence import records_hashed
from .formats import render
from .formats.common import VERDICT_TEXT, row_objective, row_value

log = logging.getLogger("sla_agent.reports")
FILES = {"json": "report.json", "html": "report.html", "markdown": "report.md", "text": "report.txt",
         "csv": "report.csv"}
PDF = "report.pdf"
PdfRenderer = Callable[..., Any]  # (html, out: Path, footer=str): writes the PDF or raises PdfMissing


class PdfMissing(Exception):
    """No PDF can be made here; the message says why and what to install."""


def render_pdf_lazily(html: str, out: Path, footer: str) -> None:
    """The PDF renderer of formats/pdf.py, when this installation has one."""
    try:
        from .formats import pdf  # type: ignore[attr-defined]
    except ImportError as exc:
        raise PdfMissing(f"this installation has no PDF renderer ({exc})") from None
    try:
        pdf.render_pdf(html, out, footer=footer)
    except getattr(pdf, "PdfUnavailable", PdfMissing) as exc:
        raise PdfMissing(str(exc)) from None


def inputs_hash(cfg: Config, store: Store, month: str) -> str:
    """What can still change of a month once its rows are sealed final: its tickets and declared windows
    (the report's evidence hashes them with the rows). A close whose inputs differ is rebuilt."""
    start, end = Calendar(cfg.contract).month_bounds(*parse_month(month))
    cal = Calendar(cfg.contract, [w for _, w in store.windows()])
    h = hashlib.sha256()
    records_hashed(h, store.tickets(start, end), [w for w in cal.windows(start, end) if w.source != "weekly"])
    return h.hexdigest()


def verdicts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"row": r["row"], "service": r.get("service"), "measure": r.get("measure"), "verdict": r["verdict"],
             "verdict_text": VERDICT_TEXT.get(r["verdict"], r["verdict"]), "value": row_value(r),
             "objective": row_objective(r)} for r in doc["rows"]]


def write_revision(cfg: Config, state_dir: str, month: str, now: float, archive: Archive, notes: dict[str, Any],
                   pdf: PdfRenderer = render_pdf_lazily) -> Revision:
    """Builds `month`'s next revision in a temporary folder and renames it into place. `notes`: what the
    close knows beside the report (its reason, the inputs' hash, the last ticket fetch, the time-stamps)."""
    with archive.building(month) as tmp:
        previous = archive.latest(month)
        doc, bundle = _report(cfg, state_dir, month, now, tmp)
        for fmt, name in FILES.items():
            (tmp / name).write_text(render(doc, fmt), encoding="utf-8")
        number = int(tmp.name[2:-4])
        meta: dict[str, Any] = {**notes, "month": month, "revision": number, "built_at": doc["generated_at"],
                                "built_epoch": now, "complete": doc["complete"], "pdf": _pdf(pdf, doc, tmp),
                                "bundle": bundle, "verdicts": verdicts(doc), "signed": "signature" in doc["evidence"],
                                "ledger_sha256": doc["evidence"]["ledger_sha256"]}
        if previous is not None:
            changes = {"month": month, "revision": number, "previous": previous.number, "reason": notes.get("reason"),
                       **changed(read_json(previous.path / FILES["json"]), doc)}
            (tmp / CHANGES).write_text(json.dumps(changes, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            meta["changes"] = len(changes["figures"]) + len(changes["tickets"])
        meta["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                                encoding="utf-8")
        return archive.commit(tmp)


def _report(cfg: Config, state_dir: str, month: str, now: float, tmp: Path) -> tuple[dict[str, Any], str]:
    """The report, and the bundle beside it when it can be made (the report in it is the one archived)."""
    if not cfg.source or not Path(cfg.source).is_file():
        why = "not written: the bundle carries the config file, and this configuration was not read from one"
    else:
        try:
            return export_bundle(cfg, state_dir, month, now, tmp / bundle_name(month)), "written"
        except ReportError as exc:
            why = f"not written: {exc}"
            (tmp / bundle_name(month)).unlink(missing_ok=True)
    log.error("the evidence bundle of %s is %s", month, why)
    return build_report(cfg, state_dir, month, now), why


def footer(doc: dict[str, Any]) -> str:
    """What the PDF's footer says: the evidence's fingerprint, the signing key's, and the check to run."""
    ev = doc["evidence"]
    key = ev.get("signature", {}).get("key_sha256")
    signed = f"; signed by key {key}" if key else ""
    return (f"Evidence sha256 {ev['ledger_sha256']}{signed}. Check: sla-agent evidence verify "
            f"{bundle_name(doc['month'])}" + (f" --key {key}" if key else ""))


def _pdf(pdf: PdfRenderer, doc: dict[str, Any], tmp: Path) -> str:
    """The PDF, or why there is none: the other formats are written all the same."""
    try:
        pdf(render(doc, "html"), tmp / PDF, footer=footer(doc))
    except PdfMissing as exc:
        log.warning("the report of %s has no PDF: %s", doc["month"], exc)
        return f"not written: {exc}"
    except Exception as exc:  # noqa: BLE001 - a renderer that breaks costs the PDF, not the close
        log.error("the report of %s has no PDF: the renderer failed: %s", doc["month"], exc)
        (tmp / PDF).unlink(missing_ok=True)
        return f"not written: the renderer failed: {exc}"
    return "written" if (tmp / PDF).is_file() else "not written: the renderer wrote no file"


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def _differences(before: Any, after: Any) -> list[tuple[str, Any, Any]]:
    old, new = _flat(before), _flat(after)
    return [(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What differs between two reports of the month: each row's figures (by row number) and the tickets'."""
    rows = {r["row"]: r for r in before.get("rows", [])}
    figures = []
    for r in after["rows"]:
        for field, was, now in _differences(rows.pop(r["row"], {}), r):
            figures.append({"row": r["row"], "service": r.get("service"), "measure": r.get("measure"),
                            "field": field, "before": was, "after": now})
    figures += [{"row": n, "service": r.get("service"), "measure": r.get("measure"), "field": "",
                 "before": "in the report", "after": "no longer in the report"} for n, r in rows.items()]
    tickets = [{"field": f, "before": was, "after": now}
               for f, was, now in _differences(before.get("tickets", {}), after.get("tickets", {}))]
    return {"figures": figures, "tickets": tickets,
            "evidence": {"before": (before.get("evidence") or {}).get("ledger_sha256"),
                         "after": after["evidence"]["ledger_sha256"]}}
