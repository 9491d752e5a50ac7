"""Which ICMP sockets this process may open, decided once when a probe is made: the kernel's unprivileged
echo sockets (SOCK_DGRAM) when net.ipv4.ping_group_range holds one of the process's groups, raw sockets
with CAP_NET_RAW, or neither (every probe is then inconclusive, saying how to allow one)."""
from __future__ import annotations

import os
import socket

DATAGRAM, RAW = "datagram", "raw"
CAP_NET_RAW = 13
RANGE_FILE = "/proc/sys/net/ipv4/ping_group_range"
NO_ACCESS = ("no ICMP socket allowed: none of the agent's groups is in net.ipv4.ping_group_range (set it, "
             "e.g. sysctl net.ipv4.ping_group_range=\"0 2147483647\") and the process lacks CAP_NET_RAW")


def in_range(text: str, groups: set[int]) -> bool:
    """The sysctl's "low high" (the kernel's default "1 0" is empty) against the process's groups."""
    try:
        low, high = (int(x) for x in text.split())
    except ValueError:
        return False
    return any(low <= g <= high for g in groups)


def has_cap(status: str, cap: int = CAP_NET_RAW) -> bool:
    """A capability among the effective ones of /proc/<pid>/status's CapEff line."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return False


def _datagram_opens() -> bool:
    """The sysctl is unreadable where /proc/sys is hidden (systemd's ProcSubset=pid): ask the kernel."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
        return True
    except OSError:
        return False


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError:
        return None


def choose() -> str | None:
    """DATAGRAM, RAW or None. The datagram socket comes first: it needs no privilege at all."""
    text = _read(RANGE_FILE)
    groups = {os.getegid(), *os.getgroups()}
    if in_range(text, groups) if text is not None else _datagram_opens():
        return DATAGRAM
    return RAW if has_cap(_read("/proc/self/status") or "") else None
