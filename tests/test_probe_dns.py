"""The `dns` probe type against a real DNS server on 127.0.0.1 (and ::1), built here with dnspython's message
API over asyncio UDP and TCP: answers with their TTLs, silence, NXDOMAIN, wrong records, SERVFAIL, a
truncated UDP answer asked again over TCP, a closed port, a garbled answer; the system-resolver path with a
resolver pointed at the same server; the config's errors; and a down result relabelled inconclusive by the
pipeline when the control checks fail."""
from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from typing import AsyncIterator

import dns.message
import dns.nameserver
import dns.rcode
import dns.rrset
import dns.asyncresolver
import pytest

from agent.calendar import Calendar
from agent.clock import SystemClock
from agent.config import ConfigError, parse_config
from agent.pipeline import Pipeline
from agent.probes import Capture, make_probe
from agent.probes.dns import probe as dns_probe

from .conftest import FakeClock
from .servers import closed_port, ipv6_loopback

SOA = "ns1.test. hostmaster.test. 2024010101 3600 600 86400 300"
BIG = [f'"record number {i} of a TXT set larger than one UDP answer of 512 bytes"' for i in range(20)]


def _answer(wire: bytes, tcp: bool, failing: set[str]) -> bytes | None:
    """The zone the server serves: each name behaves in its own way, a name in `failing` as broken.test.
    None: the query is dropped."""
    q = dns.message.from_wire(wire)
    name = q.question[0].name.to_text()
    name = "broken.test." if name in failing else name
    r = dns.message.make_response(q)
    if name == "silent.test.":
        return None
    if name == "hangup.test.":
        return b""  # over tcp: the connection closed before an answer
    if name == "garbled.test.":
        return wire[:2] + b"\x81\x80\xff\xff"  # the query's id, a header cut short
    if name in ("api.test.", "ctl.test.") and q.question[0].rdtype == dns.rdatatype.A:
        r.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.10", "192.0.2.11"))
    elif name == "www.test.":
        r.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", "api.test."))
        r.answer.append(dns.rrset.from_text("api.test.", 300, "IN", "A", "192.0.2.10"))
    elif name == "wrong.test.":
        r.answer.append(dns.rrset.from_text(name, 30, "IN", "A", "10.9.9.9"))
    elif name == "broken.test.":
        r.set_rcode(dns.rcode.SERVFAIL)
    elif name == "big.test.":
        if not tcp:
            r.flags |= dns.flags.TC
            return r.to_wire(max_size=65535)
        r.answer.append(dns.rrset.from_text(name, 120, "IN", "TXT", *BIG))
    elif name != "api.test.":
        r.set_rcode(dns.rcode.NXDOMAIN)
        r.authority.append(dns.rrset.from_text("test.", 300, "IN", "SOA", SOA))
    return r.to_wire(max_size=65535)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, seen: Counter, failing: set[str]) -> None:
        self.seen, self.failing = seen, failing

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.seen["udp"] += 1
        out = _answer(data, False, self.failing)
        if out is not None:
            self.transport.sendto(out, addr)


@contextlib.asynccontextmanager
async def dns_server(host: str = "127.0.0.1", failing: set[str] | None = None) -> AsyncIterator[tuple[int, Counter]]:
    """A DNS server on UDP and TCP, one port for both; yields the port and the count of queries per transport.
    The names put in `failing` (while it runs) answer SERVFAIL."""
    seen: Counter = Counter()
    failing = set() if failing is None else failing
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                seen["tcp"] += 1
                out = _answer(await reader.readexactly(size), True, failing)
                if not out:
                    if out is None:
                        await reader.read()  # silent until the client leaves
                    return
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            writer.close()

    for _ in range(20):  # a free UDP port whose TCP twin is free too
        udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(seen, failing), local_addr=(host, 0))
        port = udp.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(stream, host, port)
            break
        except OSError:
            udp.close()
    else:
        raise RuntimeError("no port free on both UDP and TCP")
    try:
        yield port, seen
    finally:
        udp.close()
        tcp.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await tcp.wait_closed()


def dns_target(extra: str, timeout: str = "1s", kind: str = "targets"):
    cfg = parse_config(f"{kind}: [{{name: api-dns, service: names, type: dns, timeout: {timeout}{extra}}}]")
    return (cfg.targets or cfg.controls)[0]


