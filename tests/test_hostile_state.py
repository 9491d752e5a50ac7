"""Hostile moves against the agent's state and life: a second agent on the same state directory, the
ledger deleted under a running agent, signals during the shutdown grace, a reload whose parsing takes
long, reports from a read-only file system. Real daemons, real SQLite files, real signals."""
from __future__ import annotations

import asyncio
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from aiohttp import ClientSession, web

from agent.app import Agent
from agent.cli import main
from agent.config import load_config, parse_config

from .conftest import free_port
from .servers import http_server
from .test_daemon import _http_get, _run_daemon, wait_for
from .test_reliability import small_fs  # noqa: F401 - the fixture


def _config(path: Path, port: int, target: str, extra: str = "") -> Path:
    path.write_text(f"""
agent: {{listen: "127.0.0.1:{port}", flush_interval: 300ms, shutdown_grace: 3s{extra}}}
targets:
  - {{name: api, service: api, url: "{target}", interval: 250ms, timeout: 2s}}
""")
    return path


def _lines_until(proc: subprocess.Popen, needle: str, limit: float = 20.0) -> list[str]:
    """The daemon's stderr lines up to the first holding `needle` (bounded wait on real output). Each line
    is read in a thread: a select() on the pipe missed lines the file object had already buffered."""
    deadline, lines = time.monotonic() + limit, []
    while time.monotonic() < deadline:
        box: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: box.put(proc.stderr.readline()), daemon=True).start()
        try:
            line = box.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        lines.append(line)
        if needle in line or not line:
            return lines
    raise AssertionError(f"the daemon never said {needle!r}: {lines[-5:]}")


def test_a_second_agent_on_the_same_state_dir_exits_naming_the_first(tmp_path, target_server):
    """Both used to run and overwrite each other's hour rows (last writer wins)."""
    first = _run_daemon(_config(tmp_path / "a.yaml", free_port(), f"http://127.0.0.1:{target_server}/"),
                        tmp_path / "state")
    try:
        _lines_until(first, "probing 1 targets")
        second = _run_daemon(_config(tmp_path / "b.yaml", free_port(), f"http://127.0.0.1:{target_server}/"),
                             tmp_path / "state")
        _, err = second.communicate(timeout=30)
        assert second.returncode == 1
        assert f"in use by another sla-agent (PID {first.pid})" in err
        assert first.poll() is None
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0


def test_a_second_sigterm_and_a_sighup_during_the_grace_do_not_skip_the_final_flush(tmp_path):
    """A probe hangs (the server never answers), so the stop waits the grace; the signals sent then used
    to kill the agent (exit 143 / 129) before it flushed."""
    silent = socket_server()
    proc = _run_daemon(_config(tmp_path / "a.yaml", free_port(), f"http://127.0.0.1:{silent.port}/"),
                       tmp_path / "state")
    try:
        _lines_until(proc, "probing 1 targets")
        proc.send_signal(signal.SIGTERM)
        _lines_until(proc, "stopping: finishing in-flight probes")
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGHUP)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        silent.close()
    assert proc.returncode == 0, err
    assert "SIGTERM while stopping: ignored" in err and "SIGHUP while stopping: ignored" in err
    assert "ledger flushed" in err


class socket_server:
    """Accepts connections and never answers."""

    def __init__(self) -> None:
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def _app() -> web.Application:
    a = web.Application()
    a.router.add_get("/", _ok)
    return a


