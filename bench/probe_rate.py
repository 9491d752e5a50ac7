"""Probe-rate benchmark: the real agent against a local server that holds each request 100 ms.

Runs at 200 and 1,000 probes/s (20 s each by default), a new connection per probe, phases traced, and
prints: achieved rate, agent CPU ms per probe, measurement overhead (measured - 100 ms) p50/p99 and
scheduling lag p50/p99. With --vs-blackbox it runs Prometheus blackbox_exporter (Debian package
prometheus-blackbox-exporter) on 127.0.0.1 against the same server at the same rates, side by side.

    python bench/probe_rate.py [--seconds 20] [--rates 200,1000] [--vs-blackbox] [--no-uvloop]
                               [--fail-share 0.1 --journal on,off] [--tls [--resume]] [--floor]
                               [--browser on,off] [--tsa down,none] [--path on,off]

With --fail-share the server answers 503 to that share of the requests; --journal runs the agent with the
failure journal (and its hash chain) on and off, one after the other, to compare the cost per probe.
With --browser on,off the agent also runs a browser check (type: browser, the system's Chromium, every
30 s) in one run and not in the other, alternating, to show what it does to the HTTP probes' overhead.
With --tsa down,none the agent time-stamps its chain's head (evidence.timestamping, every minute, a 5 s
timeout) with an authority that is down (it takes the connection and never answers: each attempt waits
the whole timeout, then is retried with backoff) in one run, and has no time-stamping in the other,
alternating, to show that an authority down costs the probes nothing.
With --path on,off (and --fail-share 0.01) the agent traces the path to a failing target (evidence.path,
every 5 minutes per target while it fails; to 127.0.0.1: one hop) in one run and not in the other,
alternating, to show what tracing costs the HTTP probes.
With --tls the server speaks HTTPS (TLS 1.3 only, an ECDSA P-256 certificate from a CA the bench makes),
and both the agent and blackbox_exporter verify it against that CA, a new connection (and handshake)
per probe. With --resume the agent's targets have tls.resume (and the floor resumes as well): a new
connection per probe still, its handshake resuming the session the previous one was given.
With --floor a bare aiohttp client (bench/_floor.py: the same loop type and SSLContext, a new connection
per request, no phases, results or pipeline) runs at the same rates against the same server, measured the
same way: the least Python, aiohttp and OpenSSL cost per probe, printed beside the agent (and blackbox).

Only 127.0.0.1 is used. Every load loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _floor import run_floor

HOLD = 0.100
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_pid(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(port: int, fail_share: float = 0.0, tls: tuple[Path, Path, Path] | None = None,
                 hold: float = HOLD) -> subprocess.Popen:
    extra = [str(tls[1]), str(tls[2])] if tls else []
    proc = subprocess.Popen([sys.executable, str(HERE / "_hold_server.py"), str(port), str(hold), str(fail_share),
                             *extra], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def hung_tsa() -> socket.socket:
    """A time-stamping authority that is down: it listens (the kernel takes the connection and the
    request) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


