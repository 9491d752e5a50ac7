"""The `tcp` probe type against real local listeners: up, refused, timeouts, TLS handshake and expiry,
the expected line; and the type end to end through a real agent, scraped over HTTP."""
from __future__ import annotations

import asyncio
import datetime as dt

import aiohttp
import pytest

from agent.clock import SystemClock
from agent.config import ConfigError, parse_config
from agent.probes import make_probe

from .servers import closed_port, full_backlog, make_certs, raw_server


def tcp_target(address: str, extra: str = "", timeout: str = "1s", base_dir=None):
    cfg = parse_config(f'targets: [{{name: smtp, service: mail, type: tcp, address: "{address}", '
                       f'timeout: {timeout}, interval: 2s{extra}}}]', base_dir=base_dir)
    return cfg.targets[0]


async def probe(target):
    p = make_probe(target, clock=SystemClock())
    try:
        return await p.run()
    finally:
        await p.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


async def greeter(reader, writer):
    writer.write(b"220 mail.example ESMTP ready\r\n")
    await writer.drain()
    await asyncio.sleep(5)


async def echo_pong(reader, writer):
    line = await reader.readline()
    writer.write(b"+PONG\r\n" if line == b"PING\r\n" else b"-ERR unknown command\r\n")
    await writer.drain()
    await asyncio.sleep(5)


async def test_up_with_a_greeting_and_the_phases():
    async with raw_server(greeter) as port:
        r = await probe(tcp_target(f"127.0.0.1:{port}", ', expect: "^220 "'))
    assert (r.outcome, r.error_kind, r.status) == ("up", "", None)
    dns, connect, tls, response = r.phases
    assert dns == 0.0 and tls == 0.0 and connect > 0 and response > 0  # an IP literal, no TLS
    assert r.latency_counted and r.duration_s >= connect + response


async def test_send_then_expect_and_a_mismatch_names_the_line():
    async with raw_server(echo_pong) as port:
        ok = await probe(tcp_target(f"127.0.0.1:{port}", ', send: "PING\\r\\n", expect: "^\\\\+PONG$"'))
        bad = await probe(tcp_target(f"127.0.0.1:{port}", ', send: "PONG\\r\\n", expect: "^\\\\+PONG$"'))
    assert ok.outcome == "up"
    assert (bad.outcome, bad.error_kind) == ("down", "assertion")
    assert "'-ERR unknown command'" in bad.error and "+PONG" in bad.error
    assert bad.latency_counted  # it answered: the answer was wrong, not late


async def test_connection_refused():
    r = await probe(tcp_target(f"127.0.0.1:{closed_port()}"))
    assert (r.outcome, r.error_kind) == ("down", "connect_refused")
    assert not r.latency_counted


async def test_connect_timeout_when_syn_gets_no_answer():
    with full_backlog() as port:
        r = await probe(tcp_target(f"127.0.0.1:{port}", timeout="500ms"))
    assert (r.outcome, r.error_kind) == ("down", "connect_timeout")
    assert not r.latency_counted


async def test_silence_after_connect_is_a_timeout_counted_as_slow():
    async def silent(reader, writer):
        await asyncio.sleep(5)

    async with raw_server(silent) as port:
        r = await probe(tcp_target(f"127.0.0.1:{port}", ', expect: "^220"', timeout="400ms"))
    assert (r.outcome, r.error_kind) == ("down", "timeout")
    assert r.latency_counted and r.duration_s >= 0.4


async def test_peer_closing_before_a_line_is_a_reset():
    async def rude(reader, writer):
        writer.close()

    async with raw_server(rude) as port:
        r = await probe(tcp_target(f"127.0.0.1:{port}", ', expect: "^220"'))
    assert (r.outcome, r.error_kind) == ("down", "reset")


