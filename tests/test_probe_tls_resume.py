"""TLS contexts of the probes: one per distinct option set, and `tls.resume` (a returning client), seen from
a real local HTTPS server: with resume on, the handshakes after the first are resumed; with it off, none is."""
from __future__ import annotations

import shutil

import pytest
from aiohttp import web

from agent.clock import SystemClock
from agent.config import parse_config
from agent.probes import Target, make_probe
from agent.probes.http import HttpOptions, TLSOptions
from agent.probes.tls import client_context, probe_context

from .servers import http_server, make_certs, raw_server


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


async def run_probes(certs, resume: bool, count: int = 3):
    """`count` probes of one target; for each, whether the server saw its handshake resumed."""
    resumed: list[bool] = []

    async def handler(request: web.Request) -> web.Response:
        resumed.append(request.transport.get_extra_info("ssl_object").session_reused)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    async with http_server(app, ssl_context=certs.server_context("good")) as base:
        t = Target(name="t", service="web", timeout=2.0, interval=2.0,
                   options=HttpOptions(base + "/", tls=TLSOptions(ca_file=str(certs.ca), resume=resume)))
        p = make_probe(t, clock=SystemClock())
        try:
            results = [await p.run() for _ in range(count)]
        finally:
            await p.close()
    return resumed, results


async def test_resume_on_resumes_the_handshakes_after_the_first(certs):
    resumed, results = await run_probes(certs, resume=True)
    assert resumed == [False, True, True]
    for r in results:  # measured and reported as any other probe: the handshake has its phase
        assert r.outcome == "up", r.error
        assert r.phases[2] > 0
        assert abs(sum(r.phases) - r.duration_s) < 0.001
        assert r.tls_not_after is not None


async def test_resume_off_is_a_full_handshake_every_time(certs):
    resumed, results = await run_probes(certs, resume=False)
    assert resumed == [False, False, False]
    assert all(r.outcome == "up" for r in results)


def test_one_context_per_option_set_and_a_new_one_when_its_file_changes(certs, tmp_path):
    ca = tmp_path / "ca.pem"
    shutil.copy(certs.ca, ca)
    a = client_context(TLSOptions(ca_file=str(ca)))
    assert client_context(TLSOptions(ca_file=str(ca), server_name="api.example.org")) is a  # a name per connection
    assert probe_context(TLSOptions(ca_file=str(ca))) is a
    assert client_context(TLSOptions(ca_file=str(ca), verify=False)) is not a
    resuming = [probe_context(TLSOptions(ca_file=str(ca), resume=True)) for _ in range(2)]
    assert resuming[0] is not resuming[1] and a not in resuming  # a target's sessions are its own
    ca.write_bytes(ca.read_bytes() + b"\n")  # rotated on disk: a reload reads the new file
    assert client_context(TLSOptions(ca_file=str(ca))) is not a


async def test_a_tcp_target_that_reads_the_servers_line_resumes(certs):
    resumed: list[bool] = []

    async def greeter(reader, writer):
        resumed.append(writer.get_extra_info("ssl_object").session_reused)
        writer.write(b"220 ready\r\n")
        await writer.drain()

    async with raw_server(greeter, ssl_context=certs.server_context("good")) as port:
        cfg = parse_config(f'targets: [{{name: smtp, service: mail, type: tcp, address: "127.0.0.1:{port}", '
                           f'timeout: 2s, interval: 2s, tls: {{ca_file: "{certs.ca}", resume: true}}, '
                           f'expect: "^220"}}]')
        p = make_probe(cfg.targets[0], clock=SystemClock())
        try:
            results = [await p.run() for _ in range(3)]
        finally:
            await p.close()
    assert [r.outcome for r in results] == ["up"] * 3, results[-1].error
    assert resumed == [False, True, True]


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def test_sslkeylogfile_is_honoured_as_pythons_default_context_does(certs, tmp_path, monkeypatch):
    keylog = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))
    ca = tmp_path / "own-ca.pem"  # an option set of its own: a context built now, with the variable set
    shutil.copy(certs.ca, ca)
    app = web.Application()
    app.router.add_get("/", _ok)
    async with http_server(app, ssl_context=certs.server_context("good")) as base:
        t = Target(name="t", service="web", timeout=2.0, interval=2.0,
                   options=HttpOptions(base + "/", tls=TLSOptions(ca_file=str(ca))))
        p = make_probe(t, clock=SystemClock())
        try:
            assert (await p.run()).outcome == "up"
        finally:
            await p.close()
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in keylog.read_text()  # a capture of it can be decrypted
