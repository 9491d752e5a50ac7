"""The report as a PDF, printed by the real headless Chromium and read back with poppler's pdftotext and
pdftoppm: the six rows on page 1 with the JSON report's figures, a footer with page numbers and the key's
fingerprint on every page, nothing wider than the page, and a clear message when no Chromium is there."""
from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cli import main
from agent.probes.browser.spec import find_chromium
from agent.report import signing
from agent.report.formats import pdf

from .conftest import ROOT
from .month_fixture import CONFIG, build

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (apt-get install chromium)")
VERDICTS = {"met": "MET", "missed": "MISSED", "insufficient_data": "INSUFFICIENT DATA", "no_data": "NO DATA"}
A4_PT = (595.92, 842.88)
RIGHT_MARGIN_PT = 12 / 25.4 * 72


def _poppler(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} not found: install the Debian package poppler-utils (bash .ci/run does)")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """The fixture month's JSON and PDF reports, both made by `sla-agent report`, signed."""
    folder = tmp_path_factory.mktemp("pdf")
    state = folder / "state"
    build(state)
    key = Ed25519PrivateKey.generate()
    (folder / "signing.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    config = folder / "cfg.yaml"
    config.write_text(CONFIG + f"evidence: {{signing_key_file: {folder / 'signing.key'}}}\n")
    base = ["report", "--config", str(config), "--state-dir", str(state), "--month", "2026-02"]
    assert main(base + ["--format", "json", "--output", str(folder / "r.json")]) == 0
    assert main(base + ["--format", "pdf", "--output", str(folder / "r.pdf")]) == 0
    doc = json.loads((folder / "r.json").read_text())
    return folder, doc, signing.key_id(key.public_key()), base


def _figures(row: dict) -> list[str]:
    """The row's measured figures, written here from the JSON (not with the report's own helpers)."""
    v = row["value"]
    values = list(v.values()) if isinstance(v, dict) else [v]
    return [f"{x * 100:.3f} %" for x in values if x is not None]


def test_page_one_holds_the_six_rows_with_the_json_figures(printed):
    folder, doc, _, _ = printed
    assert (folder / "r.pdf").read_bytes()[:5] == b"%PDF-"
    pages = _poppler("pdftotext", "-layout", str(folder / "r.pdf"), "-").split("\f")
    first = pages[0]
    table = first[first.index("Service levels"):first.index("Daily availability")]
    assert len(doc["rows"]) == 6
    for r in doc["rows"]:
        assert re.search(rf"^\s*{r['row']}\s+{r['service']}\s+{r['measure']}\b", table, re.M), r["row"]
    flat = " ".join(table.split())
    at = 0
    for figure in (f for r in doc["rows"] for f in _figures(r)):  # each figure, in the rows' order
        found = flat.find(figure, at)
        assert found >= 0, f"{figure} not on page 1 after {flat[at:at + 80]!r}"
        at = found + len(figure)
    assert re.findall(r"MET|MISSED|INSUFFICIENT DATA|NO DATA", flat) == [VERDICTS[r["verdict"]] for r in doc["rows"]]
    assert "Failure episodes" not in first and "Tickets" not in first  # the table is where the report starts


def test_every_page_has_its_number_the_fingerprint_and_the_command(printed):
    folder, doc, fingerprint, _ = printed
    assert doc["evidence"]["signature"]["key_sha256"] == fingerprint
    # in reading order: -layout would set "page X of Y" inside the wrapped footer line beside it
    pages = [p for p in _poppler("pdftotext", str(folder / "r.pdf"), "-").split("\f") if p.strip()]
    assert len(pages) >= 3  # the month's charts, periods and tickets do not fit on two
    for n, page in enumerate(pages, 1):
        flat = " ".join(page.split())
        assert f"page {n} of {len(pages)}" in flat
        assert f"signed by key {fingerprint}" in flat
        assert f"sla-agent report --verify report-2026-02.json --key {fingerprint}" in flat


def test_printed_nothing_is_wider_than_a4_and_no_verdict_is_a_dark_block(printed):
    """The print layout, read in Chromium at an A4 page's width less its margins: a chart or a table wider
    than that is cut at the page's edge in the PDF."""
    from playwright.sync_api import sync_playwright

    html = (printed[0] / "r.html")
    assert main(printed[3] + ["--format", "html", "--output", str(html)]) == 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=["--disable-gpu"])
        try:
            tab = browser.new_page(viewport={"width": round((210 - 24) / 25.4 * 96), "height": 1100})
            tab.emulate_media(media="print")
            tab.goto(html.as_uri())
            wide = tab.evaluate("""() => [...document.querySelectorAll('svg, table')]
                .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
                .map(e => e.id || e.getAttribute('class'))""")
            backgrounds = tab.evaluate("""() => [...document.querySelectorAll('.verdict')]
                .map(e => getComputedStyle(e).backgroundColor)""")
            dark = tab.evaluate("""() => [...document.querySelectorAll('tr, td, th, p, li')].filter(e => {
                const [r, g, b, a] = (getComputedStyle(e).backgroundColor.match(/[\\d.]+/g) || []).map(Number);
                return a !== 0 && 0.3 * r + 0.59 * g + 0.11 * b < 160;
            }).map(e => e.outerHTML.slice(0, 60))""")
        finally:
            browser.close()
    assert not wide, f"wider than the page: {wide}"
    assert len(backgrounds) >= 6 and set(backgrounds) == {"rgba(0, 0, 0, 0)"}
    assert not dark, f"dark backgrounds: {dark}"  # a ticket's row took its state's badge colour


