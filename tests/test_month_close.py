"""The month's close (report/closing.py, archive.py, revision.py): an agent on the injected clock across
a month end archives the month once, after reports.close_after and not before; a close cut short is
resumed at the next start, a month that ended while the agent was down is closed then; a ticket
correction makes a second revision saying what changed; /reports lists and serves the archive."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from agent.app import Agent
from agent.cli import main
from agent.config import load_config
from agent.probes import make_probe
from agent.report import build_report, verify_report
from agent.report.archive import Archive
from agent.report.revision import PdfMissing
from agent.report.signing import keygen, load_public
from agent.tickets import parse_export

from .conftest import FakeClock
from .month_fixture import CONFIG as MONTH_CONFIG, NOW as MONTH_NOW, build as build_month
from .servers import http_server
from .test_daemon import wait_for

TZ = dt.timezone(dt.timedelta(hours=1))
MARCH_END = dt.datetime(2026, 4, 1, tzinfo=TZ).timestamp()


class Hooks:
    """The close's delivery hook and PDF renderer, as the test sees them called."""

    def __init__(self) -> None:
        self.delivered: list[tuple[Path, dict]] = []

    async def deliver(self, revision: Path, summary: dict) -> None:
        self.delivered.append((revision, summary))

    @staticmethod
    def pdf(html: str, out: Path, footer: str) -> None:
        """Runs in the close's own process: what the test reads of it is in the file."""
        assert "<html" in html
        out.write_text(f"%PDF-1.4 made by the test's renderer\n{footer}\npid {os.getpid()}\n")


@contextlib.asynccontextmanager
async def running(cfg_path: Path, state: Path, clock: FakeClock, hooks: Hooks):
    """A started agent with the test's hooks, its scheduler stopped (the test files the results)."""
    agent = Agent(load_config(cfg_path), state_dir=str(state), clock=clock)
    agent.closer.deliver, agent.closer.pdf = hooks.deliver, hooks.pdf
    await agent.start()
    await agent.scheduler.stop(0)
    try:
        yield agent
    finally:
        await agent.stop()


def _march_config(tmp: Path, url: str) -> Path:
    private, _ = keygen(tmp / "keys")
    path = tmp / "cfg.yaml"
    path.write_text(f'agent: {{listen: "127.0.0.1:0", flush_interval: 60s}}\n'
                    f'contract: {{timezone: "+01:00"}}\n'
                    f'evidence: {{signing_key_file: "{private}"}}\n'
                    f"reports: {{close_after: 1h}}\n"
                    f'targets:\n  - {{name: web-ui, service: web, url: "{url}/", interval: 10s, timeout: 5s}}\n')
    return path


