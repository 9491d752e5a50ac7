"""Hostile clients of the agent's own HTTP endpoint, and what they do to its measurements.

A real agent (its own process, uvloop as the daemon, file descriptors limited to --agent-nofile) probes a
local server that holds each request 50 ms (bench/_hold_server.py, another process), 100 targets every
5 s = 20 probes/s. First a quiet phase, then an attack phase in which a third process sends rounds of
--scrapes concurrent GET /metrics (each round waits for its answers) and keeps --slowloris sockets
sending a request head a line at a time (a closed socket is reopened after 1 s). Meanwhile this process
asks /healthz every 0.5 s. For each phase it prints the probes recorded, p50/p99 of their latencies,
the inconclusive and down counts; then the attack's own figures and the agent's log lines. Target:
p99 < 60 ms and no inconclusive probe under attack.

The attacker runs on the last CPU, the agent, its target server and this process on the others (an
attacker elsewhere takes none of the agent's CPU time; --no-pin leaves the placing to the kernel). Each run also says how often the agent's loop
stalled over 50 ms, how many /metrics renders it made and how the probes that overlapped one fared,
and the CPU both sides used. With --decoy the same attack is also aimed at another process (a static
400 KB /metrics) while the agent probes: what the attack does to the machine, not to the agent.

With --root PATH (repeatable) the agent is imported from that tree: the same attack against the code
before a change (a worktree: git worktree add ../before <commit>) and after, side by side:

    python bench/hostile_http.py [--seconds 30] [--root ../before --root .] [--scrapes 1000]
                                 [--slowloris 500] [--agent-nofile 1024] [--decoy] [--no-pin] [--no-uvloop]

Only 127.0.0.1 is used. Every load loop is bounded in count and time. Not run in CI.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOLD = 0.050
TARGETS = 100
INTERVAL = 5.0
MAX_ROUNDS = 200  # scrape rounds per attack phase, at most
MAX_REOPEN = 200  # times one slowloris socket is reopened, at most


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpus: set[int]) -> None:
    if cpus:
        os.sched_setaffinity(pid, cpus)


def cpu_sets() -> tuple[set[int], set[int]]:
    """(the agent's and its target server's CPUs, the attacker's): a remote attacker does not take the
    agent's CPU time, one on the same machine would; on one CPU there is no choice."""
    cpus = sorted(os.sched_getaffinity(0))
    return (set(cpus[:-1]), {cpus[-1]}) if len(cpus) > 1 else (set(), set())


def set_nofile(soft: int) -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = soft if hard == resource.RLIM_INFINITY else min(soft, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def use_uvloop(enabled: bool) -> str:
    if enabled:
        try:
            import uvloop

            uvloop.install()
            return "uvloop"
        except ImportError:
            pass
    return "asyncio"


# -- the agent's process ----------------------------------------------------------------------------------
async def agent_role(args: argparse.Namespace) -> dict:
    from agent import logs
    from agent.app import Agent
    from agent.config import parse_config
    from agent.daemon import tune_gc
    from agent.export import server

    renders: list[tuple[float, float]] = []  # (start, end) of each /metrics render (both trees call server.generate)
    real = server.generate

    def timed(registry):
        t = time.monotonic()
        try:
            return real(registry)
        finally:
            renders.append((t, time.monotonic()))

    server.generate = timed

    logs.setup("warning")  # stderr goes to a file the orchestrator counts
    targets = "\n".join(f'  - {{name: t{i:03d}, service: api, url: "http://127.0.0.1:{args.target_port}/t{i}", '
                        f'interval: {INTERVAL:g}s, timeout: 2s}}' for i in range(TARGETS))
    cfg = parse_config(f'agent: {{listen: "127.0.0.1:{args.port}", per_host_concurrency: 1000, flush_interval: 5s}}\n'
                       f'targets:\n{targets}\n')
    state = tempfile.mkdtemp(prefix="sla-hostile-")
    agent = Agent(cfg, state_dir=state)
    results: list[tuple[float, float, str]] = []
    agent.listeners.append(lambda r: results.append((r.mono_start, r.duration_s, r.outcome)))
    await agent.start()
    tune_gc()  # as the daemon does
    for _ in range(300):  # the first (cold) evaluation of the SLA windows, bounded
        if agent.snapshot is not None:
            break
        await asyncio.sleep(0.1)
    print("ready", flush=True)
    t0 = float(await asyncio.to_thread(sys.stdin.readline))  # the quiet phase's start, on the monotonic clock
    end = t0 + 2 * args.seconds
    await asyncio.sleep(max(0.0, end - time.monotonic()) + 3.0)  # + the last probes' timeout
    await agent.stop()
    phases = {}
    for name, lo, hi in (("quiet", t0, t0 + args.seconds), ("attack", t0 + args.seconds, end)):
        rs = [r for r in results if lo <= r[0] < hi]
        up = [d * 1000 for _, d, outcome in rs if outcome == "up"]
        stalls = [e - s for s, e in agent.lag.events if lo <= s < hi]
        phases[name] = {"probes": len(rs), "p50": pct(up, 0.5), "p99": pct(up, 0.99),
                        "inconclusive": sum(1 for r in rs if r[2] == "inconclusive"),
                        "down": sum(1 for r in rs if r[2] == "down"),
                        "stalls": len(stalls), "worst_stall_ms": 1000 * max(stalls, default=0.0)}
    phases["attack"]["renders"] = len(renders)
    phases["attack"]["render_ms"] = 1000 * pct([e - s for s, e in renders], 0.5)
    during = [d * 1000 for s, d, outcome in results if outcome == "up" and t0 + args.seconds <= s < end
              and any(rs < s + d and s < re for rs, re in renders)]
    phases["attack"]["during_render"] = (len(during), pct(during, 0.5), pct(during, 0.99))
    import agent as imported

    return {"phases": phases, "agent": imported.__file__}


# -- the attacker's process -------------------------------------------------------------------------------
async def slowloris(port: int, end: float, stats: dict) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(MAX_REOPEN):
        if loop.time() >= end:
            return
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        except (OSError, asyncio.TimeoutError):
            stats["connect_failed"] += 1
            await asyncio.sleep(1.0)
            continue
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for i in range(int(end - loop.time()) + 1):  # a header line a second, never the blank line
                try:
                    if not await asyncio.wait_for(reader.read(1024), 1.0):
                        break
                except asyncio.TimeoutError:
                    writer.write(b"X-Padding-%d: a\r\n" % i)
                if loop.time() >= end:
                    return
            stats["closed_by_agent"] += 1
        except OSError:
            stats["closed_by_agent"] += 1
        finally:
            writer.close()
        await asyncio.sleep(1.0)


async def scrape_flood(port: int, n: int, end: float, stats: dict) -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                     timeout=timeout) as s:
        async def one() -> None:
            try:
                async with s.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    await resp.read()
                    stats[f"http_{resp.status}"] = stats.get(f"http_{resp.status}", 0) + 1
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                stats["errors"] += 1

        for _ in range(MAX_ROUNDS):
            if loop.time() >= end:
                return
            stats["rounds"] += 1
            await asyncio.gather(*(one() for _ in range(n)))


async def attack_role(args: argparse.Namespace) -> dict:
    set_nofile(args.scrapes + args.slowloris + 1024)
    await asyncio.sleep(max(0.0, args.start - time.monotonic()))
    end = asyncio.get_running_loop().time() + args.seconds
    lor = {"connect_failed": 0, "closed_by_agent": 0}
    flood = {"rounds": 0, "errors": 0}
    await asyncio.gather(scrape_flood(args.port, args.scrapes, end, flood),
                         *(slowloris(args.port, end, lor) for _ in range(args.slowloris)))
    return {"scrapes": flood, "slowloris": lor}


async def decoy_role(args: argparse.Namespace) -> None:
    from aiohttp import web

    set_nofile(args.scrapes + args.slowloris + 1024)
    body = b"# a decoy's metrics\n" * 20_000

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=10)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port, backlog=512).start()
    print("ready", flush=True)
    await asyncio.sleep(3 * args.seconds + 60)  # bounded: the orchestrator ends it before


