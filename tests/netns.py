"""A small routed network in namespaces of this machine, for tests that need hops between the agent and a
target: client -- r1 -- r2 -- server, each link a veth pair, 10.77.x.0/24 addresses that exist only inside
the namespaces made here (and are removed with them).

    client 10.77.1.2 -> r1 10.77.1.1 | 10.77.2.1 -> r2 10.77.2.2 | 10.77.3.1 -> server 10.77.3.2

From the client, r1 is hop 1, r2 hop 2 and the server hop 3. Needs root (or CAP_NET_ADMIN and
CAP_SYS_ADMIN) and iproute2; `unavailable()` says why not, for a skip."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

SERVER, R1, R2 = "10.77.3.2", "10.77.1.1", "10.77.2.2"
_LINKS = (("client", "10.77.1.2", "r1", "10.77.1.1"), ("r1", "10.77.2.1", "r2", "10.77.2.2"),
          ("r2", "10.77.3.1", "server", "10.77.3.2"))
_ROUTES = {"client": "10.77.1.1", "r1": None, "r2": None, "server": "10.77.3.1"}
_R1_ROUTES = (("10.77.3.0/24", "10.77.2.2"),)
_R2_ROUTES = (("10.77.1.0/24", "10.77.2.1"),)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


def unavailable() -> str:
    """Why namespaces cannot be made here ("" when they can)."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"slap-probe-{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        return f"cannot make a network namespace here: {done.stderr.strip() or done.returncode} (needs root)"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=20)
    return ""


@dataclass
class Topology:
    prefix: str

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def exec(self, name: str, *argv: str) -> list[str]:
        """The command line that runs `argv` inside namespace `name`."""
        return ["ip", "netns", "exec", self.ns(name), *argv]

    def build(self) -> "Topology":
        for name in _ROUTES:
            _run("ip", "netns", "add", self.ns(name))
            _run(*self.exec(name, "ip", "link", "set", "lo", "up"))
        for i, (a, a_ip, b, b_ip) in enumerate(_LINKS):
            va, vb = f"{self.prefix[-6:]}{i}a", f"{self.prefix[-6:]}{i}b"
            _run("ip", "link", "add", va, "netns", self.ns(a), "type", "veth", "peer", "name", vb, "netns", self.ns(b))
            for ns, dev, ip in ((a, va, a_ip), (b, vb, b_ip)):
                _run(*self.exec(ns, "ip", "addr", "add", f"{ip}/24", "dev", dev))
                _run(*self.exec(ns, "ip", "link", "set", dev, "up"))
        for router in ("r1", "r2"):
            _run(*self.exec(router, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
        for name, gw in _ROUTES.items():
            if gw:
                _run(*self.exec(name, "ip", "route", "add", "default", "via", gw))
        for net, gw in _R1_ROUTES:
            _run(*self.exec("r1", "ip", "route", "add", net, "via", gw))
        for net, gw in _R2_ROUTES:
            _run(*self.exec("r2", "ip", "route", "add", net, "via", gw))
        return self

    def break_after_hop_2(self) -> None:
        """r2 loses its link towards the server: its packets there go nowhere, and it says so."""
        _run(*self.exec("r2", "ip", "link", "set", f"{self.prefix[-6:]}2a", "down"))

    def server_link(self, up: bool) -> None:
        """The server's end of its link down (or up again): r2 still routes there, and hears nothing back."""
        _run(*self.exec("server", "ip", "link", "set", f"{self.prefix[-6:]}2b", "up" if up else "down"))
        if up:
            _run(*self.exec("server", "ip", "route", "replace", "default", "via", "10.77.3.1"))

    def remove(self) -> None:
        for name in _ROUTES:
            subprocess.run(["ip", "netns", "del", self.ns(name)], capture_output=True, timeout=20)


def topology() -> Topology:
    return Topology(f"slap{os.getpid() % 1000000:06d}").build()
