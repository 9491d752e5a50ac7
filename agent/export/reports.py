"""The closed months at /reports: one table of months and revisions (verdicts at a glance, links to the
report, its PDF, JSON and evidence bundle), and each revision's files at /reports/YYYY-MM/rN/FILE,
read from the archive (report/archive.py) by the names it holds only. Behind the endpoint's auth as all
else (server.py's guard)."""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..report.archive import CHANGES, DELIVERED, Archive, Revision, bundle_name
from ..report.formats.common import FAVICON_LINK
from .page import CSS, _e

TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".md": "text/markdown; charset=utf-8",
         ".txt": "text/plain; charset=utf-8", ".csv": "text/csv; charset=utf-8", ".pdf": "application/pdf",
         ".gz": "application/gzip"}
LINKS = (("HTML", "report.html"), ("PDF", "report.pdf"), ("JSON", "report.json"), ("Markdown", "report.md"),
         ("text", "report.txt"), ("CSV", "report.csv"), ("what changed", CHANGES))


def _links(rev: Revision, files: list[str]) -> str:
    base = f"reports/{rev.month}/{rev.name}/"
    shown = [f'<a href="{_e(base + name)}">{label}</a>' for label, name in LINKS if name in files]
    if bundle_name(rev.month) in files:
        shown.append(f'<a href="{_e(base + bundle_name(rev.month))}">evidence bundle</a>')
    return " · ".join(shown)


# On a phone (the status page's CSS is shared) each revision reads as a card, each cell named by its column:
# six columns of links and verdicts do not fit 360 px, and the verdicts stay on the screen.
LABELS = ("Month", "Revision", "Built", "Verdicts", "Files", "Notes")
OWN_CSS = ("#reports .v{display:inline-block;margin:1px 0;white-space:normal}#reports td{overflow-wrap:anywhere}"
           "@media screen and (max-width:640px){#reports,#reports tbody,#reports tr,#reports td{display:block}"
           "#reports thead{display:none}#reports tr{border:1px solid #d0d7de;border-radius:4px;margin:0 0 8px;"
           "padding:4px 6px}#reports td{border:none;padding:2px 0}#reports td::before{content:attr(data-label) \": \";"
           "font-weight:600}}")


def _row(rev: Revision) -> str:
    meta, files = rev.meta(), rev.files()
    verdicts = " ".join(f'<span class="v {_e(v.get("verdict"))}" title="{_e(v.get("value"))} (objective '
                        f'{_e(v.get("objective"))})">{_e(v.get("row"))}. {_e(v.get("service"))} {_e(v.get("measure"))}: '
                        f'{_e(v.get("verdict_text"))}</span>' for v in meta.get("verdicts", []))
    notes = [str(meta.get("reason", ""))] + [f"{what} {meta[what]}" for what in ("pdf", "bundle")
                                            if str(meta.get(what, "written")) != "written"]
    handed = "handed over" if DELIVERED in files else "not handed over yet"
    cells = [_e(rev.month), _e(rev.name), _e(meta.get("built_at")), verdicts, _links(rev, files),
             f'{_e("; ".join(filter(None, notes)))}; {handed}']
    small = {"Notes": ' class="small"'}
    return ('<tr class="revision">' + "".join(f'<td data-label="{label}"{small.get(label, "")}>{cell}</td>'
                                              for label, cell in zip(LABELS, cells)) + "</tr>")


def render_index(archive: Archive) -> str:
    out = ['<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
           f'content="width=device-width,initial-scale=1"><title>SLA: closed months</title>{FAVICON_LINK}<style>{CSS}{OWN_CSS}</style>'
           '</head><body><h1>Closed months</h1><p class="small">Each month is closed once its rows are final: its '
           "report in every format, signed, and its evidence bundle, written once. A rebuild is a new revision "
           'beside the first, saying what changed. <a href="./">Status now</a></p>']
    months = archive.months()
    if not months:
        out.append('<p id="no-reports">No month closed yet.</p>')
    else:
        out.append('<table id="reports"><thead><tr>' + "".join(f"<th>{h}</th>" for h in LABELS) + "</tr></thead><tbody>")
        out += [_row(rev) for month in months for rev in reversed(archive.revisions(month))]
        out.append("</tbody></table>")
    out.append("</body></html>\n")
    return "".join(out)


def add_routes(app: web.Application, archive: Archive) -> None:
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=await asyncio.to_thread(render_index, archive), content_type="text/html")

    async def file(request: web.Request) -> web.StreamResponse:
        m = request.match_info
        path = await asyncio.to_thread(archive.file, m["month"], m["revision"], m["name"])
        if path is None:
            raise web.HTTPNotFound(text='{"error": "no such file in the archive of closed months"}',
                                   content_type="application/json")
        kind = TYPES.get(path.suffix, "application/octet-stream")
        headers: dict[str, Any] = {"Content-Type": kind, "X-Content-Type-Options": "nosniff"}
        if path.suffix in (".gz", ".csv"):
            headers["Content-Disposition"] = f'attachment; filename="sla-{m["month"]}-{m["revision"]}-{path.name}"'
        return web.FileResponse(path, headers=headers)

    app.router.add_get("/reports", index)
    app.router.add_get("/reports/{month}/{revision}/{name}", file)
