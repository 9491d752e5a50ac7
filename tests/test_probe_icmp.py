"""The `icmp` probe type: echoes to 127.0.0.1 and ::1 on a raw socket; in two network namespaces made for
the test, a host that answers, one whose echoes are dropped, one behind a router that answers
"prohibited", and one whose second echo is dropped, on raw and on unprivileged datagram sockets; the
choice of socket, the message when none is allowed, and the config's rules."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.clock import SystemClock
from agent.config import ConfigError, parse_config
from agent.probes import Capture, make_probe
from agent.probes.icmp import access

from .servers import ipv6_loopback

ROOT = Path(__file__).resolve().parent.parent
CAN_RAW = access.has_cap(Path("/proc/self/status").read_text())


def icmp_target(host: str, extra: str = "", timeout: str = "1s"):
    cfg = parse_config(f'targets: [{{name: gw, service: lan, type: icmp, host: "{host}", timeout: {timeout}{extra}}}]')
    return cfg.targets[0]


async def probe(target, how=access.RAW):
    p = make_probe(target, clock=SystemClock(), capture=Capture(body_bytes=1024), access=how)
    try:
        return await p.run()
    finally:
        await p.close()


@pytest.mark.skipif(not CAN_RAW, reason="raw ICMP sockets need CAP_NET_RAW")
@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=pytest.mark.skipif(
    not ipv6_loopback(), reason="no IPv6 loopback here"))])
async def test_echoes_to_the_loopback_are_up_with_their_rtt(host):
    r = await probe(icmp_target(host, ", packets: 3, spacing: 10ms"))
    assert (r.outcome, r.error_kind, r.error) == ("up", "", "")
    assert r.phases[0] > 0 and r.duration_s > r.phases[0]
    assert r.detail.address == host
    assert r.detail.body.decode().startswith("3 sent, 3 received, 0% loss, rtt min/avg/max ")
    assert not r.latency_counted  # the rtt phase carries the echoes' time, not the latency population


@pytest.mark.skipif(not CAN_RAW, reason="raw ICMP sockets need CAP_NET_RAW")
async def test_a_name_that_does_not_resolve():
    r = await probe(icmp_target("no-such-host.invalid", ", ip_family: ipv4"))
    assert (r.outcome, r.error_kind) == ("down", "dns")


async def test_no_icmp_socket_allowed_is_inconclusive_and_says_how_to_allow_one():
    r = await probe(icmp_target("127.0.0.1"), how=None)
    assert (r.outcome, r.error_kind) == ("inconclusive", "agent_error")
    assert "net.ipv4.ping_group_range" in r.error and "CAP_NET_RAW" in r.error


def test_the_socket_choice_reads_the_range_and_the_capability():
    assert not access.in_range("1\t0\n", {0, 1000})  # the kernel's default: nobody
    assert access.in_range("0\t2147483647\n", {61234})  # systemd's default: everybody
    assert access.in_range("100 200", {5, 150}) and not access.in_range("100 200", {5, 201})
    assert not access.in_range("garbage", {0})
    assert access.has_cap("Name:\tx\nCapEff:\t0000000000002000\n")
    assert not access.has_cap("CapEff:\t000001ffffffdfff\n") and not access.has_cap("")


# -- in network namespaces -------------------------------------------------------------------------
NS = f"icmpt-{os.getpid()}"
ANSWERS, ONE_DROPPED, PROHIBITED, DROPPED = "10.231.0.2", "10.231.1.2", "192.0.2.10", "192.0.2.200"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def build_namespaces(a: str, b: str) -> None:
    """`a` probes through `b`, its router: b answers ANSWERS, drops what goes to DROPPED (blackhole) and
    answers "administratively prohibited" for PROHIBITED; b's link drops its reply to the second echo to
    ONE_DROPPED (a queue that holds nothing)."""
    ip("netns", "add", a)
    ip("netns", "add", b)
    ip("link", "add", "icmpt-va", "netns", a, "type", "veth", "peer", "name", "icmpt-vb", "netns", b)
    for ns, dev, addr in ((a, "icmpt-va", "10.231.0.1/30"), (b, "icmpt-vb", "10.231.0.2/30")):
        ip("-n", ns, "addr", "add", addr, "dev", dev)
        ip("-n", ns, "link", "set", dev, "up")
        ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", b, "addr", "add", f"{ONE_DROPPED}/32", "dev", "lo")
    ip("-n", a, "route", "add", "default", "via", "10.231.0.2")
    ip("-n", b, "route", "add", "prohibit", "192.0.2.0/25")
    ip("-n", b, "route", "add", "blackhole", "192.0.2.128/25")
    ip("netns", "exec", b, "sysctl", "-qw", "net.ipv4.ip_forward=1")  # a router sends ICMP errors
    ip("netns", "exec", b, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")  # every one of them
    ip("netns", "exec", a, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
    tc = ["tc", "-n", b]
    for cmd in (["qdisc", "add", "dev", "icmpt-vb", "root", "handle", "1:", "htb", "default", "10"],
                ["class", "add", "dev", "icmpt-vb", "parent", "1:", "classid", "1:10", "htb", "rate", "1gbit",
                 "quantum", "1514"],
                ["class", "add", "dev", "icmpt-vb", "parent", "1:", "classid", "1:30", "htb", "rate", "1gbit",
                 "quantum", "1514"],
                ["qdisc", "add", "dev", "icmpt-vb", "parent", "1:30", "pfifo", "limit", "0"],  # holds nothing
                ["filter", "add", "dev", "icmpt-vb", "parent", "1:", "protocol", "ip", "u32",
                 "match", "ip", "src", f"{ONE_DROPPED}/32", "match", "ip", "protocol", "1", "0xff",
                 "match", "u8", "0", "0xff", "at", "20", "match", "u16", "1", "0xffff", "at", "26", "flowid", "1:30"]):
        subprocess.run(tc + cmd, check=True, capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def in_namespace():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        pytest.skip("network namespaces need root and iproute2 (ip, tc)")
    a, b = f"{NS}-a", f"{NS}-b"
    try:
        build_namespaces(a, b)
    except (subprocess.CalledProcessError, OSError) as exc:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        pytest.skip(f"cannot build the test's network namespaces here: {exc}")

    def run(cases: list[dict], ns: str = a, sandboxed: bool = False) -> list[dict]:
        child = [sys.executable, "-m", "tests.icmp_child"]
        if sandboxed:  # as under the systemd unit: no capability (CapabilityBoundingSet=), /proc/sys hidden
            if not shutil.which("unshare") or not shutil.which("setpriv"):
                pytest.skip("unshare and setpriv (util-linux) make the sandbox")
            child = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /proc/sys && exec setpriv --bounding-set=-all '
                     '--inh-caps=-all --ambient-caps=-all --no-new-privs "$@"', "sh", *child]
        p = subprocess.run(["ip", "netns", "exec", ns, *child], cwd=ROOT,
                           input=json.dumps(cases), capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    run.b = b
    try:
        yield run
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@pytest.mark.parametrize("how", ["raw", "datagram"])
def test_answered_dropped_prohibited_and_partly_lost(in_namespace, how):
    up, dropped, prohibited, partly, too_lossy = in_namespace([
        {"host": ANSWERS, "access": how},
        {"host": DROPPED, "access": how, "extra": ", packets: 2, spacing: 50ms", "timeout": "300ms"},
        {"host": PROHIBITED, "access": how, "timeout": "5s"},
        {"host": ONE_DROPPED, "access": how, "extra": ", spacing: 50ms", "timeout": "300ms"},
        {"host": ONE_DROPPED, "access": how, "extra": ", spacing: 50ms, max_loss: 0.2", "timeout": "300ms"},
    ])
    assert (up["outcome"], up["kind"], up["address"]) == ("up", "", ANSWERS)
    assert up["rtt"] > 0 and up["line"].startswith("3 sent, 3 received, 0% loss")

    assert (dropped["outcome"], dropped["kind"], dropped["counted"]) == ("down", "connect_timeout", False)
    assert dropped["error"] == f"no echo reply from {DROPPED} to 2 requests within 0.3s"
    assert dropped["line"] == "2 sent, 0 received, 100% loss" and dropped["duration"] >= 0.3

    assert (prohibited["outcome"], prohibited["kind"]) == ("down", "connect_error"), prohibited
    assert prohibited["line"] == "3 sent, 0 received, 100% loss, 3 errors"
    assert prohibited["error"].startswith("destination unreachable")
    assert ("(code 13): Packet filtered" if how == "raw" else "No route to host") in prohibited["error"]

    assert (partly["outcome"], partly["kind"]) == ("up", ""), partly  # down only when every echo is lost
    assert partly["line"].startswith("3 sent, 2 received, 33% loss, rtt min/avg/max ")
    assert (too_lossy["outcome"], too_lossy["kind"]) == ("down", "assertion")
    assert too_lossy["error"] == "1 of 3 echoes lost (33%), above max_loss 20%"


def test_the_choice_inside_a_namespace_that_allows_datagram_sockets(in_namespace):
    (r,) = in_namespace([{"host": ANSWERS}])
    assert (r["access"], r["outcome"]) == ("datagram", "up")


def test_under_the_units_sandbox_datagram_sockets_need_no_capability(in_namespace):
    """/proc/sys hidden (ProcSubset=pid): the choice opens a datagram socket to learn it may."""
    chosen, forced_raw = in_namespace([{"host": ANSWERS}, {"host": ANSWERS, "access": "raw"}], sandboxed=True)
    assert (chosen["access"], chosen["outcome"]) == ("datagram", "up")
    assert (forced_raw["outcome"], forced_raw["kind"]) == ("inconclusive", "agent_error")


def test_no_range_and_no_capability_leaves_no_socket(in_namespace):
    """The router's namespace keeps the kernel's ping_group_range, 1 0: nobody."""
    (r,) = in_namespace([{"host": ANSWERS}], ns=in_namespace.b, sandboxed=True)
    assert (r["access"], r["outcome"], r["kind"]) == (None, "inconclusive", "agent_error")
    assert "net.ipv4.ping_group_range" in r["error"] and "CAP_NET_RAW" in r["error"]


def test_config_errors_are_located():
    with pytest.raises(ConfigError) as err:
        parse_config('targets:\n'
                     '  - {name: a, service: s, type: icmp, host: "bad host!", packets: 0}\n'
                     '  - {name: b, service: s, type: icmp, host: gw.example, packets: 21, max_loss: 1}\n'
                     '  - {name: c, service: s, type: icmp, host: gw.example, packets: 5, spacing: 1s, timeout: 4s}\n'
                     '  - {name: d, service: s, type: icmp, host: gw.example, port: 7}\n')
    got = [f"{i.line}: {i.path}: {i.message}" for i in err.value.issues]
    assert got[0].startswith("2: targets[0].host: must be a host name or an IP address")
    assert got[1] == "2: targets[0].packets: must be between 1 and 20, got 0"
    assert got[2] == "3: targets[1].packets: must be between 1 and 20, got 21"
    assert got[3].startswith("3: targets[1].max_loss: must be a share at least 0 and below 1")
    assert got[4] == ("4: targets[2].spacing: 5 packets x 1s spacing = 5s does not fit in the 4s timeout; "
                      "lower packets or spacing, or raise timeout")
    assert got[5].startswith("5: targets[3].port: unknown key; valid keys here: host, interval, ip_family")
    ok = parse_config('targets: [{name: a, service: s, type: icmp, host: "2001:db8::1", packets: 20, spacing: 250ms}]')
    assert ok.targets[0].options.packets == 20 and ok.targets[0].address == "icmp://[2001:db8::1]"
