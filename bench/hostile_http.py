"""Hostile clients of the agent's own HTTP endpoint, and what they do to its measurements.

A real agent (its own process, uvloop as the daemon, file descriptors limited to --agent-nofile) probes a
local server that holds each request 50 ms (bench/_hold_server.py, another process), 100 targets every
5 s = 20 probes/s. Its ledger starts as a copy of one the bench builds (--ledger-mb, about 250 MB: 20
targets, 50 days at 1 probe/s, a month's journal), and its endpoint asks for basic auth (web.yml, a
bcrypt hash of cost 10). First a quiet phase, then an attack phase in which a third process sends rounds
of --scrapes concurrent GET /metrics (each round waits for its answers), keeps --slowloris sockets
sending a request head a line at a time (a closed socket is reopened after 1 s), has --password-clients
clients send wrong passwords one after another (no credentials needed), and --extracts clients each ask
/api/v1/ledger for the whole ledger with its whole journal (1 s between an answer and the next request;
a request still running when the attack ends is dropped by its client). Meanwhile this process asks
/healthz every 0.5 s. For each phase it prints the probes recorded, p50/p99 of their latencies, the
inconclusive and down counts, the longest time without a completed ledger flush; then the attack's own
figures and the agent's log lines. Target: p99 <= 60 ms, no inconclusive probe under attack, /healthz
always answered, and the probes that overlapped a /metrics render p99 <= 55 ms.

The attacker runs on the last CPU, the agent, its target server and this process on the others (an
attacker elsewhere takes none of the agent's CPU time; --no-pin leaves the placing to the kernel). Each run also says how often the agent's loop
stalled over 50 ms, how many /metrics renders it made and how the probes that overlapped one fared,
and the CPU both sides used. With --decoy the same attack is also aimed at another process (a static
400 KB /metrics) while the agent probes: what the attack does to the machine, not to the agent.

With --root PATH (repeatable) the agent is imported from that tree: the same attack against the code
before a change (a worktree: git worktree add ../before <commit>) and after, side by side:

    python bench/hostile_http.py [--seconds 30] [--root ../before --root .] [--scrapes 1000]
                                 [--slowloris 500] [--password-clients 8] [--extracts 10] [--ledger DIR]
                                 [--agent-nofile 1024] [--decoy] [--no-pin] [--no-uvloop]

--password-clients 0 leaves basic auth out, --extracts 0 the ledger pulls (and the ledger's build): the
attack of earlier runs. --ledger DIR keeps the built ledger there and reuses it when it is there.

Only 127.0.0.1 is used. Every load loop is bounded in count and time. Not run in CI.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import resource
import shutil
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
MAX_ATTEMPTS = 2000  # wrong passwords one client sends per attack phase, at most
MAX_PULLS = 100  # ledger extracts one client asks for per attack phase, at most
USER, PASSWORD = "prometheus", "scrape-pw"
LEDGER_SPAN = 399 * 86400  # the whole ledger: the endpoint serves 400 days at most


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def auth_headers(args: argparse.Namespace) -> dict[str, str]:
    return basic(USER, PASSWORD) if args.password_clients else {}


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
    web = f', web_config_file: "{args.web_yml}"' if args.web_yml else ""
    cfg = parse_config(f'agent: {{listen: "127.0.0.1:{args.port}", per_host_concurrency: 1000, flush_interval: 5s'
                       f'{web}}}\ntargets:\n{targets}\n')
    state = tempfile.mkdtemp(prefix="sla-hostile-")
    if args.ledger:
        shutil.copy(Path(args.ledger) / "ledger.db", Path(state) / "ledger.db")
    agent = Agent(cfg, state_dir=state)
    results: list[tuple[float, float, str]] = []
    agent.listeners.append(lambda r: results.append((r.mono_start, r.duration_s, r.outcome)))
    flushes: list[float] = []  # when each flush that wrote its batch ended
    flush = agent.flush

    async def timed_flush(**kw) -> bool:  # kw: the stop's seal_all, on trees that have it
        ok = await flush(**kw)
        if ok:
            flushes.append(time.monotonic())
        return ok

    agent.flush = timed_flush  # the flush loop and the endpoints call it through the instance
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
    shutil.rmtree(state, ignore_errors=True)
    phases = {}
    for name, lo, hi in (("quiet", t0, t0 + args.seconds), ("attack", t0 + args.seconds, end)):
        rs = [r for r in results if lo <= r[0] < hi]
        up = [d * 1000 for _, d, outcome in rs if outcome == "up"]
        stalls = [e - s for s, e in agent.lag.events if lo <= s < hi]
        marks = [lo] + [f for f in flushes if lo < f < hi] + [hi]
        phases[name] = {"probes": len(rs), "p50": pct(up, 0.5), "p99": pct(up, 0.99),
                        "inconclusive": sum(1 for r in rs if r[2] == "inconclusive"),
                        "down": sum(1 for r in rs if r[2] == "down"),
                        "stalls": len(stalls), "worst_stall_ms": 1000 * max(stalls, default=0.0),
                        "flush_gap_s": max(b - a for a, b in zip(marks, marks[1:]))}
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


def count(stats: dict, key: str) -> None:
    stats[key] = stats.get(key, 0) + 1


async def password_flood(port: int, clients: int, end: float, stats: dict) -> None:
    """`clients` clients each sending a wrong password as soon as the last one was answered."""
    import aiohttp

    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                     timeout=aiohttp.ClientTimeout(total=10)) as s:
        async def client(i: int) -> None:
            for k in range(MAX_ATTEMPTS):
                if loop.time() >= end:
                    return
                try:
                    async with s.get(f"http://127.0.0.1:{port}/metrics", headers=basic(USER, f"guess-{i}-{k}")) as r:
                        await r.read()
                        count(stats, f"http_{r.status}")
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    count(stats, "errors")

        await asyncio.gather(*(client(i) for i in range(clients)))


async def extract_flood(port: int, clients: int, end: float, stats: dict) -> None:
    """`clients` clients each pulling the whole ledger, 1 s after each answer; dropped at the end."""
    import aiohttp

    loop = asyncio.get_running_loop()
    now = time.time()
    url = f"http://127.0.0.1:{port}/api/v1/ledger?from={now - LEDGER_SPAN:.0f}&to={now:.0f}&journal=all"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                     headers=basic(USER, PASSWORD), auto_decompress=False) as s:
        async def one() -> None:
            async with s.get(url) as resp:
                while chunk := await resp.content.read(1 << 20):
                    stats["mb"] += len(chunk) / 1e6
                count(stats, f"http_{resp.status}")

        async def client() -> None:
            for _ in range(MAX_PULLS):
                if loop.time() >= end:
                    return
                try:
                    await asyncio.wait_for(one(), end - loop.time())
                except asyncio.TimeoutError:
                    count(stats, "dropped_at_end")
                    return
                except (aiohttp.ClientError, OSError):
                    count(stats, "errors")
                await asyncio.sleep(1.0)

        await asyncio.gather(*(client() for _ in range(clients)))


async def scrape_flood(port: int, n: int, end: float, stats: dict, headers: dict[str, str]) -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                     timeout=timeout, headers=headers) as s:
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
    passwords: dict = {}
    pulls: dict = {"mb": 0.0}
    await asyncio.gather(scrape_flood(args.port, args.scrapes, end, flood, auth_headers(args)),
                         password_flood(args.port, args.password_clients, end, passwords),
                         extract_flood(args.port, args.extracts, end, pulls),
                         *(slowloris(args.port, end, lor) for _ in range(args.slowloris)))
    pulls["mb"] = round(pulls["mb"])
    return {"scrapes": flood, "slowloris": lor, "passwords": passwords, "extracts": pulls}


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
def healthz(port: int, until: float, headers: dict[str, str]) -> tuple[int, dict[str, int], float]:
    """(answered 200, the others by why, the slowest answer in ms)."""
    ok, failed = 0, {}
    slowest = 0.0
    for _ in range(int((until - time.monotonic()) / 0.5) + 1):
        if time.monotonic() >= until:
            break
        t = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz", headers=headers)
            status = c.getresponse().status
            c.close()
            slowest = max(slowest, 1000 * (time.monotonic() - t))
            if status == 200:
                ok += 1
            else:
                count(failed, f"http_{status}")
        except OSError as exc:
            count(failed, type(exc).__name__)
        time.sleep(max(0.0, 0.5 - (time.monotonic() - t)))
    return ok, failed, slowest


def build_ledger(folder: Path, mb: int) -> str:
    """A ledger as the daemon writes it: 20 targets, 50 days of minute rows and digests at 1 probe/s, and
    October 2026's journal with a share of failures (and an up record every 5 minutes) sized to `mb`."""
    sys.path[:0] = [str(HERE.parent), str(HERE)]
    from locations import _fill

    if not (folder / "ledger.db").exists():
        t = time.monotonic()
        records = _fill(folder, 20, 5, 300.0, mb / 250 * 0.006)
        print(f"ledger built in {time.monotonic() - t:.0f} s: {records} journal records", flush=True)
    return f"{(folder / 'ledger.db').stat().st_size / 1e6:.0f} MB ledger"