def test_page_one_renders_to_a_png_kept_beside_the_pdf(printed, tmp_path):
    folder = printed[0]
    _poppler("pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(folder / "r.pdf"), str(tmp_path / "page"))
    (png,) = tmp_path.glob("page*.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a blank A4 page is far smaller
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == pytest.approx((A4_PT[0] * 60 / 72, A4_PT[1] * 60 / 72), abs=1)  # A4 at 60 dpi


def test_without_chromium_the_message_names_what_to_install(tmp_path):
    out = tmp_path / "r.pdf"
    with pytest.raises(pdf.PdfUnavailable) as caught:
        pdf.render_pdf("<html><body>x</body></html>", out, footer="f", executable=str(tmp_path / "no-chromium"))
    message = str(caught.value)
    assert "no-chromium is not an executable file" in message
    assert "apt-get install chromium" in message and "pip install 'sla-agent[browser]'" in message
    assert "\n" not in message and not out.exists()


def test_the_report_command_without_chromium_fails_and_the_other_formats_do_not(printed, monkeypatch, capsys):
    folder, _, _, base = printed
    monkeypatch.setattr(pdf, "find_chromium", lambda: None)  # this machine has one: the search finds none
    capsys.readouterr()
    assert main(base + ["--format", "pdf", "--output", str(folder / "none.pdf")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "apt-get install chromium" in lines[0] and "sla-agent[browser]" in lines[0]
    assert not (folder / "none.pdf").exists()
    assert main(base + ["--format", "html", "--output", str(folder / "r.html")]) == 0
    assert main(base + ["--format", "pdf"]) == 2  # a PDF is not written to a terminal
    assert "--format pdf needs --output" in capsys.readouterr().err


def test_without_playwright_chromium_prints_it_with_the_footer_from_css(tmp_path):
    """Chromium's command line takes no footer template: the footer comes from CSS page margin boxes."""
    page = "<html><head><title>t</title></head><body>" + "<p>line</p>" * 200 + "</body></html>"
    script = ("import sys; sys.modules['playwright'] = None; sys.modules['playwright.sync_api'] = None\n"
              "from pathlib import Path\nfrom agent.report.formats.pdf import render_pdf\n"
              f"render_pdf({page!r}, Path({str(tmp_path / 'r.pdf')!r}), footer='key ab\"cd. Verify: x')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pages = [p for p in _poppler("pdftotext", "-layout", str(tmp_path / "r.pdf"), "-").split("\f") if p.strip()]
    assert len(pages) >= 2
    for n, text in enumerate(pages, 1):
        assert f"page {n} of {len(pages)}" in text and 'key ab"cd. Verify: x' in text
