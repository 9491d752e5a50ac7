"""`sla-agent demo`: the simulator and the agent against it, with a live summary."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import importlib.util
import signal
import sys
import time
from collections import deque
from pathlib import Path

import yaml

from ..app import Agent
from ..calendar import Calendar
from ..daemon import tune_gc
from ..config import Config, parse_config
from ..probes.browser.spec import find_chromium
from ..report.archive import Archive
from . import SimSettings, Simulator
from .hints import SIM_PORT, STATE_DIR, config_file, demo_text, packaged_config, pip_browser, program, shown


class _Window:
    """Per target: the last minute of results, for the live summary."""

    def __init__(self) -> None:
        self.items: deque[tuple[float, float, bool]] = deque()
        self.total = 0
        self.up = 0
        self.minutes: dict[int, list[int]] = {}  # epoch minute -> [probes, down], the last few minutes

    def add(self, at: float, duration: float, up: bool) -> None:
        self.items.append((at, duration, up))
        self.total += 1
        self.up += up
        counts = self.minutes.setdefault(int(at // 60), [0, 0])
        counts[0] += 1
        counts[1] += not up
        for m in [m for m in self.minutes if m < at // 60 - 5]:
            del self.minutes[m]

    def closed_with_failures(self, now: float) -> list[tuple[int, int, int]]:
        """(minute, probes, down) of the closed minutes that had down probes, once each."""
        out = [(m, n, d) for m, (n, d) in sorted(self.minutes.items()) if m < now // 60 and d]
        for m, _, _ in out:
            self.minutes[m][1] = 0
        return out

    def line(self, now: float) -> tuple[int, float | None, float | None, float | None]:
        while self.items and self.items[0][0] < now - 60:
            self.items.popleft()
        if not self.items:
            return 0, None, None, None
        ups = sum(1 for _, _, u in self.items if u)
        d = sorted(x[1] for x in self.items)
        p = lambda q: d[min(len(d) - 1, int(q * len(d)))]  # noqa: E731
        return len(self.items), ups / len(self.items), p(0.5), p(0.99)


def _fmt_ms(x: float | None) -> str:
    return "   -  " if x is None else f"{x * 1000:6.0f}"


async def _start_sim(args: argparse.Namespace) -> tuple[Simulator, int]:
    sim = Simulator(_settings(args))
    try:
        return sim, await sim.start("127.0.0.1", SIM_PORT)
    except OSError:
        port = await sim.start("127.0.0.1", 0)
        print(f"port {SIM_PORT} is taken (another demo or `sla-agent simulate`?): the simulator listens on {port}")
        return sim, port


async def run_simulator(args: argparse.Namespace) -> int:
    """`sla-agent simulate`: the simulator alone, until a signal or the duration."""
    sim = Simulator(_settings(args))
    try:
        port = await sim.start("127.0.0.1", args.port)
    except OSError as exc:
        print(f"sla-agent: cannot listen on 127.0.0.1:{args.port}: {exc.strerror} (a demo running?)", file=sys.stderr)
        return 1
    cfg_file = config_file(demo_text(port), Path(STATE_DIR), f"demo-{port}.yaml")
    print(f"simulated CRM web UI and API on http://127.0.0.1:{port}/ ; in another shell: "
          f"{program()} run --config {shown(cfg_file)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.duration)
    except TimeoutError:
        pass
    finally:
        await sim.stop()
    return 0


def _settings(args: argparse.Namespace) -> SimSettings:
    return SimSettings(**{k: v for k, v in {
        "error_rate": args.error_rate, "outage_every": args.outage_every, "outage_seconds": args.outage_seconds,
        "slow_share": args.slow_share, "seed": args.seed}.items() if v is not None})


def _config(port: int, out) -> tuple[str, Config]:
    """The packaged demo config (its text and its reading), pointed at the simulator's port; without its
    browser check when this machine cannot run one."""
    text = demo_text(port)
    missing = browser_missing()
    if missing:
        print(f"browser check left out: {missing}", file=out)
        doc = yaml.safe_load(text)
        doc["targets"] = [t for t in doc["targets"] if t.get("type") != "browser"]
        text = yaml.safe_dump(doc, sort_keys=False)
    path = packaged_config()
    return text, parse_config(text, str(path), base_dir=path.parent)


def browser_missing() -> str:
    """Why this machine cannot run a browser check, or "" when it can."""
    if find_chromium() is None:
        return "no Chromium found (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return f"the playwright package is not installed ({pip_browser()})"
    return ""


async def _start_agent(cfg: Config, state_dir: str, listen) -> Agent:
    agent = Agent(cfg, state_dir=state_dir)
    agent.listeners.append(listen)
    try:
        await agent.start()
    except OSError:  # the usual port is taken: any free one
        await agent.abandon()
        print(f"{cfg.agent.listen} is taken (another demo or agent?): the agent listens on a free port; its "
              "address is printed below")
        agent = Agent(dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, listen="127.0.0.1:0")),
                      state_dir=state_dir)
        agent.listeners.append(listen)
        await agent.start()
    tune_gc()
    return agent


def _banner(out, agent: Agent, port: int, cfg_file: Path, state_dir: str, duration: float | None) -> None:
    url = agent.server.url if agent.server else "?"
    month = dt.datetime.now(agent.cal.tz).strftime("%Y-%m")
    print(f"sla-agent demo: simulated CRM web UI and API on http://127.0.0.1:{port}/", file=out)
    print(f"  status page  {url}/", file=out)
    print(f"  metrics      {url}/metrics", file=out)
    print(f"  status API   {url}/api/v1/status", file=out)
    print(f"  report       {url}/report?month={month}   (JSON: {url}/api/v1/report?month={month})", file=out)
    print(f"  reports      {url}/reports   (closed months: the simulated one, once archived)", file=out)
    print(f"  ledger       {Path(state_dir).resolve()}/ledger.db", file=out)
    print(f"  afterwards   {program()} report --config {shown(cfg_file)} --state-dir {shown(state_dir)} "
          f"--month {month}", file=out)
    print("Ctrl-C stops." if duration is None else f"Stops by itself after {duration:g}s.", file=out)
    out.flush()


def _summary(out, agent: Agent, windows: dict[str, _Window]) -> None:
    now = time.time()
    clock = time.strftime("%H:%M:%SZ", time.gmtime())  # the log's clock (UTC), so the two read together
    print(f"\n{clock}  target         probes   up %   last minute: n    up %  p50 ms  p99 ms", file=out)
    for name, w in windows.items():
        n, upr, p50, p99 = w.line(now)
        total_up = 100.0 * w.up / w.total if w.total else 0.0
        print(f"          {name:<14} {w.total:6d} {total_up:6.1f}   {n:12d} "
              f"{'   -  ' if upr is None else f'{upr * 100:6.1f}'}  {_fmt_ms(p50)}  {_fmt_ms(p99)}", file=out)
    for name, w in windows.items():
        for line in _explain(name, w.closed_with_failures(now), agent):
            print(line, file=out)
    out.flush()


def _explain(name: str, minutes: list[tuple[int, int, int]], agent: Agent) -> list[str]:
    """Why a minute with failures does or does not count down (the contract's slice rule)."""
    ratio = agent.cfg.contract.slice_down_ratio
    out = []
    for m, n, d in minutes:
        at = dt.datetime.fromtimestamp(m * 60, agent.cal.tz).isoformat(timespec="minutes")[11:]
        if d >= ratio * n:
            out.append(f"          {name}: minute {at} counts DOWN ({d} of {n} probes failed, at least "
                       f"{ratio * 100:g} %)")
        else:
            out.append(f"          {name}: degraded: {d} of {n} probes failed in minute {at}, below the "
                       f"{ratio * 100:g} % rule: the minute counts up")
    return out


async def _live(out, agent: Agent, windows: dict[str, _Window], args: argparse.Namespace) -> None:
    """The live summary every few seconds, until the duration is over or a signal stops the agent."""
    loop = asyncio.get_running_loop()
    deadline = None if args.duration is None else loop.time() + args.duration
    while True:
        wait = args.summary_every if deadline is None else min(args.summary_every, deadline - loop.time())
        if wait <= 0:
            return
        try:
            await asyncio.wait_for(agent.run_until_stopped(), wait)
            return
        except TimeoutError:
            _summary(out, agent, windows)


async def run_demo(args: argparse.Namespace) -> int:
    sim, port = await _start_sim(args)
    text, cfg = _config(port, sys.stdout)
    state_dir = args.state_dir or STATE_DIR
    cfg_file = config_file(text, Path(state_dir), "demo.yaml")  # the config `report` needs is the one run here
    history = await asyncio.to_thread(_previous_month, cfg, state_dir, sys.stdout)
    windows: dict[str, _Window] = {t.name: _Window() for t in cfg.targets}

    def listen(r) -> None:
        w = windows.get(r.target)
        if w is not None and r.outcome != "inconclusive":
            w.add(time.time(), r.duration_s, r.outcome == "up")

    agent = await _start_agent(cfg, state_dir, listen)
    out = sys.stdout
    print(f"  the simulated month's report, served live: {agent.server.url}/report?month={history}", file=out)
    _banner(out, agent, port, cfg_file, state_dir, args.duration)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, agent.request_stop)
    try:
        await _live(out, agent, windows, args)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        snap = await agent.evaluate_now()
        await agent.closer.check()  # the simulated month closed before the end, however short the run
        url = agent.server.url
        await agent.stop()
        await sim.stop()
    print(f"\nthe month so far ({dt.datetime.fromtimestamp(snap.now, agent.cal.tz):%Y-%m}):", file=out)
    for svc in cfg.services:
        print("\n".join(_figures(svc, snap, agent.cal, history)), file=out)
    print(f"\nledger kept in {Path(state_dir).resolve()}", file=out)
    _closed(out, Archive(state_dir), history, url)
    return 0


