"""What a closed month's revision says to the people and systems it is delivered to (notify/deliver.py): the
month's verdict rows, the overall verdict, the links under `base_url`, and the files a mail carries. Read
from the revision's folder (`reports/YYYY-MM/rN/`) and its report document, in a worker thread (the files
may be megabytes)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..report.formats.common import VERDICT_TEXT, row_objective, row_value
from ..slo.verdict import combine_verdicts

BUNDLE = "evidence.tar.gz"  # the end of the bundle's name (the archive names it sla-YYYY-MM-evidence.tar.gz)


def files(bundle: str = BUNDLE) -> tuple[tuple[str, str, str], ...]:
    """What a revision's folder may hold: the link's name in the webhook, the file, how the mail names it."""
    return (("html", "report.html", "The report"), ("pdf", "report.pdf", "Printable (PDF)"),
            ("json", "report.json", "Signed JSON"), ("bundle", bundle, "Evidence bundle"))
ROW_KEYS = ("row", "service", "measure", "description", "objective", "value", "verdict")
MIME = {"report.pdf": "application/pdf", "report.html": "text/html"}  # else: the bundle, application/gzip


@dataclass(frozen=True)
class Letter:
    month: str  # YYYY-MM
    revision: str  # rN
    verdict: str  # the month's, over every row (verdict.combine_verdicts)
    rows: tuple[dict[str, Any], ...]
    links: dict[str, str]  # html, pdf, json, bundle: those the folder holds
    sizes: dict[str, int]  # file name -> bytes
    key: str  # the same for every attempt at this revision: the receiver's way to drop a second copy
    fingerprint: str  # the signing key's, when the report is signed
    bundle: str = BUNDLE  # the bundle's file name in the folder

    @classmethod
    def of(cls, folder: Path, summary: dict[str, Any], base_url: str) -> Letter:
        """`summary`: the revision's report document (report.json), or any dict with its month and rows."""
        month, revision = str(summary.get("month") or folder.parent.name), folder.name
        rows = tuple({k: r.get(k) for k in ROW_KEYS} for r in summary.get("rows", ()))
        bundle = next((p.name for p in sorted(folder.glob(f"*{BUNDLE}"))), BUNDLE)
        sizes = {name: (folder / name).stat().st_size for _, name, _ in files(bundle) if (folder / name).is_file()}
        base = f"{base_url.rstrip('/')}/reports/{month}/{revision}"
        links = {label: f"{base}/{name}" for label, name, _ in files(bundle) if name in sizes}
        digest = hashlib.sha256((folder / "report.json").read_bytes() if "report.json" in sizes else
                                json.dumps(summary, sort_keys=True).encode()).hexdigest()
        signature = (summary.get("evidence") or {}).get("signature") or {}
        return cls(month, revision, combine_verdicts([r["verdict"] for r in rows]), rows, links, sizes,
                   f"sla-report-{month}-{revision}-{digest[:16]}", str(signature.get("key_sha256") or ""), bundle)

    @property
    def subject(self) -> str:
        return f"SLA report {self.month} ({self.revision}): {VERDICT_TEXT.get(self.verdict, self.verdict)}"

    def attached(self, bundle_max: int) -> tuple[str, ...]:
        """The files a mail carries: the PDF (the HTML when no renderer made one), the bundle up to its size."""
        report = "report.pdf" if "report.pdf" in self.sizes else "report.html"
        out = (report,) if report in self.sizes else ()
        bundle = self.bundle
        return out + ((bundle,) if bundle in self.sizes and self.sizes[bundle] <= bundle_max else ())

    def text(self, bundle_max: int) -> str:
        attached = self.attached(bundle_max)
        lines = [f"The SLA report of {self.month} (revision {self.revision}): "
                 f"{VERDICT_TEXT.get(self.verdict, self.verdict)}.", ""]
        for r in self.rows:
            lines.append(f"{r['row']:>3}  {VERDICT_TEXT.get(r['verdict'], r['verdict']):<17} "
                         f"measured {row_value(r)}, objective {row_objective(r)}: {r['description']}")
        lines.append("")
        for label, name, title in files(self.bundle):
            if label in self.links:
                note = " (attached)" if name in attached else \
                    f" (not attached: {self.sizes[name]:,} bytes, over the {bundle_max:,} a mail carries)" \
                    if label == "bundle" else ""
                lines.append(f"{title + ':':<17} {self.links[label]}{note}")
        if "bundle" in self.links:
            key = f" --key {self.fingerprint}" if self.fingerprint else ""
            lines += ["", "Anyone can check the bundle without the agent, with the agent's command:",
                      f"  sla-agent evidence verify {self.bundle}{key}"]
        return "\n".join(lines) + "\n"

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON."""
        return {"month": self.month, "revision": self.revision, "verdict": self.verdict, "rows": list(self.rows),
                "links": self.links, "delivery_id": self.key, "key_sha256": self.fingerprint or None}


def attachments(folder: Path, names: tuple[str, ...]) -> list[tuple[str, bytes, str]]:
    """For mail.message: read when the mail is made (in the worker thread that sends it)."""
    return [(name, (folder / name).read_bytes(), MIME.get(name, "application/gzip")) for name in names]
