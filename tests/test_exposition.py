"""The /metrics text is kept prebuilt (export/exposition.py): it must be byte for byte prometheus_client's
generate_latest for the same registry, whatever happened to the registry, and a render must read and
format again only the series that changed."""
from __future__ import annotations

import math
import random
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.utils import floatToGoString

from agent.app import Agent
from agent.calendar import Calendar
from agent.config import load_config, parse_config
from agent.export import exposition
from agent.export.collectors import SloCollector, TargetInfoCollector
from agent.export.exposition import generate
from agent.export.metrics import DURATION_BUCKETS, PHASE_BUCKETS, LiveMetrics
from agent.ledger import Ledger
from agent.probes import ProbeResult
from agent.probes.base import TokenRequest
from agent.redact import Redactor
from agent.slo import Sample, Snapshot, evaluate

from .servers import closed_port

# the registry the agent uses; the plain one where there is none (the tests that read values run on both)
Registry = getattr(exposition, "Registry", CollectorRegistry)
HTTP_PHASES = (0.001, 0.002, 0.003, 0.004, 0.0)


def test_identical_to_generate_latest():
    reg = Registry()
    m = LiveMetrics(reg, location="lab-1")
    m.bind("api", "a", ("dns", "connect", "tls", "ttfb", "transfer"))
    m.bind("web", 'we"ird\\name', ("connect", "ttfb", "transfer"))
    for i in range(50):
        m.observe(ProbeResult("a", "api", 0.0, 0.0, 0.01 * i, "up" if i % 5 else "down",
                              "" if i % 5 else "http_status", status=200, phases=(0.001, 0.002, 0.003, 0.004, 0.0),
                              latency_counted=True, tls_not_after=2e9), masked=i % 7 == 0)
    m.observe(ProbeResult('we"ird\\name', "web", 0.0, 0.0, 0.2, "inconclusive", "skipped"), masked=False)
    cfg = parse_config('targets: [{name: a, service: api, url: "http://127.0.0.1:9/", timeout: 2s, interval: 2s}]')
    led = Ledger(cfg.contract.thresholds, day_start=lambda t: t - t % 86400)
    t0 = 1_795_000_000.0
    for i in range(50):
        led.add(ProbeResult("a", "api", t0 + i, 0.0, 0.01 * i, "up", status=200, latency_counted=True))
    snap = evaluate(led, cfg, Calendar(cfg.contract), t0 + 120)
    reg.register(SloCollector(lambda: snap, lambda: True, "lab-1"))
    assert generate(reg) == generate_latest(reg)
    assert generate(reg) == generate(reg)  # cached labels give the same text


def test_a_result_fills_the_buckets_and_sums_prometheus_clients_observe_would():
    """LiveMetrics moves its children's values itself (no lock, no checks): a duration on a bucket's bound,
    just above or below it, beyond the last, lands where Histogram.observe puts it, sums included."""
    bounds = sorted({*DURATION_BUCKETS, *PHASE_BUCKETS})
    values = [0.0, 1e9, *(v for b in bounds for v in (b, math.nextafter(b, 0.0), math.nextafter(b, math.inf)))]
    m = LiveMetrics(Registry())
    m.bind("api", "a", ("dns", "connect", "tls", "ttfb", "transfer"), ("connect", "ttfb"))
    ref = CollectorRegistry()
    duration = Histogram("d", "", buckets=DURATION_BUCKETS, registry=ref)
    connect, ttfb = (Histogram(n, "", buckets=PHASE_BUCKETS, registry=ref) for n in ("c", "t"))
    for i, v in enumerate(values):
        w = values[-1 - i]
        r = ProbeResult("a", "api", 0.0, 0.0, v, "up", phases=(0.0, w, 0.0, v, 0.0), latency_counted=True)
        m.observe(r, False)
        duration.observe(v)
        connect.observe(w)
        ttfb.observe(v)

    def state(h: Histogram) -> list[float]:
        return [b.get() for b in h._buckets] + [h._sum.get()]

    assert state(m.duration.labels("api", "a")) == state(duration)
    assert state(m.phase.labels("api", "a", "connect")) == state(connect)
    assert state(m.phase.labels("api", "a", "ttfb")) == state(ttfb)
    up, counted = (c.labels("api", "a", "up")._value.get() for c in (m.probes, m.counted))
    assert up == counted == len(values)
    assert m.success.labels("api", "a")._value.get() == 1


