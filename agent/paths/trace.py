"""One traceroute, the way Linux's `traceroute` does it without privileges: UDP datagrams to a closed
port, one socket per hop count (TTL), the routers' ICMP answers read from each socket's error queue
(IP_RECVERR). No raw socket, so no capability: the agent's sandbox stays as it is.

Hop counts are sent one after another, the next as soon as the one before answered (or PACE passed), and
the sending stops at the answer that ends the path: a router that cannot go on gets one datagram of the
trace, not one for every hop count beyond it. Routers answer a few such datagrams at once and then about
one a second; a trace that spent a router's allowance would make it look silent to itself and to the
traces of other targets through it, and a silent hop reads as a path that stopped before it. Hops still
silent are asked again later in the `wait`, which bounds the whole trace whatever the path's length. Blocking: it runs in a worker
thread, never on the event loop."""
from __future__ import annotations

import ipaddress
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable

IP_RECVERR, IPV6_RECVERR = 11, 25  # linux/in.h, linux/in6.h: not all Pythons name them
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
ORIGIN_ICMP, ORIGIN_ICMP6 = 2, 3  # sock_extended_error.ee_origin
BASE_PORT = 33434  # traceroute's first port: one nothing listens on, by long custom
PACE = 0.05  # the longest a hop count waits for its answer before the next is sent
_EE = struct.Struct("=IBBBBII")  # struct sock_extended_error, then the offender's sockaddr
# (v4 type, code) and (v6 type, code) -> what the answer says
_V4 = {(11, 0): "time_exceeded", (3, 3): "port_unreachable", (3, 0): "net_unreachable", (3, 1): "host_unreachable",
       (3, 2): "protocol_unreachable", (3, 9): "prohibited", (3, 10): "prohibited", (3, 13): "prohibited"}
_V6 = {(3, 0): "time_exceeded", (1, 4): "port_unreachable", (1, 0): "net_unreachable", (1, 3): "host_unreachable",
       (1, 1): "prohibited"}


@dataclass
class Hop:
    hop: int
    address: str | None = None  # the first address that answered for this hop count
    reply: str = ""  # time_exceeded, port_unreachable, ...; "" for a hop that stayed silent
    rtt_ms: list[float] = field(default_factory=list)


