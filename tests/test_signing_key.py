"""The signing key as the service's user meets it: a root-owned key that user cannot read is refused by
check-config and at the agent's start, naming the file and the permission; /readyz says so when it stops
loading; the unit's drop-in and the README's set-up give that user a copy it reads, as systemd does."""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import pytest

from agent.app import Agent
from agent.config import load_config, parse_config
from agent.report.signing import key_id, keygen, load_private
from agent.store import Store

from .conftest import ROOT, thread_server

NOBODY, NOGROUP = 65534, 65534
DROP_IN = ROOT / "deploy" / "systemd" / "signing-key.conf"


@pytest.fixture
def world():
    """A folder the unprivileged user can enter (pytest's tmp_path is root's alone): a config naming a
    root-owned 0600 key made by keygen, and a state directory that user owns."""
    base = Path(tempfile.mkdtemp(prefix="sla-agent-key-"))
    try:
        base.chmod(0o755)
        private, _ = keygen(base / "etc")
        (base / "etc").chmod(0o755)
        cfg = base / "sla-agent.yaml"
        cfg.write_text(f'agent: {{listen: "127.0.0.1:0"}}\nevidence: {{signing_key_file: "{private}"}}\n'
                       'targets: [{name: a, service: web, url: "http://127.0.0.1:9/"}]\n')
        cfg.chmod(0o644)
        state = base / "state"
        Store(state, thresholds=load_config(cfg).contract.thresholds).close()  # an empty ledger to report on
        for p in (state, *state.iterdir()):
            os.chown(p, NOBODY, NOGROUP)
        yield base, cfg, private, state
    finally:
        shutil.rmtree(base)


def as_nobody(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOGROUP}", "--clear-groups",
                           sys.executable, "-m", "agent", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def names_key_and_permission(text: str, key: Path) -> bool:
    return str(key) in text and "Permission denied" in text and f"user {NOBODY}" in text and "mode 0600" in text


def test_check_config_refuses_a_key_its_user_cannot_read(world):
    _, cfg, key, _ = world
    p = as_nobody("check-config", str(cfg))
    assert p.returncode == 2, p.stdout + p.stderr
    assert names_key_and_permission(p.stderr, key), p.stderr
    assert "LoadCredential=" in p.stderr and "OK" not in p.stdout


def test_the_agent_does_not_start_with_a_key_its_user_cannot_read(world):
    """Before, it started, said ready, and every report failed later: the run would not end on its own
    (the timeout raises)."""
    _, cfg, key, state = world
    p = as_nobody("run", "--config", str(cfg), "--state-dir", str(state), timeout=30)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "cannot start" in p.stderr and names_key_and_permission(p.stderr, key), p.stderr


def test_report_as_that_user_is_an_error_not_a_traceback(world):
    _, cfg, key, state = world
    p = as_nobody("report", "--config", str(cfg), "--state-dir", str(state), "--month", "2026-11",
                  "--format", "json")
    assert p.returncode != 0 and "Traceback" not in p.stderr and names_key_and_permission(p.stderr, key), p.stderr


def _load_credentials(unit_text: str, folder: Path) -> dict[str, str]:
    """What systemd does with LoadCredential=ID:PATH at the start: PATH read by the manager (root), copied
    to a folder of the service's own as ID, readable by the service's user alone."""
    folder.mkdir(mode=0o500)
    found = {}
    for ident, source in re.findall(r"^LoadCredential=([^:\s]+):(\S+)$", unit_text, re.M):
        found[ident] = source
    for ident, source in found.items():
        copy = folder / ident
        copy.write_bytes(Path(source).read_bytes())
        copy.chmod(0o400)
        os.chown(copy, NOBODY, NOGROUP)
    os.chown(folder, NOBODY, NOGROUP)
    return found


def test_the_drop_in_and_the_readme_set_up_give_the_service_a_key_it_reads(world):
    base, cfg, key, state = world
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = re.search(r"signing_key_file: (/etc/sla-agent/\S+)", readme).group(1)
    assert "deploy/systemd/signing-key.conf" in readme and "evidence keygen --output /etc/sla-agent" in readme
    text = DROP_IN.read_text()
    assert re.findall(r"^LoadCredential=([^:\s]+):(\S+)$", text, re.M) == [(Path(documented).name, documented)]
    # The README's key path, here under the test's folder: the manager reads it as root.
    creds = _load_credentials(text.replace(str(Path(documented).parent), str(key.parent)), base / "credentials")
    assert creds == {key.name: str(key)}
    env = {"CREDENTIALS_DIRECTORY": str(base / "credentials")}
    fingerprint = key_id(load_private(key).public_key())
    p = as_nobody("check-config", str(cfg), env=env)
    assert p.returncode == 0 and fingerprint[:16] in p.stdout, p.stdout + p.stderr
    p = as_nobody("report", "--config", str(cfg), "--state-dir", str(state), "--month", "2026-11",
                  "--format", "json", env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["evidence"]["signature"]["key_sha256"] == fingerprint


def test_a_credential_holding_another_key_than_the_configured_one_is_refused(world):
    """A key rotated to a new file of the same name while the unit still passes the old one: the copy
    differs from the .pub beside the configured key, and the agent would sign with the old key."""
    base, cfg, key, _ = world
    old, _ = keygen(base / "old")
    folder = base / "credentials"
    _load_credentials(f"LoadCredential={key.name}:{old}\n", folder)
    p = as_nobody("check-config", str(cfg), env={"CREDENTIALS_DIRECTORY": str(folder)})
    assert p.returncode == 2 and "holds another key" in p.stderr and "LoadCredential=" in p.stderr, p.stdout + p.stderr


async def _readyz(agent: Agent) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(agent.server.url + "/readyz") as resp:
        return resp.status, await resp.text()


async def test_readyz_says_when_the_key_stops_loading(tmp_path):
    key, _ = keygen(tmp_path / "keys")
    with thread_server() as port:
        cfg = parse_config(f'agent: {{listen: "127.0.0.1:0"}}\nevidence: {{signing_key_file: "{key}"}}\n'
                           f'targets: [{{name: a, service: web, url: "http://127.0.0.1:{port}/", interval: 200ms}}]\n')
        agent = Agent(cfg, state_dir=str(tmp_path / "state"))
        await agent.start()
        try:
            for _ in range(200):  # bounded: the first probe answers in milliseconds
                if (await _readyz(agent))[0] == 200:
                    break
                await asyncio.sleep(0.05)
            assert await _readyz(agent) == (200, "ready\n")
            key.write_text("not a key\n")
            status, text = await _readyz(agent)
            assert status == 503 and "signing key" in text and str(key) in text, text
        finally:
            await agent.stop()