async def test_tls_handshake_phase_and_certificate_expiry(certs, tmp_path):
    async with raw_server(greeter, ssl_context=certs.server_context("good")) as port:
        r = await probe(tcp_target(f"127.0.0.1:{port}", f', tls: {{ca_file: "{certs.ca}"}}, expect: "^220"'))
    assert r.outcome == "up", r.error
    assert r.phases[2] > 0  # the handshake has its own phase
    days = (r.tls_not_after - dt.datetime.now(dt.timezone.utc).timestamp()) / 86400
    assert 89 < days <= 90  # the test certificate's own expiry


@pytest.mark.parametrize("which", ["expired", "wrong_host", "self_signed"])
async def test_tls_bad_certificates(certs, which):
    async with raw_server(greeter, ssl_context=certs.server_context(which)) as port:
        r = await probe(tcp_target(f"127.0.0.1:{port}", f', tls: {{ca_file: "{certs.ca}"}}'))
    assert (r.outcome, r.error_kind) == ("down", "tls"), r.error


async def test_tls_handshake_that_stalls(certs):
    async def mute(reader, writer):  # accepts TCP, never speaks TLS
        await asyncio.sleep(5)

    async with raw_server(mute) as port:
        r = await probe(tcp_target(f"127.0.0.1:{port}", ", tls: true", timeout="400ms"))
    assert (r.outcome, r.error_kind) == ("down", "tls")
    assert "handshake" in r.error


async def test_a_host_name_has_a_dns_phase():
    async with raw_server(greeter) as port:
        r = await probe(tcp_target(f"localhost:{port}", ', ip_family: ipv4, expect: "^220"'))
    assert r.outcome == "up"
    assert r.phases[0] > 0


def test_config_errors_are_located():
    with pytest.raises(ConfigError) as err:
        parse_config('targets:\n  - name: smtp\n    service: mail\n    type: tcp\n    address: "mail.example"\n'
                     '    url: "http://x/"\n    tls: {cert_file: nope.pem}\n')
    got = [f"{i.line}: {i.path}: {i.message}" for i in err.value.issues]
    assert got[0] == ("5: targets[0].address: must be host:port such as smtp.example.com:25 or [2001:db8::1]:443, "
                      "got 'mail.example'")
    assert got[1].startswith("6: targets[0].url: unknown key; valid keys here: address, expect, interval, ip_family")
    assert got[2].startswith("7: targets[0].tls.cert_file: no such file: ")


async def test_a_tcp_target_end_to_end_through_the_agent(tmp_path):
    """Nothing outside probes/tcp knows the type: the ledger, the exporter and the status page take it."""
    from agent.app import Agent

    async with raw_server(greeter) as port:
        cfg = parse_config(f'agent: {{listen: "127.0.0.1:0"}}\ntargets:\n'
                           f'  - {{name: smtp, service: mail, type: tcp, address: "127.0.0.1:{port}", '
                           f'interval: 200ms, timeout: 1s, max_in_flight: 6, expect: "^220"}}\n'
                           f'controls:\n  - {{name: gw, type: tcp, address: "127.0.0.1:{port}", interval: 1s, '
                           f'timeout: 500ms}}\n')
        agent = Agent(cfg, state_dir=str(tmp_path))
        seen = []
        agent.listeners.append(seen.append)
        await agent.start()
        try:
            for _ in range(100):
                if sum(r.target == "smtp" for r in seen) >= 5:
                    break
                await asyncio.sleep(0.1)
            await agent.evaluate_now()
            async with aiohttp.ClientSession() as s:
                async with s.get(agent.server.url + "/metrics") as resp:
                    metrics = await resp.text()
            status = agent.status()
        finally:
            await agent.stop()
    assert {r.outcome for r in seen if r.target == "smtp"} == {"up"}
    assert f'url="tcp://127.0.0.1:{port}"' in metrics and 'type="tcp"' in metrics
    assert 'phase="response",service="mail",target="smtp"' in metrics
    assert 'phase="ttfb",service="mail"' not in metrics and 'phase="dns",service="mail"' not in metrics
    assert status["targets"]["smtp"]["outcome"] == "up"
    assert status["services"]["mail"]["availability"]["month"]["slices"]["up"] >= 0