def _closed(out, archive: Archive, month: str, url: str) -> None:
    """The demo's last words: where the closed simulated month lies, as the agent archived it."""
    rev = archive.latest(month)
    if rev is None:
        print(f"{month} was not closed: the log above says why", file=out)
        return
    pdf = rev.path / "report.pdf"
    print(f"\nThe simulated month {month}, closed by the agent as it closes every month: {rev.path.resolve()}\n"
          f"  served at    {url}/reports while the demo ran\n"
          + (f"  its PDF      {pdf.resolve()}" if pdf.is_file() else
             f"  no PDF: {rev.meta().get('pdf', 'no renderer')}; its HTML  {(rev.path / 'report.html').resolve()}"),
          file=out)


def _previous_month(cfg: Config, state_dir: str, out) -> str:
    """The simulated previous month (written once into the demo's ledger), its verdict table and report."""
    from ..report import build_report, render
    from ..report.formats.text import rows_table
    from .history import write_history

    now = time.time()
    month = write_history(cfg, state_dir, now)
    doc = build_report(cfg, state_dir, month, now)
    html = Path(state_dir) / f"report-{month}.html"
    html.write_text(render(doc, "html"), encoding="utf-8")
    print(f"\nA SIMULATED previous month ({month}), written into the demo's ledger to show a month's verdict "
          f"against the contract:\n", file=out)
    print(rows_table(doc), file=out)
    print(f"  its report   {html.resolve()}", file=out)
    out.flush()
    return month


def _figures(svc: str, snap, cal: Calendar, simulated: str) -> list[str]:
    """The service's month so far, then its latency over the current 7-day period, which is named: near a
    month's start that period holds days of the month before, in the demo the simulated one."""
    a = snap.of("availability", svc).get("month")
    line = f"  {svc:<5} availability " + ("-" if a is None or a.ratio is None else f"{a.ratio * 100:.3f} %")
    if a is not None:
        line += f" ({a.verdict}, coverage " + ("-" if a.coverage is None else f"{a.coverage * 100:.1f} %") + ")"
    out = [line]
    lat = snap.of("latency", svc).get("period")
    if lat is not None:
        ps, pe = cal.period_bounds(snap.now)
        first, last = cal.local_date(ps), cal.local_date(pe - 1)
        part = f", its days in {simulated} simulated" if f"{first:%Y-%m}" == simulated else ""
        out.append(f"  {svc:<5} latency in the 7-day period {first} to {last}{part}: " + (", ".join(
            f"{f * 100:.2f} % < {t:g}s" for t, f in zip(lat.thresholds, lat.fractions()) if f is not None)
            if lat.count else "no request measured yet"))
    return out