def _config(path: Path, port: int, targets: list[str], tickets: bool) -> None:
    url = f"http://127.0.0.1:{port}"
    feed = f'tickets: {{url: "{url}/export.csv", every: 1h}}\n' if tickets else ""
    lines = "".join(f"  - {t}\n" for t in targets)
    path.write_text(f'agent: {{listen: "127.0.0.1:0", location: lab-1}}\n{feed}targets:\n{lines}'
                    f'controls: [{{name: control, url: "{url}/", interval: 1h, timeout: 2s}}]\n')


def _results(agent: Agent, target: str, service: str, n: int, seed: int) -> None:
    """n results of every kind the live series count, through the agent's own pipeline."""
    rng = random.Random(seed)
    now = agent.clock.time()
    for i in range(n):
        kind = rng.choice(["up", "up", "up", "down", "skipped", "late", "token", "lcp"])
        d = rng.lognormvariate(math.log(0.1), 0.8)
        if kind == "up" or kind in ("token", "lcp"):
            r = ProbeResult(target, service, now, 0.0, d, "up", status=200, phases=HTTP_PHASES, latency_counted=True,
                            tls_not_after=2e9 + i, token_requests=((TokenRequest(0.02, "ok", "first"),)
                                                                   if kind == "token" else ()),
                            marks=(("lcp", d / 2),) if kind == "lcp" else ())
        elif kind == "down":
            r = ProbeResult(target, service, now, 0.0, d, "down", rng.choice(["http_status", "timeout", "connect"]),
                            phases=HTTP_PHASES, latency_counted=True)
        else:
            r = ProbeResult(target, service, now, 0.0, 0.0, "inconclusive",
                            "skipped" if kind == "skipped" else "agent_overload")
        agent.on_result(r)


def _same(agent: Agent, why: str) -> bytes:
    """Both texts taken in the same loop turn: nothing changes the registry between them."""
    ours, theirs = generate(agent.registry), generate_latest(agent.registry)
    assert ours == theirs, f"{why}: the prebuilt text differs from generate_latest's"
    return ours


async def test_the_prebuilt_text_is_generate_latests_after_results_reloads_removals_and_evaluations(tmp_path):
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    path = tmp_path / "agent.yaml"
    t = {name: f'{{name: {name}, service: {svc}, url: "{url}/{name}", interval: 1h, timeout: 2s{extra}}}'
         for name, svc, extra in (("a", "api", ""), ("b", "api", ", labels: {team: core}"), ("c", "web", ""),
                                  ("d", "web", ""))}
    _config(path, port, [t["a"], t["b"], t["c"]], tickets=False)
    agent = Agent(load_config(path), state_dir=str(tmp_path / "state"), config_path=str(path))
    await agent.start()
    try:
        _same(agent, "at start")
        for i, (name, svc) in enumerate((("a", "api"), ("b", "api"), ("c", "web"), ("control", "_control"))):
            _results(agent, name, svc, 40, seed=i)
            _same(agent, f"after results of {name}")
        text = _same(agent, "again, nothing changed")
        assert b'sla_probe_errors_total{error_kind="timeout",location="lab-1",service="api",target="a"}' in text
        await agent.evaluate_now()
        _same(agent, "after an evaluation")
        await agent.flush()
        _same(agent, "after a flush")
        # c removed, d added, b relabelled and moved to another service, a's URL changed, a feed added
        relabelled = t["b"].replace("team: core", "team: edge").replace("service: api", "service: web")
        _config(path, port, [t["a"].replace("/a", "/a2"), relabelled, t["d"]], tickets=True)
        assert await agent.reload()
        text = _same(agent, "after a reload")
        assert b'team="edge"' in text and b'url="' + url.encode() + b'/a2"' in text
        assert b'sla_probe_success{location="lab-1",service="web",target="c"}' not in text
        assert b'target="c"' not in text  # none of its series stays: by outcome, phase or error kind neither
        assert b'service="api",target="b"' not in text  # b's series under its old service went with it
        _results(agent, "d", "web", 30, seed=7)
        _results(agent, "b", "web", 30, seed=8)
        await agent.evaluate_now()
        _same(agent, "after results and an evaluation under the new config")
        # c back (its series made again, at the end), the feed and d gone
        _config(path, port, [t["a"], t["c"]], tickets=False)
        assert await agent.reload()
        _same(agent, "after a second reload")
        _results(agent, "c", "web", 20, seed=9)
        _results(agent, "a", "api", 20, seed=10)
        await agent.evaluate_now()
        _same(agent, "at the end")
    finally:
        await agent.stop()