def write_web_yml(path: Path) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()  # htpasswd -nBC 10
    path.write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")


def run_root(root: Path, args: argparse.Namespace, target_port: int, decoy: bool = False) -> dict:
    port = free_port()
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--seconds", str(args.seconds), "--port", str(port)] + (["--no-uvloop"] if args.no_uvloop else [])
    attack = ["--scrapes", str(args.scrapes), "--slowloris", str(args.slowloris), "--password-clients",
              str(args.password_clients), "--extracts", str(args.extracts)]
    aim = common
    decoy_proc = None
    if decoy:
        aim = ["--seconds", str(args.seconds), "--port", str(free_port())] + attack + \
              (["--no-uvloop"] if args.no_uvloop else [])
        decoy_proc = subprocess.Popen(me + aim + ["--role", "decoy"], stdout=subprocess.PIPE, text=True)
        pin(decoy_proc.pid, args.cpus[1])
        assert decoy_proc.stdout is not None and decoy_proc.stdout.readline().strip() == "ready"
    log = tempfile.NamedTemporaryFile(prefix="sla-hostile-log-", suffix=".txt", delete=False)
    serving = (["--web-yml", args.web_yml] if args.web_yml else []) + (["--ledger", args.ledger] if args.extracts else [])
    agent = subprocess.Popen(me + common + serving + ["--role", "agent", "--root", str(root), "--target-port",
                                                      str(target_port), "--agent-nofile", str(args.agent_nofile)],
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
        attacker = subprocess.Popen(me + aim + attack + ["--role", "attack", "--start", str(t0 + args.seconds)],
                                    stdout=subprocess.PIPE, text=True)
        pin(attacker.pid, theirs)
        time.sleep(max(0.0, t0 - time.monotonic()))
        cpu = [cpu_of(agent.pid)]
        time.sleep(max(0.0, t0 + args.seconds - time.monotonic()))
        cpu.append(cpu_of(agent.pid))
        health = healthz(port, t0 + 2 * args.seconds, auth_headers(args))
        cpu += [cpu_of(agent.pid), cpu_of(attacker.pid)]
        attacked = json.loads(attacker.communicate(timeout=args.seconds + 60)[0])
        # an agent still extracting for clients that have gone finishes that before it exits
        outcome = json.loads(agent.communicate(timeout=900)[0].splitlines()[-1])
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
            "healthz": health, "attack": attacked,
            "cpu": {"quiet": (cpu[1] - cpu[0]) / args.seconds, "attack": (cpu[2] - cpu[1]) / args.seconds,
                    "attacker": cpu[3] / args.seconds}, "log_lines": len(lines),
            "tracebacks": sum(1 for x in lines if x.startswith("Traceback"))}