async def run_agent(rate: int, seconds: float, port: int, journal: bool = True, ca: Path | None = None,
                    browser: bool = False, tsa: int | None = None, resume: bool = False, path: bool = True) -> dict:
    import logging

    from agent.app import Agent
    from agent.config import parse_config

    logging.getLogger("sla_agent").setLevel(logging.ERROR)  # a target's every flip is logged: not the subject here
    interval = 0.2
    n = max(1, round(rate * interval))
    resuming = ", resume: true" if resume else ""
    scheme, tls = ("https", f', tls: {{ca_file: "{ca}"{resuming}}}') if ca else ("http", "")
    targets = "\n".join(
        f'  - {{name: t{i:04d}, service: api, url: "{scheme}://127.0.0.1:{port}/p{i}", interval: 200ms, timeout: 2s, '
        f'max_in_flight: 11{tls}}}' for i in range(n))
    if browser:
        targets += (f'\n  - {{name: browser, service: web, type: browser, url: "http://127.0.0.1:{port}/browser", '
                    f'interval: 30s, timeout: 10s}}')
    stamping = f', timestamping: {{tsa: ["http://127.0.0.1:{tsa}/tsr"], every: 1m, timeout: 5s}}' if tsa else ""
    cfg = parse_config(f"""
agent: {{listen: "127.0.0.1:0", rate_limit: {rate * 2}, per_host_concurrency: 10000, flush_interval: 5s}}
evidence: {{journal: {"true" if journal else "false"}{stamping}, path: {{enabled: {str(path).lower()}}}}}
targets:
{targets}
""")
    state = tempfile.mkdtemp(prefix="sla-bench-")
    from agent.store import Store

    store = Store(state, thresholds=cfg.contract.thresholds)  # a chain head to stamp from the start, in every run
    store.add_window("exclusion", 0.0, 1.0, "bench")
    store.close()
    agent = Agent(cfg, state_dir=state)
    durations: list[float] = []
    lags: list[float] = []
    outcomes: dict[str, int] = {}
    window = {"on": False}
    browser_runs: list[str] = []

    def listen(r) -> None:
        if not window["on"]:
            return
        if r.target == "browser":
            browser_runs.append(r.outcome)
            return
        outcomes[r.error_kind or r.outcome] = outcomes.get(r.error_kind or r.outcome, 0) + 1
        if r.outcome == "up" or r.error_kind == "http_status":  # an answer in HOLD seconds, kept or not
            durations.append(r.duration_s)
            tl = agent.scheduler.timelines[r.target]
            phase = (r.mono_start - agent.scheduler._epoch - tl.offset) % tl.target.interval
            lags.append(phase if phase < tl.target.interval / 2 else 0.0)

    agent.listeners.append(listen)
    await agent.start()
    from agent.daemon import tune_gc

    tune_gc()  # as the daemon does
    while agent.snapshot is None:  # the first (cold) evaluation of the SLA windows, then steady state
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # warm-up: connections, caches
    window["on"] = True
    c0, t0 = cpu_self(), time.perf_counter()
    await asyncio.sleep(seconds)
    window["on"] = False
    c1, t1 = cpu_self(), time.perf_counter()
    total = sum(outcomes.values())
    tsa_failures = sum(s.value for m in ([agent.stamping.metrics.failures] if agent.stamping.metrics else [])
                       for f in m.collect() for s in f.samples if s.name.endswith("_total"))
    traced = agent.paths.traced if agent.paths else 0
    await agent.stop()
    shutil.rmtree(state, ignore_errors=True)
    over = [d - HOLD for d in durations]
    # per answered probe: an overloaded agent's refusals (agent_overload) cost next to nothing and would
    # make a saturated run look cheap
    return {"rate": total / (t1 - t0), "cpu_ms": 1000 * (c1 - c0) / max(len(durations), 1),
            "unanswered": total - len(durations),
            "over_p50": 1000 * pct(over, 0.5), "over_p99": 1000 * pct(over, 0.99),
            "lag_p50": 1000 * pct(lags, 0.5), "lag_p99": 1000 * pct(lags, 0.99),
            "probes": total, "outcomes": outcomes, "loop": type(asyncio.get_running_loop()).__module__,
            "browser": browser_runs, "tsa_failures": tsa_failures, "traced": traced}