def test_a_render_reads_again_only_the_series_of_the_target_that_changed(monkeypatch):
    """generate_latest reads and formats every sample at each scrape (~7,500 lines at 100 targets); the
    prebuilt text reads only the values of the targets that had a result since the render before."""
    read: list[tuple] = []

    def counting(factory):
        def make(children, direct):
            numbers = factory(children, direct)

            def counted():
                read.extend(c._labelvalues for c in children)
                return numbers()
            return counted
        return make

    monkeypatch.setattr(exposition, "_values", counting(exposition._values))
    monkeypatch.setattr(exposition, "_histogram_values", counting(exposition._histogram_values))
    reg = Registry()
    m = LiveMetrics(reg)
    targets = {f"t{i}" for i in range(50)}
    for i in range(50):
        m.bind("api", f"t{i}", ("dns", "connect", "tls", "ttfb", "transfer"))
        m.observe(ProbeResult(f"t{i}", "api", 0.0, 0.0, 0.1, "up", status=200, phases=HTTP_PHASES,
                              latency_counted=True), masked=False)

    def targets_read() -> set[str]:
        return {v for values in read for v in values if v in targets}

    generate(reg)
    assert targets_read() == targets and len(read) > 50 * 14
    for result in (ProbeResult("t7", "api", 0.0, 0.0, 0.2, "down", "timeout", phases=HTTP_PHASES, latency_counted=True),
                   ProbeResult("t7", "api", 0.0, 0.0, 0.2, "up", status=200, phases=HTTP_PHASES, latency_counted=True)):
        m.observe(result, masked=False)  # the first makes a new series (its error kind), the second not
        read.clear()
        text = generate(reg)
        assert targets_read() == {"t7"}
        assert text == generate_latest(reg)
    read.clear()
    assert generate(reg) == text and targets_read() == set()
    assert b'sla_probe_errors_total{error_kind="timeout",service="api",target="t7"} 1.0' in text


def test_a_change_the_render_half_saw_is_in_the_next_render():
    """A result lands on the loop thread while a render runs in a worker: right after the render read
    the value of the target's series. The next render must show it."""
    reg = Registry()
    c = Counter("c", "a per-target counter", ["service", "target"], registry=reg)
    child = c.labels("api", "a")
    versions = {"a": 1}

    class Racing:
        armed = False

        def __init__(self, value):
            self.value = value

        def get(self):
            seen = self.value.get()
            if self.armed:  # once: the change, then its version, as LiveMetrics.observe makes them
                self.armed = False
                self.value.inc(1)
                versions["a"] += 1
            return seen

        def __getattr__(self, name):  # inc, get_exemplar: the value's own
            return getattr(self.value, name)

    child._value = racing = Racing(child._value)
    reg.prebuild(c, exposition.Family(c, versions).parts)
    generate(reg)
    child.inc()
    versions["a"] += 1
    racing.armed = True
    assert b'c_total{service="api",target="a"} 1.0' in generate(reg)  # read before the change
    assert generate(reg) == generate_latest(reg)
    assert b'c_total{service="api",target="a"} 2.0' in generate(reg)