async def probe(target, clock=None, capture=None, resolver=None):
    p = make_probe(target, clock=clock or SystemClock(), capture=capture, resolver=resolver)
    try:
        return await p.run()
    finally:
        await p.close()


def at(port: int, query: str, more: str = "", host: str = "127.0.0.1") -> str:
    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f', server: "{server}", query: {query}{more}'


async def test_an_answer_with_its_phase_and_the_journal_keeps_server_and_ttls():
    clock, capture = FakeClock(), Capture(body_bytes=4096, up_every=60)
    async with dns_server() as (port, seen):
        t = dns_target(at(port, "api.test", ', expect_answers: ["^192\\\\.0\\\\.2\\\\.1[01]$"], min_answers: 2'))
        p = make_probe(t, clock=clock, capture=capture)
        first, second = await p.run(), await p.run()  # the same minute: only the first up result is kept
    assert (first.outcome, first.error_kind) == ("up", "")
    assert first.phases[0] > 0 and first.duration_s == first.phases[0] and first.latency_counted
    assert first.detail.address == f"127.0.0.1:{port}"
    assert sorted(first.detail.body.decode().splitlines()) == ["api.test. 300 IN A 192.0.2.10",
                                                              "api.test. 300 IN A 192.0.2.11"]
    assert second.outcome == "up" and second.detail is None
    assert seen == {"udp": 2}
    assert t.address == f"dns://127.0.0.1:{port}/api.test?type=A"


async def test_a_cname_chain_counts_the_records_of_the_type_asked():
    async with dns_server() as (port, _):
        r = await probe(dns_target(at(port, "www.test", ', expect_answers: ["^192\\\\.0\\\\.2\\\\.10$"]')),
                        capture=Capture(body_bytes=4096))
    assert r.outcome == "up", r.error
    assert r.detail.body.decode().splitlines() == ["www.test. 60 IN CNAME api.test.", "api.test. 300 IN A 192.0.2.10"]


async def test_a_server_that_does_not_answer_is_dns_down_counted_as_slow():
    async with dns_server() as (port, seen):
        r = await probe(dns_target(at(port, "silent.test"), timeout="300ms"), capture=Capture(body_bytes=100))
    assert (r.outcome, r.error_kind) == ("down", "dns")
    assert f"no answer from 127.0.0.1:{port} within 0.3s" in r.error
    assert r.latency_counted and r.duration_s >= 0.3 and seen == {"udp": 1}
    assert r.detail.address == f"127.0.0.1:{port}" and r.detail.body == b""


async def test_nxdomain_is_down_unless_expected_and_the_journal_keeps_the_soa():
    async with dns_server() as (port, _):
        down = await probe(dns_target(at(port, "gone.test")))
        absent = await probe(dns_target(at(port, "gone.test", ", expect_rcode: [NXDOMAIN]")),
                             capture=Capture(body_bytes=4096))
        present = await probe(dns_target(at(port, "api.test", ", expect_rcode: [NXDOMAIN]")))
    assert (down.outcome, down.error_kind) == ("down", "dns") and down.latency_counted
    assert "NXDOMAIN from 127.0.0.1" in down.error and "expected NOERROR" in down.error
    assert absent.outcome == "up"
    assert absent.detail.body.decode() == f"test. 300 IN SOA {SOA}\n"
    assert (present.outcome, present.error_kind) == ("down", "dns") and "NOERROR from" in present.error


async def test_wrong_records_and_too_few_records_are_assertions():
    async with dns_server() as (port, _):
        wrong = await probe(dns_target(at(port, "wrong.test", ', expect_answers: ["^192\\\\.0\\\\.2\\\\."]')))
        nodata = await probe(dns_target(at(port, "api.test", ", record: AAAA")))
        nodata_ok = await probe(dns_target(at(port, "api.test", ", record: AAAA, min_answers: 0")))
        few = await probe(dns_target(at(port, "api.test", ", min_answers: 3")))
    assert (wrong.outcome, wrong.error_kind) == ("down", "assertion") and wrong.latency_counted
    assert "matches /^192\\.0\\.2\\./" in wrong.error and "got: 10.9.9.9" in wrong.error
    assert (nodata.error_kind, nodata_ok.outcome) == ("assertion", "up")
    assert "0 AAAA record(s) for api.test., at least 1 expected" in nodata.error
    assert few.error_kind == "assertion" and "2 A record(s)" in few.error