# -- this process -----------------------------------------------------------------------------------------
def healthz(port: int, until: float) -> tuple[int, int]:
    ok = failed = 0
    for _ in range(int((until - time.monotonic()) / 0.5) + 1):
        if time.monotonic() >= until:
            break
        t = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            ok, failed = (ok + 1, failed) if c.getresponse().status == 200 else (ok, failed + 1)
            c.close()
        except OSError:
            failed += 1
        time.sleep(max(0.0, 0.5 - (time.monotonic() - t)))
    return ok, failed


def run_root(root: Path, args: argparse.Namespace, target_port: int, decoy: bool = False) -> dict:
    port = free_port()
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--seconds", str(args.seconds), "--port", str(port)] + (["--no-uvloop"] if args.no_uvloop else [])
    aim = common
    decoy_proc = None
    if decoy:
        aim = ["--seconds", str(args.seconds), "--port", str(free_port()), "--scrapes", str(args.scrapes),
               "--slowloris", str(args.slowloris)] + (["--no-uvloop"] if args.no_uvloop else [])
        decoy_proc = subprocess.Popen(me + aim + ["--role", "decoy"], stdout=subprocess.PIPE, text=True)
        pin(decoy_proc.pid, args.cpus[1])
        assert decoy_proc.stdout is not None and decoy_proc.stdout.readline().strip() == "ready"
    log = tempfile.NamedTemporaryFile(prefix="sla-hostile-log-", suffix=".txt", delete=False)
    agent = subprocess.Popen(me + common + ["--role", "agent", "--root", str(root), "--target-port", str(target_port),
                                            "--agent-nofile", str(args.agent_nofile)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    attacker = None
    mine, theirs = args.cpus
    pin(agent.pid, mine)
    try:
        assert agent.stdout is not None and agent.stdin is not None
        if agent.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the agent from {root} did not start: see {log.name}")
        t0 = time.monotonic() + 1.0
        agent.stdin.write(f"{t0}\n")
        agent.stdin.flush()
        attacker = subprocess.Popen(me + aim + ["--role", "attack", "--start", str(t0 + args.seconds),
                                                   "--scrapes", str(args.scrapes), "--slowloris", str(args.slowloris)],
                                    stdout=subprocess.PIPE, text=True)
        pin(attacker.pid, theirs)
        time.sleep(max(0.0, t0 - time.monotonic()))
        cpu = [cpu_of(agent.pid)]
        time.sleep(max(0.0, t0 + args.seconds - time.monotonic()))
        cpu.append(cpu_of(agent.pid))
        ok, failed = healthz(port, t0 + 2 * args.seconds)
        cpu += [cpu_of(agent.pid), cpu_of(attacker.pid)]
        attack = json.loads(attacker.communicate(timeout=args.seconds + 60)[0])
        outcome = json.loads(agent.communicate(timeout=120)[0].splitlines()[-1])
    finally:
        for p in (agent, attacker, decoy_proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
    lines = Path(log.name).read_text(errors="replace").splitlines()
    os.unlink(log.name)
    rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "agent"],
                           capture_output=True, text=True).stdout.strip()
    assert outcome["agent"].startswith(str(root)), f"the agent came from {outcome['agent']}, not {root}"
    name = f"{root} ({rev.stdout.strip() or '?'}{'+changes' if dirty else ''})"
    return {"root": "decoy: the attack aimed elsewhere" if decoy else name, "phases": outcome["phases"],
            "healthz": (ok, failed), "attack": attack,
            "cpu": {"quiet": (cpu[1] - cpu[0]) / args.seconds, "attack": (cpu[2] - cpu[1]) / args.seconds,
                    "attacker": cpu[3] / args.seconds}, "log_lines": len(lines),
            "tracebacks": sum(1 for x in lines if x.startswith("Traceback"))}


def report(runs: list[dict], args: argparse.Namespace) -> None:
    print(f"{TARGETS} targets every {INTERVAL:g} s ({TARGETS / INTERVAL:g} probes/s) against a {HOLD * 1000:g} ms server; "
          f"{args.seconds:g} s quiet, then {args.seconds:g} s of {args.scrapes} concurrent scrapes a round and "
          f"{args.slowloris} slowloris sockets; agent fd limit {args.agent_nofile}; agent and server on CPUs "
          f"{sorted(args.cpus[0]) or 'any'}, attacker on {sorted(args.cpus[1]) or 'any'}")
    print(f"{'agent':<36} {'phase':<7} {'probes':>6} {'p50 ms':>8} {'p99 ms':>8} {'inconcl.':>8} {'down':>5}  "
          f"target p99 < 60 ms, 0 inconclusive")
    for run in runs:
        for name, p in run["phases"].items():
            ok = p["p99"] < 60 and p["inconclusive"] == 0
            print(f"{run['root']:<36} {name:<7} {p['probes']:>6} {p['p50']:>8.1f} {p['p99']:>8.1f} "
                  f"{p['inconclusive']:>8} {p['down']:>5}  {'OK' if ok else 'MISSED'}")
        a, p = run["attack"], run["phases"]
        print(f"{'':<36} loop stalls > 50 ms: quiet {p['quiet']['stalls']} (worst {p['quiet']['worst_stall_ms']:.0f} ms), "
              f"attack {p['attack']['stalls']} (worst {p['attack']['worst_stall_ms']:.0f} ms); /metrics renders "
              f"{p['attack']['renders']} (median {p['attack']['render_ms']:.1f} ms; probes overlapping one: "
              f"{p['attack']['during_render'][0]}, p50 {p['attack']['during_render'][1]:.1f} ms p99 "
              f"{p['attack']['during_render'][2]:.1f} ms); agent CPU quiet "
              f"{run['cpu']['quiet']:.0%} attack {run['cpu']['attack']:.0%}, attacker {run['cpu']['attacker']:.0%} "
              f"({os.cpu_count()} CPUs)")
        print(f"{'':<36} attack: scrape rounds {a['scrapes'].pop('rounds')}, answers "
              f"{json.dumps(a['scrapes'], sort_keys=True)}; slowloris {json.dumps(a['slowloris'], sort_keys=True)}; "
              f"/healthz ok {run['healthz'][0]} failed {run['healthz'][1]}; agent log lines {run['log_lines']} "
              f"(tracebacks {run['tracebacks']})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    ap.add_argument("--root", action="append", help="a tree to import the agent from (repeatable)")
    ap.add_argument("--scrapes", type=int, default=1000)
    ap.add_argument("--slowloris", type=int, default=500)
    ap.add_argument("--agent-nofile", type=int, default=1024, help="the agent's file descriptor limit")
    ap.add_argument("--decoy", action="store_true", help="also aim the attack at another process")
    ap.add_argument("--no-pin", action="store_true", help="let the kernel place the processes on the CPUs")
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--role", choices=("agent", "attack", "decoy"), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--target-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.seconds = min(max(args.seconds, 5.0), 300.0)
    args.scrapes = min(args.scrapes, 5000)
    args.slowloris = min(args.slowloris, 5000)
    if args.role == "agent":
        sys.path.insert(0, str(Path(args.root[-1]).resolve()))
        set_nofile(args.agent_nofile)
        use_uvloop(not args.no_uvloop)
        print(json.dumps(asyncio.run(agent_role(args))), flush=True)
        return
    if args.role == "attack":
        use_uvloop(not args.no_uvloop)
        print(json.dumps(asyncio.run(attack_role(args))), flush=True)
        return
    if args.role == "decoy":
        use_uvloop(not args.no_uvloop)
        asyncio.run(decoy_role(args))
        return
    target_port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "_hold_server.py"), str(target_port), str(HOLD)],
                              stdout=subprocess.PIPE, text=True)
    args.cpus = (set(), set()) if args.no_pin else cpu_sets()
    pin(server.pid, args.cpus[0])
    pin(os.getpid(), args.cpus[0])
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        roots = [Path(r).resolve() for r in (args.root or [str(HERE.parent)])]
        runs = [run_root(r, args, target_port) for r in roots]
        if args.decoy:
            runs.append(run_root(roots[-1], args, target_port, decoy=True))
    finally:
        server.terminate()
        server.wait(10)
    report(runs, args)


if __name__ == "__main__":
    main()