def test_sla_figures_follow_the_snapshot_and_the_maintenance_flag():
    cfg = parse_config('targets: [{name: a, service: api, url: "http://127.0.0.1:9/", timeout: 2s, interval: 2s}]')
    led = Ledger(cfg.contract.thresholds, day_start=lambda t: t - t % 86400)
    t0 = 1_795_000_000.0
    state = {"snap": None, "maintenance": False}
    reg = Registry()
    reg.register(SloCollector(lambda: state["snap"], lambda: state["maintenance"]))
    for i in range(3):
        for j in range(30):
            led.add(ProbeResult("a", "api", t0 + 60 * i + j, 0.0, 0.3 * i, "up" if j % 9 else "down", status=200,
                                latency_counted=True))
        state["snap"] = evaluate(led, cfg, Calendar(cfg.contract), t0 + 60 * i + 120)
        assert generate(reg) == generate_latest(reg)
        state["maintenance"] = not state["maintenance"]
        assert generate(reg) == generate_latest(reg)


def test_sla_figures_and_target_info_are_formatted_once_per_evaluation_and_per_config():
    """Both were built and formatted again at every scrape, although they change only with a new
    snapshot (every 10 s or more) or a new configuration."""
    asked: list[str] = []

    class Objective:
        def samples(self, window, result):
            asked.append(window)
            yield Sample("sla_availability_ratio", (("service", "api"), ("window", window)), result)

    snap = Snapshot(0.0, ((Objective(), {"month": 0.99, "30d": 0.98}),), False)
    state = {"snap": snap}
    cfg = parse_config('targets: [{name: a, service: api, url: "http://u:p@127.0.0.1:9/", timeout: 2s, interval: 2s,'
                       ' labels: {team: core}}]')
    redact = [Redactor()]

    def redactor(*text):  # the redaction in force (given a text, it redacts it: the collector's older form)
        return redact[0](*text) if text else redact[0]

    reg = Registry()
    reg.register(SloCollector(lambda: state["snap"], lambda: False))
    reg.register(TargetInfoCollector(lambda: cfg.all_targets, redactor))
    text = generate(reg)
    assert b'sla_availability_ratio{service="api",window="month"} 0.99' in text
    assert b'sla_target_info{service="api",target="a",team="core",type="http",url="http://<redacted>@127.0.0.1:9/"} 1.0' \
        in text
    asked.clear()
    for _ in range(5):
        assert generate(reg) == text
    assert asked == [], "the same snapshot's samples were built again"
    state["snap"] = Snapshot(10.0, ((Objective(), {"month": 0.97}),), False)
    assert b'window="month"} 0.97' in generate(reg) and asked == ["month"]
    redact[0] = Redactor(["127.0.0.1"])  # a reload with a new secret: the URL is redacted anew
    assert b'url="http://<redacted>@<redacted>:9/"' in generate(reg)
    assert generate(reg) == generate_latest(reg)