async def _vendor(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def test_an_agent_across_a_month_end_closes_it_after_close_after_once(tmp_path, capsys):
    app = web.Application()
    app.router.add_get("/", _vendor)
    hooks = Hooks()
    clock = FakeClock(wall=MARCH_END - 3600)
    async with http_server(app) as url:
        cfg_path = _march_config(tmp_path, url)
        async with running(cfg_path, tmp_path / "state", clock, hooks) as agent:
            probe = make_probe(agent.cfg.targets[0], clock=clock)
            for _ in range(60):  # March's last hour, a result a minute
                agent.on_result(await probe.run())
                await clock.advance(60)
            await probe.close()
            archive = Archive(tmp_path / "state")
            while clock.time() < MARCH_END + 3600 - 60:  # the month has ended; its settle time runs
                await clock.advance(60)
            assert await agent.closer.check() == [] and archive.months() == [] and not hooks.delivered
            await clock.advance(360)  # past close_after: the next look closes it
            await wait_for(lambda: len(hooks.delivered) == 1, "the close")
            for _ in range(30):  # half an hour more: six more looks
                await clock.advance(60)
            assert await agent.closer.check() == []
    assert [(r.month, r.name) for r in archive.revisions("2026-03")] == [("2026-03", "r1")]
    assert len(hooks.delivered) == 1 and hooks.delivered[0][0] == archive.root / "2026-03" / "r1"
    rev = archive.latest("2026-03")
    assert set(rev.files()) == {"report.json", "report.html", "report.md", "report.txt", "report.csv", "report.pdf",
                                "sla-2026-03-evidence.tar.gz", "metadata.json", "delivered.json"}
    assert not list((archive.root / "2026-03").glob(".r*"))  # no temporary folder left
    meta = rev.meta()
    assert meta["built_epoch"] >= MARCH_END + 3600 and meta["complete"] and meta["pdf"] == "written"
    doc = json.loads((rev.path / "report.json").read_text())
    assert meta["reason"] == "month closed" and [v["verdict"] for v in meta["verdicts"]] == \
        [r["verdict"] for r in doc["rows"]] and meta["verdicts"][0]["verdict"] == "insufficient_data"  # an hour seen
    assert doc["month"] == "2026-03" and doc["complete"] and doc["evidence"]["signature"]
    assert hooks.delivered[0][1]["verdicts"] == meta["verdicts"]
    _, footer, pid = (rev.path / "report.pdf").read_text().splitlines()
    assert doc["evidence"]["ledger_sha256"] in footer and "evidence verify sla-2026-03" in footer
    assert int(pid.split()[1]) != os.getpid()  # the close ran in a process of its own
    cfg = load_config(cfg_path)
    pub = tmp_path / "keys" / "sla-agent-signing.pub"
    assert verify_report(cfg, str(tmp_path / "state"), doc, load_public(pub)) == []
    capsys.readouterr()
    assert main(["evidence", "verify", str(rev.path / "sla-2026-03-evidence.tar.gz"), "--key", str(pub)]) == 0, \
        capsys.readouterr().err


@pytest.fixture(scope="module")
def february(tmp_path_factory):
    """February 2026 stored and sealed by an agent that stopped before March (month_fixture.py)."""
    folder = tmp_path_factory.mktemp("february")
    build_month(folder / "state")
    return folder / "state"


def _february_config(tmp: Path, extra: str = "") -> Path:
    path = tmp / "cfg.yaml"
    path.write_text(MONTH_CONFIG.replace('agent: {state_dir: "./unused"}', f'agent: {{listen: "127.0.0.1:0"{extra}}}\n'
                                         "reports: {close_after: 2h}")
                    .replace("https://app.example.invalid/", "http://127.0.0.1:1/")
                    .replace("https://api.example.invalid/health", "http://127.0.0.1:1/health"))
    return path


@pytest.fixture
def down(tmp_path, february):
    """A state directory whose agent was down over February's end: started again on March 2."""
    shutil.copytree(february, tmp_path / "state")
    return _february_config(tmp_path), tmp_path / "state", FakeClock(wall=MONTH_NOW)


async def test_a_month_that_ended_while_the_agent_was_down_is_closed_at_start(down, capsys):
    cfg_path, state, clock = down
    hooks = Hooks()
    async with running(cfg_path, state, clock, hooks):
        await wait_for(lambda: hooks.delivered, "the close at start", limit=120)
    rev = Archive(state).latest("2026-02")
    doc = json.loads((rev.path / "report.json").read_text())
    expected = build_report(load_config(cfg_path), str(state), "2026-02", MONTH_NOW)
    assert doc["rows"] == expected["rows"] and doc["complete"]
    assert [r.month for r in (Archive(state).revisions(m)[0] for m in Archive(state).months())] == ["2026-02"]
    capsys.readouterr()
    bundle = str(rev.path / "sla-2026-02-evidence.tar.gz")
    assert main(["evidence", "verify", bundle, "--allow-unsigned"]) == 0, capsys.readouterr().err


async def test_a_close_cut_short_is_resumed_and_a_finished_one_never_redone(down):
    cfg_path, state, clock = down
    half = state / "reports" / "2026-02" / ".r1.tmp"
    half.mkdir(parents=True)
    (half / "report.json").write_text('{"month": "2026-')  # what a crash mid-write leaves
    hooks = Hooks()
    async with running(cfg_path, state, clock, hooks) as agent:
        await wait_for(lambda: hooks.delivered, "the close at start", limit=120)
        assert await agent.closer.check() == []
    rev = Archive(state).latest("2026-02")
    assert rev.name == "r1" and not half.exists()
    assert json.loads((rev.path / "report.json").read_text())["month"] == "2026-02"
    (rev.path / "delivered.json").unlink()  # as if killed between writing r1 and handing it over
    built = (rev.path / "metadata.json").read_text()
    again = Hooks()
    async with running(cfg_path, state, clock, again) as agent:
        assert await asyncio.gather(agent.closer.check(), agent.closer.check()) == [[], []]  # beside the loop's look
        assert (rev.path / "delivered.json").exists()
    third = Hooks()
    async with running(cfg_path, state, clock, third) as agent:
        assert await agent.closer.check() == []
    assert [p for p, _ in again.delivered] == [rev.path] and not third.delivered
    assert (rev.path / "metadata.json").read_text() == built and [r.name for r in Archive(state).revisions("2026-02")] \
        == ["r1"]


async def test_a_ticket_correction_makes_a_second_revision_saying_what_changed(down):
    cfg_path, state, clock = down
    hooks = Hooks()
    async with running(cfg_path, state, clock, hooks) as agent:
        await wait_for(lambda: hooks.delivered, "the close at start", limit=120)
        corrected = "id,priority,opened_at,responded_at\nT-4,P3,2026-02-26T18:00:00+01:00,2026-02-27T09:00:00+01:00\n"
        agent.store.upsert_tickets(parse_export(agent.cfg, "tickets.csv", corrected.encode()))
        [r2] = await agent.closer.check()
        assert await agent.closer.check() == [] and len(hooks.delivered) == 2 and hooks.delivered[1][0] == r2.path
    r1, r2 = Archive(state).revisions("2026-02")
    assert r2.name == "r2" and (r1.path / "report.json").read_text() != (r2.path / "report.json").read_text()
    changes = json.loads((r2.path / "changes.json").read_text())
    assert changes["previous"] == 1 and changes["reason"].startswith("rebuilt")
    p3 = [f for f in changes["figures"] if f["row"] == 6]
    assert {"field": "verdict", "before": "insufficient_data", "after": "met"} in [
        {k: f[k] for k in ("field", "before", "after")} for f in p3]
    assert all(f["row"] == 6 for f in changes["figures"])  # the other rows did not change
    assert "changes.json" not in r1.files() and r2.meta()["reason"] == changes["reason"]


def _lazily_without_the_pdf_module(html: str, out: Path, footer: str) -> None:
    """The default renderer in an installation without formats/pdf.py (run in the close's process)."""
    from agent.report import formats, revision
    sys.modules["agent.report.formats.pdf"] = None  # type: ignore[assignment]
    if hasattr(formats, "pdf"):
        delattr(formats, "pdf")
    revision.render_pdf_lazily(html, out, footer)


async def test_without_a_renderer_the_pdf_is_missing_and_said_why(down, monkeypatch):
    from agent.report import revision
    from agent.report import formats
    monkeypatch.setitem(sys.modules, "agent.report.formats.pdf", None)  # an installation without it
    monkeypatch.delattr(formats, "pdf", raising=False)  # an earlier import left it on the package
    cfg_path, state, clock = down
    hooks = Hooks()
    agent = Agent(load_config(cfg_path), state_dir=str(state), clock=clock)
    agent.closer.deliver = hooks.deliver
    assert agent.closer.pdf is revision.render_pdf_lazily
    with pytest.raises(PdfMissing):
        revision.render_pdf_lazily("<html></html>", state / "x.pdf", footer="")
    agent.closer.pdf = _lazily_without_the_pdf_module  # the close's own process has it, unless told
    await agent.start()
    try:
        await wait_for(lambda: hooks.delivered, "the close at start", limit=120)
    finally:
        await agent.stop()
    rev = Archive(state).latest("2026-02")
    assert "report.pdf" not in rev.files() and {"report.html", "report.json"} <= set(rev.files())
    assert rev.meta()["pdf"].startswith("not written: this installation has no PDF renderer")


async def test_reports_are_listed_and_served_behind_the_auth_and_nothing_else(down):
    cfg_path, state, clock = down
    hashed = bcrypt.hashpw(b"reader-pw", bcrypt.gensalt(rounds=4)).decode()
    (state.parent / "web.yml").write_text(f"basic_auth_users:\n  reader: '{hashed}'\n")
    cfg_path = _february_config(state.parent, f', web_config_file: "{state.parent / "web.yml"}"')
    ok = {"Authorization": "Basic " + base64.b64encode(b"reader:reader-pw").decode()}
    hooks = Hooks()
    async with running(cfg_path, state, clock, hooks) as agent, aiohttp.ClientSession() as s:
        await wait_for(lambda: hooks.delivered, "the close at start", limit=120)
        base = agent.server.url
        async with s.get(base + "/reports") as r:
            assert r.status == 401
        async with s.get(base + "/reports", headers=ok) as r:
            assert r.status == 200 and r.content_type == "text/html"
            page = await r.text()
        async with s.get(base + "/", headers=ok) as r:
            status_page = await r.text()
        for link in ("report.html", "report.pdf", "report.json", "sla-2026-02-evidence.tar.gz"):
            assert f'href="reports/2026-02/r1/{link}"' in page
        assert "MISSED" in page and "MET" in page
        assert 'id="last-closed"' in status_page and 'href="reports/2026-02/r1/report.html"' in status_page
        async with s.get(base + "/reports/2026-02/r1/report.json", headers=ok) as r:
            assert r.status == 200 and (await r.json())["month"] == "2026-02"
        async with s.get(base + "/reports/2026-02/r1/sla-2026-02-evidence.tar.gz", headers=ok) as r:
            body = await r.read()
            assert r.status == 200 and r.content_type == "application/gzip" and body[:2] == b"\x1f\x8b"
        (state / "reports" / "2026-02" / "secret.txt").write_text("not a revision's")
        (state / "outside.txt").write_text("the state directory's")
        for path in ("/reports/2026-02/r1/..%2F..%2F..%2Foutside.txt", "/reports/2026-02/r1/%2E%2E",
                     "/reports/2026-02/r1/.lock", "/reports/2026-02/..%2Fsecret.txt", "/reports/2026-02/r2/report.json",
                     "/reports/2026-02/r1/..", "/reports/../outside.txt", "/reports/2026-02/.r1.tmp/report.json",
                     "/reports/2026-13/r1/report.json", "/reports/2026-02/r1/report.json%00"):
            async with s.get(base + path, headers=ok) as r:
                text = await r.text()
                assert r.status == 404 and "the state directory's" not in text and "revision's" not in text, path


HOOKS = '''
import os, pathlib, time

out = pathlib.Path(os.environ["CLOSE_TEST_DIR"])


def pdf(html, path, footer):
    if os.environ.get("CLOSE_TEST_STALL") == "pdf":  # the close is cut here, its other files written
        (out / "pdf-started").write_text(str(os.getpid()))
        time.sleep(600)
    path.write_bytes(b"%PDF-1.4 made by the test's renderer\\n")


async def deliver(revision, summary):
    with open(out / "delivered.log", "a") as f:
        f.write(f"{revision}\\n")
'''
# the renderer lives in a module of its own: the close's process imports it to call it
DAEMON = '''
import os, pathlib, sys
from agent.report import closing
from close_hooks import deliver, pdf

out = pathlib.Path(os.environ["CLOSE_TEST_DIR"])


async def check(self, _check=closing.MonthClose.check):
    done = await _check(self)
    with open(out / "looks.log", "a") as f:
        f.write(f"{len(done)}\\n")
    return done

closing.MonthClose.deliver = staticmethod(deliver)
closing.MonthClose.check = check
closing.MonthClose.__init__.__defaults__ = (pdf,)  # the renderer the close uses
from agent.cli import main
sys.exit(main(sys.argv[1:]))
'''


def _running(pid: int) -> bool:
    """Whether the process is there and not a zombie (a container's first process may not reap them)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_sigkill_during_the_close_then_restart_closes_once_without_a_partial_file(tmp_path, february, request):
    import os
    import signal
    import subprocess
    import time

    shutil.copytree(february, tmp_path / "state")
    cfg_path = _february_config(tmp_path, ", flush_interval: 1s")
    (tmp_path / "daemon.py").write_text(DAEMON)
    (tmp_path / "close_hooks.py").write_text(HOOKS)
    month = tmp_path / "state" / "reports" / "2026-02"

    def start(**env: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, str(tmp_path / "daemon.py"), "run", "--config", str(cfg_path),
                                 "--state-dir", str(tmp_path / "state")], cwd=Path(__file__).parent.parent,
                                env={**os.environ, "CLOSE_TEST_DIR": str(tmp_path), **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        request.addfinalizer(proc.kill)  # a failed assertion leaves no daemon running
        return proc

    def until(predicate, what: str, proc: subprocess.Popen, limit: float = 120.0) -> None:
        deadline = time.monotonic() + limit
        while not predicate():  # another process writes it: polled, bounded
            assert proc.poll() is None, f"the daemon exited: {proc.stderr.read()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def looks() -> int:
        return len((tmp_path / "looks.log").read_text().splitlines()) if (tmp_path / "looks.log").exists() else 0

    proc = start(CLOSE_TEST_STALL="pdf")
    until(lambda: (tmp_path / "pdf-started").exists(), "the close to reach the PDF", proc)
    closing_pid = int((tmp_path / "pdf-started").read_text())
    assert closing_pid != proc.pid  # the close runs in a process of its own
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _running(closing_pid):  # killed with the agent, by the kernel: polled, bounded
        assert time.monotonic() < deadline, "the close's process outlived the killed agent"
        time.sleep(0.05)
    partial = month / ".r1.tmp"
    assert partial.is_dir() and (partial / "report.json").exists() and not (month / "r1").exists()

    proc = start()
    until(lambda: (month / "r1" / "delivered.json").exists(), "the close resumed", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    seen = looks()
    proc = start()
    until(lambda: looks() > seen, "a look after the restart", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert (tmp_path / "delivered.log").read_text().splitlines() == [str(month / "r1")]
    assert sorted(p.name for p in month.iterdir()) == [".lock", "r1"]  # no partial folder, no second revision
    r1 = Archive(tmp_path / "state").latest("2026-02")
    assert "report.pdf" in r1.files() and json.loads((r1.path / "report.json").read_text())["complete"]
    for name, digest in r1.meta()["files"].items():  # every file whole, as written
        from agent.report.bundle import sha256_file
        assert sha256_file(r1.path / name) == digest, name


def test_report_close_by_hand_then_rebuild_beside_it(tmp_path, february, capsys):
    shutil.copytree(february, tmp_path / "state")
    cfg_path = _february_config(tmp_path)
    close = ["report", "close", "--config", str(cfg_path), "--state-dir", str(tmp_path / "state"), "--month", "2026-02"]
    assert main(close) == 0
    assert "2026-02 r1 written to" in capsys.readouterr().out
    assert main(close) == 0 and "closed already" in capsys.readouterr().out
    assert main(close + ["--rebuild"]) == 0
    assert "r2 written to" in capsys.readouterr().out
    r1, r2 = Archive(tmp_path / "state").revisions("2026-02")
    changes = json.loads((r2.path / "changes.json").read_text())
    assert changes["figures"] == [] and changes["previous"] == 1  # nothing changed between them
    assert r1.meta()["reason"] == "closed by `sla-agent report close`" and r2.meta()["inputs"] == r1.meta()["inputs"]
    assert main(close[:-1] + ["2099-01"]) == 2 and "has not ended" in capsys.readouterr().err