def trace(address: str, *, max_hops: int = 30, wait: float = 3.0, queries: int = 3,
          clock: Any = time.monotonic) -> dict[str, Any]:
    """The path to `address` (an IP literal): its hops, whether the destination answered, where it stopped."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped:  # an IPv4 peer as an IPv6 socket names it: its path is the IPv4 one
        ip = ip.ipv4_mapped
        address = str(ip)
    v6 = ip.version == 6
    dest = str(ip).split("%", 1)[0]  # how the destination's answer names it: a scope id is no part of it
    hops = [Hop(n) for n in range(1, max_hops + 1)]
    socks: list[socket.socket] = []
    started = clock()
    try:
        socks.extend(_socket(v6, h.hop) for h in hops)
        sent: dict[int, list[float]] = {}
        for h in hops:  # one hop count after another, the next sent once this one answered (or PACE passed)
            sent[h.hop] = [_send(socks[h.hop - 1], address, h.hop, v6, clock)]
            _collect(socks, hops, sent, v6, min(clock() + PACE, started + wait), clock,
                     lambda h=h: bool(h.reply) or _ended(hops))
            if _ended(hops) or clock() >= started + wait:
                break
        for q in range(1, queries):  # again, to the hops still silent before where the path ended
            _collect(socks, hops, sent, v6, started + wait * q / (queries + 1), clock, lambda: _complete(hops))
            for h in _silent(hops):
                sent.setdefault(h.hop, []).append(_send(socks[h.hop - 1], address, h.hop, v6, clock))
        _collect(socks, hops, sent, v6, started + wait, clock, lambda: _complete(hops))
    except OSError as exc:
        return _result(address, dest, hops, clock() - started, error=f"{type(exc).__name__}: {exc.strerror or exc}")
    finally:
        for s in socks:
            s.close()
    return _result(address, dest, hops, clock() - started)


def _socket(v6: bool, ttl: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        if v6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    except OSError:
        s.close()
        raise
    return s


def _send(s: socket.socket, address: str, ttl: int, v6: bool, clock: Any) -> float:
    at = clock()
    try:
        s.sendto(b"sla-agent path", (address, BASE_PORT + ttl - 1))
    except OSError:
        pass  # an error the kernel gives at once (no route) is queued on the socket too: read with the rest
    return at


def _collect(socks: list[socket.socket], hops: list[Hop], sent: dict[int, list[float]], v6: bool,
             deadline: float, clock: Any, done: Callable[[], bool]) -> None:
    """Reads the error queues until `deadline`, or until `done()`."""
    poller = select.poll()
    by_fd = {s.fileno(): (s, h) for s, h in zip(socks, hops)}
    for fd in by_fd:
        poller.register(fd, select.POLLERR)
    while (left := deadline - clock()) > 0 and not done():
        for fd, _ in poller.poll(max(1, int(left * 1000))):
            s, h = by_fd[fd]
            while (answer := _read(s, v6)) is not None:
                _note(h, answer, sent.get(h.hop, []), clock())


def _read(s: socket.socket, v6: bool) -> tuple[str, str] | None:
    """One answer of the socket's error queue: (what it says, who said it); None once the queue is empty."""
    try:
        _, ancdata, _, _ = s.recvmsg(512, 1024, MSG_ERRQUEUE)
    except (BlockingIOError, InterruptedError):
        return None
    for level, kind, data in ancdata:
        if (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
            _errno, origin, icmp_type, code, _pad, _info, _data = _EE.unpack_from(data)
            if origin not in (ORIGIN_ICMP, ORIGIN_ICMP6):
                return "local_error", ""
            table = _V6 if origin == ORIGIN_ICMP6 else _V4
            return table.get((icmp_type, code), f"icmp_{icmp_type}_{code}"), _offender(data[_EE.size:], v6)
    return "", ""


def _offender(raw: bytes, v6: bool) -> str:
    if v6 and len(raw) >= 24:
        return str(ipaddress.IPv6Address(raw[8:24]))
    if len(raw) >= 8:
        return str(ipaddress.IPv4Address(raw[4:8]))
    return ""


def _note(h: Hop, answer: tuple[str, str], sent: list[float], now: float) -> None:
    reply, who = answer
    if not reply:
        return
    if h.address is None:
        h.address, h.reply = who or None, reply
    if len(h.rtt_ms) < len(sent):
        h.rtt_ms.append(round((now - sent[len(h.rtt_ms)]) * 1000, 3))


def _ended(hops: list[Hop]) -> bool:
    """An answer that ends the path came: the destination's, or a router's that it cannot go on."""
    return any(h.reply and h.reply != "time_exceeded" for h in hops)


def _silent(hops: list[Hop]) -> list[Hop]:
    """The hops without an answer before the one that ended the path (or two past the last that answered,
    when none did): asked again, a lost packet or a router's spent allowance of answers is not a silent hop."""
    end = next((h.hop for h in hops if h.reply and h.reply != "time_exceeded"), None)
    if end is None:
        end = max((h.hop for h in hops if h.reply), default=0) + 3
    return [h for h in hops if not h.reply and h.hop < end]


def _complete(hops: list[Hop]) -> bool:
    """Every hop before the first that ended the path has answered: nothing more to wait for."""
    for h in hops:
        if not h.reply:
            return False
        if h.reply != "time_exceeded":
            return True
    return True


def _result(address: str, dest: str, hops: list[Hop], spent: float, error: str = "") -> dict[str, Any]:
    end = next((i for i, h in enumerate(hops) if h.reply and h.reply != "time_exceeded"), None)
    shown = hops[:end + 1] if end is not None else hops[:_last_answer(hops) + 1]
    reached = end is not None and hops[end].address == dest
    last = max((h.hop for h in shown if h.reply), default=0)
    out: dict[str, Any] = {
        "method": "udp", "address": address, "reached": reached, "duration_s": round(spent, 3),
        "hops": [{"hop": h.hop, "address": h.address, "reply": h.reply or None, "rtt_ms": h.rtt_ms} for h in shown],
        "stopped_at": None if reached else last}
    if error:
        out["error"] = error
    return out


def _last_answer(hops: list[Hop]) -> int:
    """The index of the last hop that answered (-1: none), and one silent hop after it to show the silence."""
    answered = [i for i, h in enumerate(hops) if h.reply]
    return min(len(hops) - 1, answered[-1] + 1) if answered else min(len(hops) - 1, 0)