def test_numbers_are_written_as_prometheus_client_writes_them():
    rng = random.Random(3)
    values = [0.0, -0.0, 1.0, 0.1, 1e-7, 5e-324, 999999.9999999999, 1e6, -1e6, 1234567.0, 123456789.125, 1e15,
              9.999999999999999e15, 1e16, 1e22, -1e22, math.inf, -math.inf, math.nan, 3, 2**53]
    values += [rng.lognormvariate(0, 12) * rng.choice((1, -1)) for _ in range(5000)]
    values += [float(rng.randrange(10**12)) for _ in range(2000)]
    reg = Registry()
    c = Counter("n", "numbers", ["i"], registry=reg)
    for i, v in enumerate(values):
        c.labels(str(i))._value.set(v)
    assert generate(reg) == generate_latest(reg)
    assert [exposition._number(v) for v in values] == [floatToGoString(v) for v in values]
    # prebuilt, through the cache of number texts: a gauge may hold anything, -0.0 too (written as such
    # after 0.0 was); a counter anything it can reach (inc() refuses negative amounts: never -0.0)
    reg = Registry()
    gauge = Gauge("g", "numbers", ["target"], registry=reg)
    counter = Counter("k", "numbers", ["target"], registry=reg)
    versions: dict[str, int] = {}
    reg.prebuild(gauge, exposition.Family(gauge, versions).parts)
    reg.prebuild(counter, exposition.Family(counter, versions).parts)
    for i, v in enumerate(values * 2):
        gauge.labels(f"t{i % 50}").set(v)
        if not (v == 0 and math.copysign(1, v) < 0):
            counter.labels(f"t{i % 50}")._value.set(v)
        versions[f"t{i % 50}"] = i
        if i % 50 == 49:
            assert generate(reg) == generate_latest(reg)


def test_the_prebuilt_text_is_generate_latests_along_a_random_sequence_of_results_reloads_and_removals():
    """Targets come, get results of every kind, go (a reload that dropped them), come back (their series
    made again, at the end), change service; some series are made lazily (error kinds, marks, tokens), so
    one target's series are not all next to each other. The text is compared after every step, and
    several steps may fall between two renders."""
    rng = random.Random(23)
    phases = ("dns", "connect", "tls", "ttfb", "transfer")
    reg = Registry()
    m = LiveMetrics(reg, location="lab-1")
    live: dict[str, str] = {}  # target -> service
    names = [f"t{i}" for i in range(12)] + ['we"ird\\t%s', "t-é"]
    for step in range(400):
        op = rng.random()
        if op < 0.15 or not live:
            name = rng.choice(names)
            if name not in live:  # a reload that added it (or a service moved: removed, then added again)
                live[name] = rng.choice(("api", "web"))
                m.bind(live[name], name, phases, applicable=rng.sample(phases, rng.randint(1, 5)))
        elif op < 0.25:
            name = rng.choice(sorted(live))
            m.forget(live.pop(name), name)
        else:
            name = rng.choice(sorted(live))
            kind = rng.choice(("up", "up", "up", "down", "skipped", "late", "token", "lcp"))
            d = rng.lognormvariate(math.log(0.1), 1.5)
            if kind in ("up", "token", "lcp"):
                r = ProbeResult(name, live[name], 0.0, 0.0, d, "up", status=200,
                                phases=tuple(rng.expovariate(50) for _ in phases), latency_counted=True,
                                tls_not_after=rng.choice((None, 2e9 + step)),
                                token_requests=(TokenRequest(d / 3, rng.choice(("ok", "error")), "first"),)
                                if kind == "token" else (),
                                marks=(("lcp", d / 2),) if kind == "lcp" else ())
            elif kind == "down":
                r = ProbeResult(name, live[name], 0.0, 0.0, d, "down", rng.choice(("timeout", "connect", "dns")),
                                phases=tuple(rng.expovariate(50) for _ in phases), latency_counted=rng.random() < 0.5)
            else:
                r = ProbeResult(name, live[name], 0.0, 0.0, 0.0, "inconclusive",
                                "skipped" if kind == "skipped" else "agent_overload")
            m.observe(r, masked=rng.random() < 0.1)
        if rng.random() < 0.6:
            assert generate(reg) == generate_latest(reg), f"step {step}"
    text = generate(reg)
    assert text == generate_latest(reg)
    for name in names:  # a target's series are there while it is, and gone with it
        label = 'target="' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        assert (label.encode() in text) == (name in live), name
