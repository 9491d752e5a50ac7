"""The month's close end to end, as the people who read it receive it: an agent on the injected clock across
a month end, the real Chromium printing the PDF, a real SMTP server (aiosmtpd, STARTTLS, login) and a real
webhook. Exactly one mail and one call arrive, after reports.close_after and not before; what they carry
verifies (`report --verify`, `evidence verify`) and the PDF's page 1 holds the JSON's six rows."""
from __future__ import annotations

import json
import os
import re
import shutil
import ssl
from email import message_from_bytes, policy
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agent.app import Agent
from agent.cli import main
from agent.config import load_config
from agent.probes import make_probe
from agent.probes.browser.spec import find_chromium
from agent.report.archive import Archive
from agent.report.signing import keygen

from .conftest import ROOT, FakeClock
from .servers import Mailbox, http_server, make_certs
from .test_daemon import wait_for
from .test_month_close import MARCH_END, _vendor
from .test_report_pdf import VERDICTS, _figures, _poppler

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (apt-get install chromium)")
# where the test keeps page 1 of the delivered PDF for a person to look at (ignored by git)
ARTIFACTS = Path(os.environ.get("SLA_AGENT_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))


class Receiver:
    """The procurement tool's webhook: keeps every JSON document posted to it."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(await request.json())
        return web.Response(status=204)


def _config(tmp: Path, vendor: str, hook: str, box: Mailbox) -> Path:
    private, _ = keygen(tmp / "keys")
    (tmp / "mail-pw").write_text("mail-pw-123\n")
    path = tmp / "cfg.yaml"
    path.write_text(f'agent: {{listen: "127.0.0.1:0", flush_interval: 60s}}\n'
                    f'contract: {{timezone: "+01:00"}}\n'
                    f'evidence: {{signing_key_file: "{private}"}}\n'
                    f'reports:\n  close_after: 1h\n  deliver:\n'
                    f'    email: {{to: [vendor-manager@example.com], smtp: {{smarthost: "127.0.0.1:{box.port}", '
                    f'from: sla-agent@example.com, username: agent, password_file: "{tmp / "mail-pw"}"}}}}\n'
                    f'    webhook: {{url: "{hook}/hook"}}\n'
                    f'targets:\n  - {{name: web-ui, service: web, url: "{vendor}/", interval: 10s, timeout: 5s}}\n'
                    f'  - {{name: api, service: api, url: "{vendor}/", interval: 10s, timeout: 5s}}\n')
    return path


async def _month_end(agent: Agent, clock: FakeClock, box: Mailbox, receiver: Receiver) -> None:
    """March's last hour probed, then the settle time, then half an hour more: the close's whole life."""
    probes = [make_probe(t, clock=clock) for t in agent.cfg.targets]
    for _ in range(60):  # a result a minute per target
        for probe in probes:
            agent.on_result(await probe.run())
        await clock.advance(60)
    for probe in probes:
        await probe.close()
    while clock.time() < MARCH_END + 3600 - 60:  # the month has ended; its settle time runs
        await clock.advance(60)
    assert await agent.closer.check() == [] and not box.messages and not receiver.calls
    await clock.advance(360)  # past close_after: the next look closes and delivers
    await wait_for(lambda: box.messages and receiver.calls, "the mail and the webhook call", limit=240)
    for _ in range(30):
        await clock.advance(60)
    assert await agent.closer.check() == []


async def test_a_closed_month_arrives_once_by_mail_and_webhook_and_what_arrives_verifies(tmp_path, capsys):
    certs = make_certs(tmp_path)
    box = Mailbox(certs)
    box.controller.start()
    receiver = Receiver()
    vendor, hook = web.Application(), web.Application()
    vendor.router.add_get("/", _vendor)
    hook.router.add_post("/hook", receiver.handle)
    clock = FakeClock(wall=MARCH_END - 3600)
    try:
        async with http_server(vendor) as vendor_url, http_server(hook) as hook_url:
            cfg_path = _config(tmp_path, vendor_url, hook_url, box)
            agent = Agent(load_config(cfg_path), state_dir=str(tmp_path / "state"), clock=clock)
            assert agent.delivery is not None
            agent.delivery.smtp_context = ssl.create_default_context(cafile=str(certs.ca))  # the test's own CA
            await agent.start()
            await agent.scheduler.stop(0)
            try:
                await _month_end(agent, clock, box, receiver)
                page, status = await _status(agent.server.url)
            finally:
                await agent.stop()
    finally:
        box.controller.stop()
    assert len(box.messages) == 1 and len(receiver.calls) == 1
    assert {ch: (s["month"], s["revision"], s["state"], s["attempts"]) for ch, s in status["delivery"].items()} == \
        {"email": ("2026-03", "r1", "sent", 1), "webhook": ("2026-03", "r1", "sent", 1)}
    assert "Delivery of 2026-03 (r1) by mail: sent after 1 attempt(s)" in page
    assert "Delivery of 2026-03 (r1) by webhook: sent after 1 attempt(s)" in page
    rev = Archive(tmp_path / "state").latest("2026-03")
    doc = json.loads((rev.path / "report.json").read_text())
    assert len(doc["rows"]) == 6 and doc["complete"] and doc["evidence"]["signature"]
    pdf = _mailed_pdf(box.messages[0], rev.path)
    _check_webhook(receiver.calls[0], doc)
    _check_page_one(pdf, doc, tmp_path)
    pub = tmp_path / "keys" / "sla-agent-signing.pub"
    capsys.readouterr()
    assert main(["report", "--config", str(cfg_path), "--state-dir", str(tmp_path / "state"),
                 "--verify", str(rev.path / "report.json"), "--key", str(pub)]) == 0, capsys.readouterr().err
    assert main(["evidence", "verify", str(rev.path / "sla-2026-03-evidence.tar.gz"), "--key", str(pub)]) == 0, \
        capsys.readouterr().err


async def _status(base: str) -> tuple[str, dict]:
    """The status page and its JSON, as a person and a script read the delivery's outcome."""
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/") as r:
            page = await r.text()
        async with s.get(base + "/api/v1/status") as r:
            return page, await r.json()


def _mailed_pdf(raw: bytes, folder: Path) -> Path:
    """The mail's PDF attachment, which must be the archived one byte for byte; the bundle rides along."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert "2026-03" in msg["Subject"]
    files = {part.get_filename(): part.get_content() for part in msg.iter_attachments()}
    assert set(files) == {"report.pdf", "sla-2026-03-evidence.tar.gz"}, set(files)
    assert files["report.pdf"] == (folder / "report.pdf").read_bytes()
    assert files["sla-2026-03-evidence.tar.gz"] == (folder / "sla-2026-03-evidence.tar.gz").read_bytes()
    return folder / "report.pdf"


def _check_webhook(call: dict, doc: dict) -> None:
    assert call["month"] == "2026-03" and call["revision"] == "r1"
    assert [(r["row"], r["verdict"], r["value"]) for r in call["rows"]] == \
        [(r["row"], r["verdict"], r["value"]) for r in doc["rows"]]
    assert {"html", "pdf", "json", "bundle"} <= set(call["links"])
    assert call["links"]["bundle"].endswith("/reports/2026-03/r1/sla-2026-03-evidence.tar.gz")


def _check_page_one(pdf: Path, doc: dict, tmp: Path) -> None:
    first = _poppler("pdftotext", "-layout", str(pdf), "-").split("\f")[0]
    flat = " ".join(first.split())
    for r in doc["rows"]:
        assert re.search(rf"^\s*{r['row']}\s+{r['service']}\s+{r['measure']}\b", first, re.M), r["row"]
    at = 0
    for figure in (f for r in doc["rows"] for f in _figures(r)):
        found = flat.find(figure, at)
        assert found >= 0, f"{figure} not on page 1 after {flat[at:at + 80]!r}"
        at = found + len(figure)
    assert re.findall(r"MET|MISSED|INSUFFICIENT DATA|NO DATA", flat)[:6] == [VERDICTS[r["verdict"]] for r in doc["rows"]]
    _poppler("pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp / "page"))
    (png,) = tmp.glob("page*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000  # not a blank page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, ARTIFACTS / "delivered-report-2026-03-page1.png")