async def test_the_ledger_deleted_under_a_running_agent_is_written_again_from_memory(tmp_path, caplog):
    """Deleting ledger.db (and -wal, -shm) used to go unnoticed: flushes 'succeeded' into the unlinked
    file and the exit log said 'ledger flushed' with no file there."""
    async with http_server(_app()) as base:
        cfg = parse_config(f'agent: {{listen: "127.0.0.1:0", flush_interval: 300s}}\ntargets:\n'
                           f'  - {{name: api, service: api, url: "{base}/", interval: 100ms, timeout: 2s}}\n')
        agent = Agent(cfg, state_dir=str(tmp_path / "state"))
        await agent.start()
        try:
            await wait_for(lambda: agent.results_seen >= 20, "20 results")
            await agent.scheduler.stop(5)  # nothing new after this: what the new file gets comes from memory
            await agent.flush()
            db = tmp_path / "state" / "ledger.db"
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            real_write = agent.store.write
            agent.store.write = _failing_once(real_write)  # the first write to the new file fails
            assert not await agent.flush()
            assert agent.ready() == (False, "the ledger file was lost: writing a new one")
            assert agent.metrics.ready._value.get() == 0  # the gauge follows readiness both ways
            assert await agent.flush()
            assert agent.ready()[0] and agent.metrics.ready._value.get() == 1
        finally:
            await agent.stop()
    assert db.exists()
    with sqlite3.connect(db) as conn:
        stored = sum(_decided(blob) for (blob,) in conn.execute("SELECT counts FROM minutes"))
    held = int(agent.ledger.series["api"].data[:, :3].sum())
    assert stored == held >= 20  # everything memory held, from before the deletion on, is in the new file
    assert "was deleted or replaced while the agent ran" in caplog.text
    assert agent.metrics.ledger_lost._value.get() == 1


def _failing_once(write):
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk I/O error")
        return write(*args, **kwargs)
    return wrapped


def _decided(blob: bytes) -> int:
    """Up, down and inconclusive results of a stored hour row."""
    import zlib

    import numpy as np

    from agent.ledger import DTYPE
    return int(np.frombuffer(zlib.decompress(blob), dtype=DTYPE).reshape(60, -1)[:, :3].sum())


async def test_a_reload_is_parsed_off_the_event_loop(tmp_path, monkeypatch):
    """A 50 MB config took 22 s to parse on the loop: every probe meanwhile was inconclusive. Now the
    agent answers while the new config is read; then it applies it."""
    started, release = threading.Event(), threading.Event()

    def slow_load(path):
        started.set()
        release.wait(20)
        return load_config(path)

    monkeypatch.setattr("agent.app.load_config", slow_load)
    async with http_server(_app()) as base:
        path = tmp_path / "agent.yaml"
        path.write_text(f'agent: {{listen: "127.0.0.1:0"}}\ntargets:\n'
                        f'  - {{name: api, service: api, url: "{base}/", interval: 100ms, timeout: 2s}}\n')
        agent = Agent(load_config(path), state_dir=str(tmp_path / "state"), config_path=str(path))
        await agent.start()
        try:
            path.write_text(path.read_text() + f'  - {{name: api-2, service: api, url: "{base}/", interval: 100ms}}\n')
            reload = asyncio.create_task(agent.reload())
            assert await asyncio.to_thread(started.wait, 10)
            before = agent.results_seen
            async with ClientSession() as s, s.get(agent.server.url + "/healthz") as resp:
                assert resp.status == 200  # the loop serves while the file is parsed
            await wait_for(lambda: agent.results_seen > before + 3, "probes during the reload")
            release.set()
            assert await reload
            assert {t.name for t in agent.cfg.targets} == {"api", "api-2"}
        finally:
            release.set()
            await agent.stop()


def test_reports_work_from_a_read_only_file_system(small_fs, tmp_path, target_server):  # noqa: F811
    """`report` and `evidence verify` open the ledger read-only; on a read-only mount SQLite cannot make
    the WAL's shared-memory file and they ended in an OperationalError traceback."""
    state = small_fs / "state"
    cfg = _config(tmp_path / "a.yaml", free_port(), f"http://127.0.0.1:{target_server}/")
    proc = _run_daemon(cfg, state)
    try:
        _lines_until(proc, "probing 1 targets")
        _http_get(int(cfg.read_text().split("127.0.0.1:")[1].split('"')[0]), "/readyz", time.monotonic() + 20)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    Path(str(state / "ledger.db") + "-shm").unlink(missing_ok=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    month = time.strftime("%Y-%m", time.gmtime())
    out = subprocess.run([sys.executable, "-m", "agent", "report", "--config", str(cfg), "--state-dir", str(state),
                          "--month", month, "--format", "json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"month"' in out.stdout
    assert main(["evidence", "verify", "--config", str(cfg), "--state-dir", str(state)]) == 0
    assert subprocess.run(["touch", str(state / "x")], capture_output=True).returncode != 0  # really read-only