async def run_blackbox(rate: int, seconds: float, port: int, ca: Path | None = None) -> dict | None:
    exe = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if exe is None:
        print("blackbox_exporter not found: apt-get install -y --no-install-recommends prometheus-blackbox-exporter")
        return None
    import aiohttp

    folder = Path(tempfile.mkdtemp(prefix="sla-bb-"))
    tls = f"      tls_config: {{ca_file: {ca}}}\n" if ca else ""
    (folder / "bb.yml").write_text("modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n"
                                   "    http:\n      preferred_ip_protocol: ip4\n" + tls)
    scheme = "https" if ca else "http"
    bb_port = free_port()
    proc = subprocess.Popen([exe, f"--config.file={folder / 'bb.yml'}", f"--web.listen-address=127.0.0.1:{bb_port}",
                             "--log.level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{bb_port}/probe"
    durs: list[float] = []
    failures = 0
    try:
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as s:
            for _ in range(100):  # wait for it to listen (bounded)
                try:
                    async with s.get(f"http://127.0.0.1:{bb_port}/-/healthy") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            pat = re.compile(r"^probe_duration_seconds ([0-9.e+-]+)$", re.M)
            ok_pat = re.compile(r"^probe_success 1$", re.M)

            async def one(i: int, record: bool) -> None:
                nonlocal failures
                try:
                    async with s.get(url, params={"module": "http_2xx",
                                                  "target": f"{scheme}://127.0.0.1:{port}/bb{i}"}) as r:
                        body = await r.text()
                except aiohttp.ClientError:
                    failures += 1
                    return
                m = pat.search(body)
                if record and m and ok_pat.search(body):
                    durs.append(float(m.group(1)))
                elif record:
                    failures += 1

            async def drive(secs: float, record: bool) -> tuple[int, float]:
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                count = int(rate * secs)
                tasks = []
                for i in range(count):
                    due = t0 + i / rate
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(one(i, record)))
                await asyncio.gather(*tasks)
                return count, loop.time() - t0

            await drive(2.0, False)
            c0 = cpu_pid(proc.pid)
            count, elapsed = await drive(seconds, True)
            c1 = cpu_pid(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    over = [d - HOLD for d in durs]
    return {"rate": len(durs) / elapsed, "cpu_ms": 1000 * (c1 - c0) / max(count, 1),
            "over_p50": 1000 * pct(over, 0.5), "over_p99": 1000 * pct(over, 0.99), "failures": failures}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rates", default="200,1000")
    ap.add_argument("--vs-blackbox", action="store_true")
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--fail-share", type=float, default=0.0, help="share of requests the server answers 503")
    ap.add_argument("--journal", default="on", help="on, off, or on,off to compare in one run")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each journal mode, alternating")
    ap.add_argument("--tls", action="store_true", help="HTTPS: TLS 1.3, ECDSA P-256, a handshake per probe")
    ap.add_argument("--resume", action="store_true", help="with --tls: tls.resume on (a returning client)")
    ap.add_argument("--floor", action="store_true", help="a bare aiohttp client as well: the Python floor")
    ap.add_argument("--browser", default="off", help="on, off, or on,off: a browser check every 30 s as well")
    ap.add_argument("--path", default="on", help="on, off, or on,off: paths traced at failures (evidence.path)")
    ap.add_argument("--tsa", default="none", help="none, down, or down,none: time-stamping with an authority "
                    "that never answers")
    args = ap.parse_args()
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            print("uvloop not installed: plain asyncio")
    port = free_port()
    certs = None
    if args.tls:
        import _certs

        certs = _certs.make(Path(tempfile.mkdtemp(prefix="sla-bench-tls-")))
    ca = certs[0] if certs else None
    server = start_server(port, args.fail_share, certs)
    hung = hung_tsa()
    rows = []
    try:
        for rate in (int(x) for x in args.rates.split(",")):
            runs: dict[str, list[dict]] = {}
            modes = [(j, b, t, p) for j in args.journal.split(",") for b in args.browser.split(",")
                     for t in args.tsa.split(",") for p in args.path.split(",")]
            for _ in range(args.repeat):  # the modes alternate: the machine's drift falls on all of them
                for journal, browser, tsa, path in modes:
                    a = asyncio.run(run_agent(rate, args.seconds, port, journal=journal == "on", ca=ca,
                                              browser=browser == "on",
                                              tsa=hung.getsockname()[1] if tsa == "down" else None,
                                              resume=args.resume, path=path == "on"))
                    runs.setdefault(journal, []).append(a)
                    runs.setdefault("browser " + browser, []).append(a)
                    runs.setdefault("tsa " + tsa, []).append(a)
                    runs.setdefault("path " + path, []).append(a)
                    extra = f" browser {browser} ({', '.join(a['browser']) or 'no check in the window'})" \
                        if browser == "on" else ""
                    extra += f" tsa down ({a['tsa_failures']:.0f} failed attempts)" if tsa == "down" else ""
                    extra += " tls resume" if args.resume else ""
                    extra += f" path {path} ({a['traced']} traced)" if "," in args.path else ""
                    print(f"sla-agent   {rate:5d}/s journal {journal:<3}{extra}: achieved {a['rate']:7.1f}/s  cpu "
                          f"{a['cpu_ms']:.3f} ms/probe  overhead p50 {a['over_p50']:.2f} ms p99 {a['over_p99']:.2f} ms  "
                          f"sched lag p50 {a['lag_p50']:.2f} ms p99 {a['lag_p99']:.2f} ms  ({a['loop']}, "
                          f"{a['outcomes']})", flush=True)
            if "on" in runs and "off" in runs:
                on, off = (sorted(r["cpu_ms"] for r in runs[m])[len(runs[m]) // 2] for m in ("on", "off"))
                p99 = max(r["over_p99"] for r in runs["on"])
                print(f"journal cost at {rate}/s, median of {args.repeat}: cpu {on:.3f} vs {off:.3f} ms/probe = "
                      f"{100 * (on / off - 1):+.1f} % (target <= +5 %); overhead p99 with the journal at most "
                      f"{p99:.2f} ms (target <= 10 ms)", flush=True)
            if "browser on" in runs and "browser off" in runs:
                on, off = (sorted(r["over_p99"] for r in runs[m])[len(runs[m]) // 2]
                           for m in ("browser on", "browser off"))
                print(f"browser check at {rate}/s, median of {args.repeat}: http overhead p99 {on:.2f} ms with, "
                      f"{off:.2f} ms without = {on - off:+.2f} ms (target: within 1 ms)", flush=True)
            if "tsa down" in runs and "tsa none" in runs:
                (d_cpu, d_p99, d_lag), (n_cpu, n_p99, n_lag) = (
                    [sorted(r[k] for r in runs[m])[len(runs[m]) // 2] for k in ("cpu_ms", "over_p99", "lag_p99")]
                    for m in ("tsa down", "tsa none"))
                print(f"time-stamping authority down at {rate}/s, median of {args.repeat}: cpu {d_cpu:.3f} vs "
                      f"{n_cpu:.3f} ms/probe, http overhead p99 {d_p99:.2f} vs {n_p99:.2f} ms, sched lag p99 "
                      f"{d_lag:.2f} vs {n_lag:.2f} ms (down vs none; target: within noise)", flush=True)
            if "path on" in runs and "path off" in runs:
                (o_cpu, o_p99, o_lag), (f_cpu, f_p99, f_lag) = (
                    [sorted(r[k] for r in runs[m])[len(runs[m]) // 2] for k in ("cpu_ms", "over_p99", "lag_p99")]
                    for m in ("path on", "path off"))
                print(f"paths traced at {rate}/s, median of {args.repeat}: cpu {o_cpu:.3f} vs {f_cpu:.3f} ms/probe, "
                      f"http overhead p99 {o_p99:.2f} vs {f_p99:.2f} ms, sched lag p99 {o_lag:.2f} vs {f_lag:.2f} ms "
                      f"(on vs off; target: within noise)", flush=True)
            if a["unanswered"] > 0.01 * a["probes"]:
                print(f"  WARNING: {a['unanswered']} of the agent's {a['probes']} probes had no answer: the machine "
                      "is saturated and this rate's figures say little", flush=True)
            f = asyncio.run(run_floor(rate, args.seconds, port, HOLD, ca, args.resume)) if args.floor else None
            if f:
                print(f"floor       {rate:5d}/s aiohttp: achieved {f['rate']:7.1f}/s  cpu {f['cpu_ms']:.3f} ms/probe  "
                      f"overhead p50 {f['over_p50']:.2f} ms p99 {f['over_p99']:.2f} ms  failures {f['failures']}; "
                      f"sla-agent above it {a['cpu_ms'] - f['cpu_ms']:+.3f} ms/probe", flush=True)
            b = asyncio.run(run_blackbox(rate, args.seconds, port, ca)) if args.vs_blackbox else None
            if b:
                print(f"blackbox    {rate:5d}/s target: achieved {b['rate']:7.1f}/s  cpu {b['cpu_ms']:.3f} ms/probe  "
                      f"overhead p50 {b['over_p50']:.2f} ms p99 {b['over_p99']:.2f} ms  failures {b['failures']}",
                      flush=True)
                print(f"ratio (blackbox / sla-agent): cpu {b['cpu_ms'] / a['cpu_ms']:.2f}x  "
                      f"overhead p99 {b['over_p99'] / max(a['over_p99'], 1e-9):.2f}x"
                      + (f"; (blackbox / floor): cpu {b['cpu_ms'] / f['cpu_ms']:.2f}x" if f else ""), flush=True)
            rows.append((rate, a, b))
    finally:
        hung.close()
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
