"""The path to a failing target, kept in the failure journal beside the failure it explains.

A sink of the result pipeline. On a target's first `down` result of an episode (a minute or more after
its failure before), and then at most every `evidence.path.every` while the failures go on, the name is resolved
again and the address the probe used is traced (trace.py), in a worker thread of its own: never on the
event loop, one trace at a time, TRACE_SPACING apart. The journal gets a record of outcome
`path` at the trace's start: its `error` a one-line summary, its `address` the address traced, and a
`path.json` file (the name's answer, the hops, where the path stopped). Nothing of the request travels
with it (no URL path, header or body), and a name that is a secret of the config is masked: no secret can.

A path record is no probe result: the minute counts never count it, and the journal's agreement with
them (report/agreement.py) leaves it out."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable
from urllib.parse import urlsplit

from ..clock import Clock
from ..config.model import PathSettings
from ..ledger.journal import Record
from ..probes.addresses import is_ip
from ..probes.base import CONTROL_SERVICE, DOWN, Detail, ProbeResult, Target
from .trace import trace

log = logging.getLogger("sla_agent.agent")
PATH = "path"  # the journal records' outcome
# one trace at a time, begun this long after the one before at least: routers answer a few of its datagrams at once
# and then about one a second, and traces closer together would spend that allowance on each other (a hop silent
# for it reads as a path that went no further); a failure meanwhile is not traced, a later one is
TRACE_SPACING = 2.0
# a failure this long after the one before begins a new episode, traced at once (the report's episodes are runs of
# minutes with a failure): a target failing 1 % of the time is one long episode, traced every `every`
EPISODE_GAP = 60.0


class PathCapture:
    def __init__(self, settings: PathSettings, targets: dict[str, Target], add: Callable[[Record], None],
                 clock: Clock, redact: Callable[[str], str] = str) -> None:
        self.settings, self.targets, self.add, self.clock = settings, targets, add, clock
        self.redact = redact  # the name resolved may be a secret of the config (url: "https://${HOST}/")
        self._last: dict[str, float] = {}  # target -> the start of the failure it last traced
        self._down: dict[str, float] = {}  # target -> the start of its latest failure
        self._running: dict[str, asyncio.Task[None]] = {}
        self._next = 0.0  # the earliest a trace may begin (results' times)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="path")
        self.traced = self.busy = 0  # traces made; failures not traced for a trace under way or just made

    def apply(self, settings: PathSettings, targets: dict[str, Target]) -> None:
        """What is kept per target is kept for the targets configured only: a reload forgets the others."""
        self.settings, self.targets = settings, targets
        for kept in (self._last, self._down):
            for name in [n for n in kept if n not in targets]:
                del kept[name]

    def __call__(self, r: ProbeResult, masked: bool) -> None:
        if r.outcome != DOWN or r.service == CONTROL_SERVICE or not self.settings.enabled \
                or r.target not in self.targets:  # a result in flight at the reload that removed its target
            return
        last, before = self._last.get(r.target), self._down.get(r.target)
        self._down[r.target] = r.started_at
        new_episode = before is None or r.started_at - before >= EPISODE_GAP
        if (not new_episode and last is not None and r.started_at - last < self.settings.every) \
                or r.target in self._running:
            return
        if self._running or r.started_at < self._next:
            self.busy += 1
            return
        self._next = r.started_at + TRACE_SPACING
        target = self.targets[r.target]
        self._last[r.target] = r.started_at
        self._running[r.target] = asyncio.get_running_loop().create_task(self._trace(target, r, masked))

    async def _trace(self, target: Target, r: ProbeResult, masked: bool) -> None:
        at = self.clock.time()
        try:
            doc = await asyncio.get_running_loop().run_in_executor(
                self._pool, follow, target.address, r.detail.address if r.detail else "", r.started_at, self.settings)
            self.traced += 1
            doc["dns"] = {k: self.redact(v) if isinstance(v, str) else v for k, v in doc["dns"].items()}
            line = summary(doc)
            log.info("%s/%s: path traced: %s", r.service, r.target, line)
            self.add(Record(r.target, at, PATH, "", None, line, doc["duration_s"], None,
                            Detail(doc["address"], artifacts=(("path.json", _canonical(doc)),)), masked))
        except Exception:  # noqa: BLE001 - a trace is evidence beside the counts: its fault never stops the agent
            log.exception("%s: the path could not be traced", r.target)
        finally:
            self._running.pop(r.target, None)

    async def stop(self) -> None:
        """Traces under way are given up (a thread finishes its own within `wait`), nothing more starts."""
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)


def follow(where: str, used: str, failed_at: float, settings: PathSettings) -> dict[str, Any]:
    """In a worker thread: the name's answer now, and the path to the address the probe used (or, when
    it used none, the first the name gives)."""
    started = time.monotonic()
    host = _host(where)
    answer = resolve(host)
    address = _ip_of(used) or next(iter(answer.get("addresses", ())), "")
    doc: dict[str, Any] = {"failure_at": round(failed_at, 6), "dns": answer, "address": address}
    if address:
        doc["path"] = trace(address, max_hops=settings.max_hops, wait=settings.wait)
    else:
        doc["path"] = None
    doc["duration_s"] = round(time.monotonic() - started, 3)
    return doc


def resolve(host: str) -> dict[str, Any]:
    if not host:
        return {"name": ""}
    if is_ip(host):
        return {"name": host, "addresses": [host]}
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        return {"name": host, "error": f"{type(exc).__name__}: {exc.strerror or exc}"}
    return {"name": host, "addresses": list(dict.fromkeys(str(i[4][0]) for i in infos))}


def summary(doc: dict[str, Any]) -> str:
    """The record's one line: where the path went."""
    path, name = doc.get("path"), doc["dns"].get("name", "")
    if path is None:
        return f"not traced: {name} did not resolve ({doc['dns'].get('error', 'no address')})"
    if path.get("error"):
        return f"not traced to {path['address']}: {path['error']}"
    if path["reached"]:
        n = len(path["hops"])
        return f"reached {path['address']} in {n} hop{'s' if n > 1 else ''}"
    stop = next((h for h in path["hops"] if h["hop"] == path["stopped_at"]), None)
    if stop is None:
        return f"no hop on the way to {path['address']} answered"
    if stop["reply"] == "time_exceeded":  # silence after it: a drop, or a router that does not answer
        return f"no answer after hop {stop['hop']} ({stop['address']}); {path['address']} not reached"
    return (f"stopped at hop {stop['hop']} ({stop['address']}, which answered {stop['reply'].replace('_', ' ')}); "
            f"{path['address']} not reached")


def _host(where: str) -> str:
    """The host of what a target probes (a URL, tcp://host:port, icmp://host, dns://server/...), without user
    or port; none for dns:name (a question to the system's resolver: the resolver is what its address names)."""
    try:
        return (urlsplit(where).hostname or "") if "://" in where else ""
    except ValueError:
        return ""


def _ip_of(address: str) -> str:
    """The IP of a journal address: 192.0.2.1:443, [2001:db8::1]:443, or a bare IP."""
    host = address.rsplit(":", 1)[0].strip("[]") if address.count(":") == 1 or address.startswith("[") else address
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ""


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