async def test_servfail_is_dns_down():
    async with dns_server() as (port, _):
        r = await probe(dns_target(at(port, "broken.test")))
    assert (r.outcome, r.error_kind) == ("down", "dns") and "SERVFAIL" in r.error and r.latency_counted


async def test_a_truncated_udp_answer_is_asked_again_over_tcp_and_tcp_alone_when_configured():
    async with dns_server() as (port, seen):
        r = await probe(dns_target(at(port, "big.test", ", record: TXT, min_answers: 20")),
                        capture=Capture(body_bytes=100_000))
        assert seen == {"udp": 1, "tcp": 1}
        over_tcp = await probe(dns_target(at(port, "api.test", ", transport: tcp")))
        assert seen == {"udp": 1, "tcp": 2}
    assert r.outcome == "up", r.error
    assert len(r.detail.body.decode().splitlines()) == 20 and "big.test. 120 IN TXT" in r.detail.body.decode()
    assert over_tcp.outcome == "up"


async def test_a_closed_port_is_refused_over_udp_and_tcp():
    port = closed_port()
    udp = await probe(dns_target(at(port, "api.test")))
    tcp = await probe(dns_target(at(port, "api.test", ", transport: tcp")))
    assert (udp.outcome, udp.error_kind) == ("down", "connect_refused") and not udp.latency_counted
    assert (tcp.outcome, tcp.error_kind) == ("down", "connect_refused") and not tcp.latency_counted


async def test_a_garbled_answer_is_dns_down_and_a_tcp_connection_closed_before_the_answer_a_reset():
    async with dns_server() as (port, _):
        garbled = await probe(dns_target(at(port, "garbled.test")))
        hangup = await probe(dns_target(at(port, "hangup.test", ", transport: tcp")))
    assert (garbled.outcome, garbled.error_kind) == ("down", "dns") and not garbled.latency_counted
    assert (hangup.outcome, hangup.error_kind) == ("down", "reset") and not hangup.latency_counted


def test_on_uvloop_an_answer_and_a_closed_port_refused():
    """The agent runs on uvloop when it is installed: its datagram endpoint reports the ICMP answer too."""
    uvloop = pytest.importorskip("uvloop")

    async def both():
        async with dns_server() as (port, _):
            up = await probe(dns_target(at(port, "api.test")))
        return up, await probe(dns_target(at(closed_port(), "api.test")))

    with asyncio.Runner(loop_factory=uvloop.Loop) as runner:
        up, refused = runner.run(both())
    assert (up.outcome, refused.outcome, refused.error_kind) == ("up", "down", "connect_refused")


@pytest.mark.skipif(not ipv6_loopback(), reason="no ::1 on this machine")
async def test_a_server_on_ipv6_loopback():
    async with dns_server("::1") as (port, _):
        t = dns_target(at(port, "api.test", host="::1"))
        r = await probe(t, capture=Capture(body_bytes=100))
    assert r.outcome == "up", r.error
    assert r.detail.address == f"[::1]:{port}" and t.address == f"dns://[::1]:{port}/api.test?type=A"


def _resolver(port: int) -> dns.asyncresolver.Resolver:
    res = dns.asyncresolver.Resolver(configure=False)
    res.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", port)]
    return res


async def test_the_system_resolver_path_answers_and_fails_the_same_ways():
    async with dns_server() as (port, seen):
        res = _resolver(port)
        up = await probe(dns_target(", query: api.test"), resolver=res, capture=Capture(body_bytes=4096))
        absent = await probe(dns_target(", query: gone.test, expect_rcode: [NXDOMAIN]"), resolver=res)
        down = await probe(dns_target(", query: gone.test"), resolver=res)
        servfail = await probe(dns_target(", query: broken.test"), resolver=res)
        big = await probe(dns_target(", query: big.test, record: TXT"), resolver=res)
        silent = await probe(dns_target(", query: silent.test", timeout="300ms"), resolver=res)
    assert up.outcome == "up" and up.detail.address == f"127.0.0.1:{port}"
    assert "api.test. 300 IN A 192.0.2.10" in up.detail.body.decode()
    assert absent.outcome == "up"
    assert (down.error_kind, servfail.error_kind) == ("dns", "dns") and "SERVFAIL" in servfail.error
    assert big.outcome == "up" and seen["tcp"] == 1  # truncated, asked again over tcp
    assert (silent.error_kind, silent.latency_counted) == ("dns", True)
    assert dns_target(", query: api.test").address == "dns:api.test?type=A"


