"""State that survives: restart continues the counts; kill -9 loses at most one flush interval and
never corrupts the database; a corrupt database is moved aside, never deleted."""
from __future__ import annotations

import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest

from agent.calendar import Calendar
from agent.config.model import Contract
from agent.ledger import Ledger
from agent.probes import ProbeResult
from agent.store import Store

from .conftest import free_port


def stored_total(state: Path) -> int:
    """Every probe the database holds (up + down + inconclusive over all minutes)."""
    conn = sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True)
    try:
        total = 0
        for (blob,) in conn.execute("SELECT counts FROM minutes"):
            arr = np.frombuffer(zlib.decompress(blob), dtype=np.uint16).reshape(60, -1)
            total += int(arr[:, :3].sum())
        return total
    finally:
        conn.close()


def integrity(state: Path) -> str:
    conn = sqlite3.connect(state / "ledger.db")
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def write_config(path: Path, port: int, target_port: int, flush: str = "300ms", n: int = 4) -> float:
    targets = "\n".join(f'  - {{name: t{i}, service: web, url: "http://127.0.0.1:{target_port}/", interval: 100ms, '
                        f'timeout: 100ms}}' for i in range(n))
    path.write_text(f'agent: {{listen: "127.0.0.1:{port}", flush_interval: {flush}, shutdown_grace: 2s}}\n'
                    f"targets:\n{targets}\n")
    return n / 0.1  # probes per second


def start(config: Path, state: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config), "--state-dir", str(state)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def metric(port: int, name: str, limit: float = 20.0) -> float:
    deadline = time.monotonic() + limit
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:  # nosec - loopback
                text = resp.read().decode()
            m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
            if m:
                return float(m.group(1))
        except OSError:
            pass
        assert time.monotonic() < deadline, f"no {name} from the daemon"
        time.sleep(0.02)


def probes_seen(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:  # nosec - loopback
        text = resp.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(r"^sla_probes_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


def wait_flushes(port: int, k: int, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while metric(port, "sla_state_flushes_total") < k:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_restart_continues_counts(tmp_path, target_server):
    state = tmp_path / "state"
    cfg = tmp_path / "agent.yaml"
    totals = []
    for run in range(2):
        port = free_port()
        write_config(cfg, port, target_server)
        proc = start(cfg, state)
        try:
            wait_flushes(port, 3)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        n = int(re.search(r"stopped after (\d+) probe results", err).group(1))
        totals.append(n)
        assert stored_total(state) == sum(totals), f"run {run}: nothing may be lost across a clean stop"
        assert "state restored" in err
    assert all(n > 0 for n in totals)


def test_kill_9_twenty_times(tmp_path, target_server, capsys):
    state = tmp_path / "state"
    cfg = tmp_path / "agent.yaml"
    rng = random.Random(20)
    flush = 0.3
    lost_per_kill = []
    for i in range(20):
        port = free_port()
        rate = write_config(cfg, port, target_server, flush=f"{int(flush * 1000)}ms")
        before = stored_total(state) if (state / "ledger.db").exists() else 0
        proc = start(cfg, state)
        try:
            wait_flushes(port, rng.randint(1, 3))
            time.sleep(rng.uniform(0, flush))  # a random moment between two flushes: the kill is the event
            seen = probes_seen(port)
            proc.kill()  # SIGKILL, right after the scrape
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert integrity(state) == "ok"
        stored = stored_total(state) - before
        lost = max(0.0, seen - stored)
        lost_per_kill.append(lost)
        assert lost <= rate * (flush + 0.25), f"kill {i}: lost {lost} > one flush interval of samples"
    with capsys.disabled():
        print(f"\n[crash test] 20 x kill -9 at {rate:.0f} probes/s, flush every {flush}s: 0 corrupt databases; "
              f"samples lost per kill: max {max(lost_per_kill):.0f}, mean {sum(lost_per_kill) / 20:.1f} "
              f"(one flush interval = {rate * flush:.0f} samples; asserted <= {rate * (flush + 0.25):.0f} with the write's "
              f"own latency)")


def test_corrupt_database_is_moved_aside(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "ledger.db").write_bytes(b"SQLite format 3\x00" + b"\x13" * 5000)
    store = Store(state, thresholds=(0.5, 1.0))
    try:
        assert store.moved_aside and store.moved_aside[0].exists()
        assert store.moved_aside[0].read_bytes().startswith(b"SQLite format 3")
        assert integrity(state) == "ok"
    finally:
        store.close()


def test_store_round_trip_and_threshold_guard(tmp_path):
    c = Calendar(Contract())
    led = Ledger((0.5, 1.0), day_start=c.day_start)
    t0 = 1_795_000_000.0
    led.anchor(t0)
    for i in range(5000):
        led.add(ProbeResult("api", "api", t0 + i, 0.0, 0.1 + (i % 10) / 10, "up" if i % 50 else "down",
                            "" if i % 50 else "http_status", latency_counted=True))
    store = Store(tmp_path, thresholds=(0.5, 1.0))
    hours, digests = led.take_dirty()
    store.write(hours, digests, {"api": "api"})
    led2 = Ledger((0.5, 1.0), day_start=c.day_start)
    led2.anchor(t0)
    store.restore(led2, t0 - 86400)
    m0, m1 = int(t0 // 60), int((t0 + 5000) // 60) + 1
    assert np.array_equal(led.matrix("api", m0, m1), led2.matrix("api", m0, m1))
    assert np.array_equal(store.matrix("api", m0, m1, led.nf), led.matrix("api", m0, m1))
    assert led2.series["api"].errors == led.series["api"].errors  # error kinds per minute, restored
    assert store.error_kinds("api", t0, t0 + 5000) == {"http_status": 100}  # every 50th of 5,000
    store.close()
    from agent.store import StoreError
    with pytest.raises(StoreError, match="cannot be converted"):
        Store(tmp_path, thresholds=(0.3, 1.0))