def report(runs: list[dict], args: argparse.Namespace) -> None:
    print(f"{TARGETS} targets every {INTERVAL:g} s ({TARGETS / INTERVAL:g} probes/s) against a {HOLD * 1000:g} ms server; "
          f"{args.seconds:g} s quiet, then {args.seconds:g} s of {args.scrapes} concurrent scrapes a round, "
          f"{args.slowloris} slowloris sockets, {args.password_clients} clients sending wrong passwords and "
          f"{args.extracts} pulling the {args.ledger_size} whole; agent fd limit {args.agent_nofile}; agent and server "
          f"on CPUs {sorted(args.cpus[0]) or 'any'}, attacker on {sorted(args.cpus[1]) or 'any'}")
    print(f"{'agent':<36} {'phase':<7} {'probes':>6} {'p50 ms':>8} {'p99 ms':>8} {'inconcl.':>8} {'down':>5} "
          f"{'no flush':>8}  target p99 <= 60 ms, 0 inconclusive")
    for run in runs:
        for name, p in run["phases"].items():
            ok = p["p99"] <= 60 and p["inconclusive"] == 0
            print(f"{run['root']:<36} {name:<7} {p['probes']:>6} {p['p50']:>8.1f} {p['p99']:>8.1f} "
                  f"{p['inconclusive']:>8} {p['down']:>5} {p['flush_gap_s']:>7.1f}s  {'OK' if ok else 'MISSED'}")
        a, p = run["attack"], run["phases"]
        print(f"{'':<36} loop stalls > 50 ms: quiet {p['quiet']['stalls']} (worst {p['quiet']['worst_stall_ms']:.0f} ms), "
              f"attack {p['attack']['stalls']} (worst {p['attack']['worst_stall_ms']:.0f} ms); /metrics renders "
              f"{p['attack']['renders']} (median {p['attack']['render_ms']:.1f} ms; probes overlapping one: "
              f"{p['attack']['during_render'][0]}, p50 {p['attack']['during_render'][1]:.1f} ms p99 "
              f"{p['attack']['during_render'][2]:.1f} ms, target <= 55 ms "
              f"{'OK' if p['attack']['during_render'][2] <= 55 else 'MISSED'}); agent CPU quiet "
              f"{run['cpu']['quiet']:.0%} attack {run['cpu']['attack']:.0%}, attacker {run['cpu']['attacker']:.0%} "
              f"({os.cpu_count()} CPUs)")
        print(f"{'':<36} attack: scrape rounds {a['scrapes'].pop('rounds')}, answers "
              f"{json.dumps(a['scrapes'], sort_keys=True)}; slowloris {json.dumps(a['slowloris'], sort_keys=True)}; "
              f"/healthz ok {run['healthz'][0]} failed {json.dumps(run['healthz'][1], sort_keys=True)} (slowest "
              f"{run['healthz'][2]:.0f} ms); "
              f"agent log lines {run['log_lines']} (tracebacks {run['tracebacks']})")
        print(f"{'':<36} wrong passwords: answers {json.dumps(a['passwords'], sort_keys=True)}; ledger pulls: "
              f"{json.dumps(a['extracts'], sort_keys=True)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    ap.add_argument("--root", action="append", help="a tree to import the agent from (repeatable)")
    ap.add_argument("--scrapes", type=int, default=1000)
    ap.add_argument("--slowloris", type=int, default=500)
    ap.add_argument("--password-clients", type=int, default=8, help="clients sending wrong passwords (0: no auth)")
    ap.add_argument("--extracts", type=int, default=10, help="clients pulling the whole ledger at once")
    ap.add_argument("--ledger", help="where the built ledger is kept, and reused from when it is there")
    ap.add_argument("--ledger-mb", type=int, default=250, help="about how large a ledger to build")
    ap.add_argument("--agent-nofile", type=int, default=1024, help="the agent's file descriptor limit")
    ap.add_argument("--decoy", action="store_true", help="also aim the attack at another process")
    ap.add_argument("--no-pin", action="store_true", help="let the kernel place the processes on the CPUs")
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--role", choices=("agent", "attack", "decoy"), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--target-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--start", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--web-yml", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.seconds = min(max(args.seconds, 5.0), 300.0)
    args.scrapes = min(args.scrapes, 5000)
    args.slowloris = min(args.slowloris, 5000)
    args.password_clients = min(args.password_clients, 100)
    args.extracts = min(args.extracts, 50)
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
    work = Path(tempfile.mkdtemp(prefix="sla-hostile-bench-"))
    try:
        measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, work: Path) -> None:
    if args.password_clients:
        args.web_yml = str(work / "web.yml")
        write_web_yml(Path(args.web_yml))
    args.ledger_size = "ledger"
    if args.extracts:
        args.ledger = args.ledger or str(work / "ledger")
        args.ledger_size = build_ledger(Path(args.ledger), args.ledger_mb)
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