def test_the_system_resolver_is_read_again_when_resolv_conf_changes(tmp_path, monkeypatch):
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.53\n")
    monkeypatch.setattr(dns_probe, "RESOLV_CONF", str(conf))
    p = make_probe(dns_target(", query: api.test"), clock=SystemClock())
    first = p._system()
    assert p._system() is first and first.nameservers == ["192.0.2.53"]
    conf.write_text("nameserver 198.51.100.53\n")
    os.utime(conf, ns=(0, os.stat(conf).st_mtime_ns + 10**9))
    assert p._system().nameservers == ["198.51.100.53"]


def test_config_errors_are_located():
    with pytest.raises(ConfigError) as err:
        parse_config("targets:\n  - name: d\n    service: api\n    type: dns\n    query: api.example.com\n"
                     "    record: AXFR\n    server: dns.example.com\n    transport: quic\n"
                     "  - name: e\n    service: api\n    type: dns\n    query: gone.example.com\n"
                     "    expect_rcode: [NXDOMAIN]\n    expect_answers: ['^1']\n"
                     "  - {name: f, service: api, type: dns, query: 'a..b', server: '[192.0.2.1]:53'}\n"
                     "  - {name: g, service: api, type: dns, server: '192.0.2.1:70000'}\n")
    got = [f"{i.line}: {i.path}: {i.message}" for i in err.value.issues]
    assert got[0].startswith("6: targets[0].record: must be one of A, AAAA, CNAME")
    assert got[1] == ("7: targets[0].server: must be an IP address with an optional port, such as 192.0.2.53, "
                      "192.0.2.53:5353 or [2001:db8::53]:5353, got 'dns.example.com'")
    assert got[2].startswith("8: targets[0].transport: must be one of udp, tcp")
    assert got[3].startswith("14: targets[1].expect_answers: checks the records of a NOERROR answer")
    assert got[4].startswith("15: targets[2].query: is not a valid DNS name (")
    assert got[5].startswith("15: targets[2].server: must be an IP address")
    assert got[6] == "16: targets[3].query: is required"
    assert got[7].startswith("16: targets[3].server: must be an IP address")
    assert len(got) == 8


async def test_a_dns_failure_while_the_control_checks_fail_is_inconclusive():
    """The pipeline's relabelling holds for this type as for every other: the same SERVFAIL is the vendor's
    while the control check (the local resolver answering) is up, the agent's network's once it fails."""
    clock, failing = FakeClock(), set()
    async with dns_server(failing=failing) as (port, _):
        cfg = parse_config(f"targets: [{{name: api-dns, service: api, type: dns{at(port, 'broken.test')}}}]\n"
                           f"controls: [{{name: resolver, type: dns, interval: 5s, timeout: 1s"
                           f"{at(port, 'ctl.test')}}}]\n")
        seen: list = []
        pipe = Pipeline(Calendar(cfg.contract), cfg.controls, [lambda r, masked: seen.append(r)])
        pipe(await probe(cfg.controls[0], clock))
        pipe(await probe(cfg.targets[0], clock))
        await clock.advance(60)
        failing.add("ctl.test.")
        pipe(await probe(cfg.controls[0], clock))
        pipe(await probe(cfg.targets[0], clock))
    assert [(r.target, r.outcome, r.error_kind) for r in seen] == [
        ("resolver", "up", ""), ("api-dns", "down", "dns"),
        ("resolver", "down", "dns"), ("api-dns", "inconclusive", "agent_network")]
    assert "control checks failing" in seen[3].error and "SERVFAIL" in seen[3].error
    assert seen[1].latency_counted and not seen[3].latency_counted
