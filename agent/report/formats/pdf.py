"""The report as a PDF: the HTML report printed by the system's Chromium (the one browser checks use).

With Playwright (the `browser` extra), `page.pdf()` prints A4 with a footer on every page: the evidence
fingerprint, the verification command and "page X of Y". Without it, `chromium --headless --print-to-pdf`
prints the same page; Chromium's command line takes no footer template, so the footer is then drawn by
CSS page margin boxes, which Chromium reads from version 131 (an older one prints no footer).

Either way the printing runs in a child process of its own, bounded in time and killed whole (Chromium
with it) when late: a hung browser never holds the caller, and a caller inside an event loop is not
refused by Playwright's synchronous API. render_pdf itself blocks: an event loop calls it through
asyncio.to_thread. The file appears whole or not at all.

    python -m agent.report.formats.pdf CHROMIUM PAGE.html OUT.pdf FOOTER   (the child's side)
"""
from __future__ import annotations

import html as html_text
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ...probes.browser.spec import CHROMIUM_PATHS, find_chromium

PRINT_SECONDS = 180.0  # a cold Chromium start and a long month's pages, on a small loaded machine
INSTALL = "apt-get install chromium (the system's Chromium) and pip install 'sla-agent[browser]' (Playwright)"
MARGIN = {"top": "12mm", "right": "12mm", "bottom": "20mm", "left": "12mm"}
FOOTER_TEMPLATE = (
    '<div style="font:7.5px Helvetica,Arial,sans-serif;color:#333;width:100%;margin:0 12mm;display:flex;'
    'justify-content:space-between;gap:8px"><span style="overflow-wrap:anywhere">{text}</span>'
    '<span style="white-space:nowrap">page <span class="pageNumber"></span> of <span class="totalPages"></span>'
    "</span></div>")


class PdfUnavailable(Exception):
    """No renderer here: the message names what to install. The other formats are unaffected."""


def footer_text(doc: dict[str, Any], report_file: str | None = None) -> str:
    """What each page's footer says: the fingerprint of the key that signed the report (or, unsigned, the
    report's own hash) and the command that checks the JSON report against the ledger."""
    ev = doc["evidence"]
    what = doc.get("month") or "{from} to {to}".format(**doc["period"])  # a month, or a period of months
    name = report_file or f"report-{what.replace(' to ', '_')}.json"
    sig = ev.get("signature")
    if sig:
        return (f"SLA report {what}, signed by key {sig['key_sha256']}. Verify: sla-agent report "
                f"--verify {name} --key {sig['key_sha256']}")
    ledger = f", ledger sha256 {ev['ledger_sha256']}" if "ledger_sha256" in ev else ""
    return f"SLA report {what}, not signed; report sha256 {ev['report_sha256']}{ledger}. Verify: sla-agent " \
           f"report --verify {name}"


def render_pdf(html: str, out: Path, *, footer: str, executable: str | None = None) -> None:
    """Print `html` to `out` (A4). `executable`: the Chromium to use (default: found where browser checks
    look). Raises PdfUnavailable when there is no Chromium, or when it cannot print."""
    exe = executable or find_chromium()
    if not exe or not os.access(exe, os.X_OK):
        where = f"{exe} is not an executable file" if exe else f"no Chromium (looked at {', '.join(CHROMIUM_PATHS)})"
        raise PdfUnavailable(f"cannot write a PDF: {where}; install {INSTALL}")
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="sla-pdf-") as folder:
        page, part = Path(folder) / "report.html", Path(folder) / "report.pdf"
        if _has_playwright():
            page.write_text(html, encoding="utf-8")
            _run([sys.executable, "-m", __name__, exe, str(page), str(part), footer])
        else:
            page.write_text(_with_margin_footer(html, footer), encoding="utf-8")
            _run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update", "--no-pdf-header-footer",
                  f"--user-data-dir={folder}/profile", f"--print-to-pdf={part}", page.as_uri()])
        if not part.is_file() or part.read_bytes()[:5] != b"%PDF-":
            raise PdfUnavailable(f"cannot write a PDF: {exe} printed no PDF")
        tmp = out.with_name(f".{out.name}.part")
        tmp.write_bytes(part.read_bytes())
        os.replace(tmp, out)


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def _run(argv: list[str]) -> None:
    """One printing process, in a session of its own so that a late one is killed with its browser."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=PRINT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise PdfUnavailable(f"cannot write a PDF: {argv[0]} did not finish in {PRINT_SECONDS:g} s") from None
    if proc.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1][:500]
        raise PdfUnavailable(f"cannot write a PDF: the printing failed ({last}); it needs {INSTALL}")


def _with_margin_footer(html: str, footer: str) -> str:
    """The footer as CSS page margin boxes, for Chromium's command line (it takes no footer template)."""
    quoted = footer.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    css = ("@page{size:A4;margin:12mm 12mm 20mm;"
           f'@bottom-left{{content:"{quoted}";font:7.5px Helvetica,Arial,sans-serif;color:#333;width:80%}}'
           '@bottom-right{content:"page " counter(page) " of " counter(pages);'
           "font:7.5px Helvetica,Arial,sans-serif;color:#333}}")
    return html.replace("</head>", f"<style>{css}</style></head>", 1)


def _print(executable: str, page: str, out: str, footer: str) -> None:
    """The child's side: Playwright prints the page with the footer template."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--disable-gpu"])
        try:
            tab = browser.new_page()
            tab.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                      else route.abort())  # the report is self-contained: nothing leaves the machine
            tab.goto(Path(page).as_uri(), wait_until="load")
            tab.emulate_media(media="print")
            tab.pdf(path=out, format="A4", print_background=True, display_header_footer=True,
                    header_template="<span></span>", margin=MARGIN,
                    footer_template=FOOTER_TEMPLATE.format(text=html_text.escape(footer)))
        finally:
            browser.close()


if __name__ == "__main__":
    _print(*sys.argv[1:5])
