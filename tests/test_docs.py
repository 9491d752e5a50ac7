"""The documentation stands alone and keeps up with the code.

Links and `docs/...` paths in README.md and docs/*.md resolve to files of this repository (no web links,
nothing outside it); docs/metrics.md names every metric the agent exports, every generated rule and
alert, and every HTTP path; docs/configuration.md names every configuration key the loader accepts; the
worked figures of docs/contract.md are what the code computes; and the columns of the stored minute
counts that docs/locations.md lists are those a stored minute holds.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from agent.app import Agent
from agent.calendar import Calendar
from agent.calendar.business import BusinessHours
from agent.config import ConfigError, load_config, parse_config
from agent.config.contract import KEYS as CONTRACT_KEYS
from agent.config.load import AGENT_FIELDS, EVIDENCE_FIELDS, TOP_KEYS
from agent.config.model import Contract
from agent.config.targets import NAME, SERVICE, TIMING
from agent.export.exposition import generate
from agent.export.server import Endpoints, build_app
from agent.probes import PROBE_TYPES
from agent.rules import rule_groups

from .conftest import ROOT
from .servers import closed_port

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC = {name: ROOT / "docs" / f"{name}.md" for name in ("contract", "metrics", "configuration")}


# -- reading Markdown -------------------------------------------------------------------------------------
def split_fences(text: str) -> tuple[str, str]:
    """(prose, code): the lines outside fenced code blocks, and the lines inside them."""
    prose, code, fence = [], [], ""
    for line in text.splitlines():
        mark = re.match(r"\s*(`{3,}|~{3,})", line)
        if mark and (not fence or mark.group(1).startswith(fence)):
            fence = "" if fence else mark.group(1)
            code.append("")
            prose.append("")
            continue
        (code if fence else prose).append(line)
        (prose if fence else code).append("")
    return "\n".join(prose), "\n".join(code)


def code_spans(prose: str) -> list[str]:
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", prose)


def links(prose: str) -> list[str]:
    """Targets of inline links and images, reference definitions and autolinks, outside code."""
    text = re.sub(r"(?<!`)`[^`\n]+`(?!`)", "", prose)
    out = re.findall(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    out += re.findall(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", text, re.M)
    out += re.findall(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]+)>", text)
    out += re.findall(r"(?<![(<\w])(https?://[^\s)>\]]+)", text)  # a bare URL is a link on most renderers
    return out


def slug(heading: str) -> str:
    """The anchor a heading gets on GitHub: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose, re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def resolve(page: Path, target: str) -> tuple[Path, str]:
    path, _, fragment = target.partition("#")
    return ((page.parent / path).resolve() if path else page.resolve()), fragment


def inside_repo(path: Path) -> bool:
    try:
        path.relative_to(ROOT.resolve())
    except ValueError:
        return False
    return True


# -- links and paths -------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve_inside_the_repository(page):
    prose, _ = split_fences(page.read_text(encoding="utf-8"))
    problems = []
    for target in links(prose):
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            problems.append(f"{target}: links to the outside (only files of this repository)")
            continue
        if target.startswith("/"):
            problems.append(f"{target}: an absolute path; write it relative to {page.name}")
            continue
        path, fragment = resolve(page, target)
        if not inside_repo(path):
            problems.append(f"{target}: leaves the repository")
        elif not path.is_file():
            problems.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            problems.append(f"{target}: no heading with the anchor #{fragment} in {path.name}")
    assert not problems, f"{page.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_docs_paths_exist(page):
    """Every `docs/...` path, backquoted in prose or written in a code block, is a file."""
    prose, code = split_fences(page.read_text(encoding="utf-8"))
    named = [span for span in code_spans(prose) if span.startswith("docs/")]
    named += re.findall(r"(?<![\w/.])(docs/[\w./-]*\w)", code)
    missing = []
    for name in named:
        path = (ROOT / name.split("#")[0].rstrip(".,;:")).resolve()
        if not inside_repo(path) or not path.is_file():
            missing.append(name)
    assert not missing, f"{page.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_mention_of_files_outside_the_repository(page):
    text = page.read_text(encoding="utf-8")
    assert "shared/" not in text.lower(), f"{page.name} mentions a shared/ folder"
    depth = len(page.resolve().parent.relative_to(ROOT.resolve()).parts)
    climbs = [m.group(0) for m in re.finditer(r"(?<![\w.])(?:\.\./)+", text) if m.group(0).count("../") > depth]
    assert not climbs, f"{page.name} names paths above the repository: {climbs}"


def test_readme_links_every_doc_and_keeps_two_setup_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    prose, _ = split_fences(text)
    listed = {resolve(ROOT / "README.md", t)[0] for t in links(prose)}
    for page in PAGES[1:]:
        assert page.resolve() in listed, f"README.md does not link {page.relative_to(ROOT)}"
    setup = re.search(r"^## Set-up.*?$(.*?)^## ", text, re.M | re.S)
    assert setup, "README.md has no Set-up section"
    blocks = re.findall(r"^```\w*\n(.*?)^```", setup.group(1), re.M | re.S)
    commands = [line for b in blocks for line in b.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2, f"the Set-up section must hold exactly two commands, it holds {commands}"


# -- metrics, rules, endpoints ---------------------------------------------------------------------------
def backquoted(name: str) -> str:
    prose, _ = split_fences(DOC[name].read_text(encoding="utf-8"))
    return "\n".join(code_spans(prose))


def documented_metric_names() -> set[str]:
    return set(re.findall(r"\bsla_[a-z0-9_]+", backquoted("metrics")))


async def exported_families(tmp_path: Path) -> dict[str, str]:
    """The families a started agent serves on /metrics: exposition name -> type."""
    from agent.report.signing import keygen

    port, key = closed_port(), keygen(tmp_path / "key")[0]
    cfg = parse_config(f"""
agent: {{listen: "127.0.0.1:0", location: docs}}
tickets: {{url: "http://127.0.0.1:{port}/export.csv"}}
reports: {{deliver: {{webhook: {{url: "http://127.0.0.1:{port}/report"}}}}}}
evidence: {{signing_key_file: "{key}", witnesses: {{webhooks: ["http://127.0.0.1:{port}/witness"]}},
           timestamping: {{tsa: ["http://127.0.0.1:{port}/tsr"]}}}}
targets: [{{name: api, service: api, url: "http://127.0.0.1:{port}/", interval: 1s, timeout: 2s}}]
controls: [{{name: control, url: "http://127.0.0.1:{port}/", interval: 1s, timeout: 2s}}]
""")
    agent = Agent(cfg, state_dir=str(tmp_path / "state"))
    await agent.start()
    try:
        text = generate(agent.registry).decode()
    finally:
        await agent.stop()
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


async def test_every_exported_metric_is_documented(tmp_path):
    families = await exported_families(tmp_path)
    assert len(families) > 20, families
    missing = sorted(set(families) - documented_metric_names())
    assert not missing, f"docs/metrics.md does not name these exported metrics: {missing}"


async def test_metrics_doc_names_no_metric_that_does_not_exist(tmp_path):
    families = await exported_families(tmp_path)
    samples = set(families) | {f + s for f, t in families.items() if t in ("histogram", "summary")
                               for s in ("_bucket", "_sum", "_count")}
    unknown = sorted(documented_metric_names() - samples)
    assert not unknown, f"docs/metrics.md names metrics the agent does not export: {unknown}"


def test_every_generated_rule_and_alert_is_documented():
    spans = backquoted("metrics")
    groups = rule_groups(load_config(ROOT / "config" / "crm360.yaml"))
    rules = [r for g in groups for r in g["rules"]]
    missing = [g["name"] for g in groups if g["name"] not in spans.splitlines()]
    for r in rules:
        if "alert" in r:
            if not re.search(rf"(?<![\w]){re.escape(r['alert'])}(?![\w])", spans):
                missing.append(r["alert"])
        else:  # one family per window: sla:x:rate5m ... sla:x:rate3d
            family = re.sub(r":rate\w+$", ":rate", r["record"])
            if family not in spans:
                missing.append(r["record"])
    assert not missing, f"docs/metrics.md does not describe: {sorted(set(missing))}"


def test_every_http_path_is_documented(tmp_path):
    from agent.report.archive import Archive

    app = build_app(Endpoints(registry=None, ready=lambda: (True, ""), status=dict,  # type: ignore[arg-type]
                              reports=Archive(tmp_path)))
    # /reports/{month}/{revision}/{name} is documented as /reports/YYYY-MM/rN/FILE
    paths = {re.sub(r"\{month\}/\{revision\}/\{name\}", "YYYY-MM/rN/FILE", route.resource.canonical)
             for route in app.router.routes()}
    spans = code_spans(split_fences(DOC["metrics"].read_text(encoding="utf-8"))[0])
    documented = {span.split("?")[0] for span in spans if span.startswith("/")}
    missing = sorted(paths - documented)
    assert not missing, f"docs/metrics.md does not describe the endpoints {missing}"


# -- configuration keys ------------------------------------------------------------------------------------
TARGET = 'targets: [{name: a, service: api, url: "https://example.invalid/"}]\n'
# Sections whose own table of keys is nested inside another reader: an unknown key makes the loader say
# which keys are valid there, and that list is the table.
PROBE_CONTRACT = """
contract:
  availability: {zzz: 1}
  latency: {zzz: 1, objectives: [{below: 2s, ratio: 0.9, zzz: 1}]}
  services: {api: {zzz: 1}}
  business_hours: {zzz: 1}
  tickets: {zzz: 1, deadlines: {zzz: 1}, columns: {zzz: 1}}
  locations: {zzz: 1}
  maintenance: [{weekly: {zzz: 1}}, {once: {zzz: 1}}, {zzz: 1}]
  exclusions: [{zzz: 1}]
  objectives: [{zzz: 1}, {availability: {zzz: 1}}, {latency: {zzz: 1, bounds: [{zzz: 1}]}},
               {ticket_response: {zzz: 1}}]
"""


def loader_keys(text: str) -> set[str]:
    """Dotted paths of every key the loader names as valid where `zzz` was refused."""
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    out = set()
    for issue in exc.value.issues:
        m = re.search(r"valid keys here: (.+)$", issue.message)
        if m and issue.path.endswith(".zzz"):
            where = re.sub(r"\[\d+\]", "[]", issue.path[:-len(".zzz")])
            where = where.replace("contract.services.api", "contract.services.<name>")
            out |= {f"{where}.{key}" for key in m.group(1).split(", ")}
    return out


def test_contract_sections_are_probed():
    keys = loader_keys(PROBE_CONTRACT + TARGET)
    for section in ("availability", "latency", "services.<name>", "business_hours", "tickets", "tickets.deadlines",
                    "tickets.columns", "locations", "maintenance[].weekly", "maintenance[].once", "exclusions[]",
                    "latency.objectives[]", "objectives[].latency.bounds[]", "objectives[].ticket_response"):
        assert any(k.startswith(f"contract.{section}.") for k in keys), section


def config_keys() -> set[str]:
    keys = set(TOP_KEYS)
    keys |= {f"agent.{f.key}" for f in AGENT_FIELDS}
    keys |= {f"evidence.{f.key}" for f in EVIDENCE_FIELDS}
    keys |= {f"contract.{k}" for k in CONTRACT_KEYS}
    return keys | loader_keys(PROBE_CONTRACT + TARGET)


def test_every_config_key_is_documented():
    spans = code_spans(split_fences(DOC["configuration"].read_text(encoding="utf-8"))[0])
    have = set(spans)

    def documented(key: str) -> bool:
        return key in have or any(s.startswith(key + ".") for s in have)

    missing = sorted(k for k in config_keys() if not documented(k))
    assert not missing, f"docs/configuration.md does not describe these keys: {missing}"


def test_every_target_key_of_every_type_is_documented():
    spans = set(code_spans(split_fences(DOC["configuration"].read_text(encoding="utf-8"))[0]))
    keys = {f.key for f in (NAME, SERVICE, *TIMING)} | {"type"}
    for ptype in PROBE_TYPES.values():
        keys |= {f.key for f in ptype.fields}
        assert f"type: {ptype.name}" in spans, f"no section for type: {ptype.name}"
    missing = sorted(keys - spans)
    assert not missing, f"docs/configuration.md does not describe these target keys: {missing}"


# -- the worked figures of docs/contract.md are the code's -------------------------------------------------
def contract_text() -> str:
    return re.sub(r"\s+", " ", DOC["contract"].read_text(encoding="utf-8"))


def test_worked_budget_of_a_30_day_month():
    cal = Calendar(Contract())
    start, end = cal.month_bounds(2026, 11)
    m0, m1 = int(start // 60), int(end // 60)
    counted = int((~cal.mask(m0, m1)).sum())
    assert (m1 - m0, counted) == (43_200, 42_720)
    text = contract_text()
    assert "43,200" in text and "42,720" in text and "427.2 min = 7 h 07 min 12 s" in text
    assert round(0.01 * counted, 1) == 427.2


def test_worked_p1_deadline_over_a_weekend():
    tz = dt.timezone(dt.timedelta(hours=1))
    opened = dt.datetime(2026, 11, 27, 17, 0, tzinfo=tz)  # a Friday
    due = BusinessHours(Contract()).deadline(opened.timestamp(), 8 * 3600)
    assert dt.datetime.fromtimestamp(due, tz) == dt.datetime(2026, 11, 30, 15, 30, tzinfo=tz)
    assert "Friday 27 November 2026 at 17:00" in contract_text()
    assert "Monday 30 November 2026 at 15:30" in contract_text()


def test_worked_latency_allowance():
    requests = 7 * 86400
    assert requests == 604_800
    slow_500, slow_1s = 12_096, 6_048
    assert (requests - slow_500) / requests >= 0.98 > (requests - slow_500 - 1) / requests
    assert (requests - slow_1s) / requests >= 0.99 > (requests - slow_1s - 1) / requests
    assert "| 604,800 | 12,096 | 6,048 |" in contract_text()


# -- the stored layout docs/locations.md gives is the store's ----------------------------------------------
def test_the_minute_count_columns_of_locations_md_are_those_stored(tmp_path):
    """A report host reading a pulled ledger goes by this list: each named column must hold what its name
    says, in that order, and no column may be listed that is not stored (a `masked` one was)."""
    import sqlite3
    import zlib

    import numpy as np

    from agent.ledger import DTYPE, Ledger
    from agent.probes import ProbeResult
    from agent.store import Store
    text = re.sub(r"\s+", " ", (ROOT / "docs" / "locations.md").read_text(encoding="utf-8"))
    bullet = re.search(r"`minutes`: (.+?);", text).group(1)
    spans = code_spans(bullet.partition("columns")[2])
    assert "below" in spans, f"docs/locations.md must list the columns of `minutes` by name: {bullet}"
    named = spans[:spans.index("below") + 1]
    thresholds = (0.5, 1.0)
    t0 = 1_780_000_000 - 1_780_000_000 % 3600
    led = Ledger(thresholds, day_start=lambda t: t - t % 86400)
    led.anchor(t0 + 3600)
    for when, dur, outcome, kind, counted in ((t0 + 1, 0.1, "up", "", True), (t0 + 2, 0.7, "up", "", True),
                                              (t0 + 3, 1.5, "up", "", True), (t0 + 4, 5.0, "down", "timeout", True),
                                              (t0 + 5, 0.0, "down", "connect_refused", False),
                                              (t0 + 6, 0.0, "inconclusive", "agent_error", False)):
        led.add(ProbeResult("t", "web", when, 0.0, dur, outcome, kind, latency_counted=counted), masked=True)
    store = Store(tmp_path, thresholds=thresholds)
    store.write(*led.take_dirty(), {"t": "web"}, now=t0 + 60)
    store.close()
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        (blob,) = conn.execute("SELECT counts FROM minutes").fetchone()
    stored = np.frombuffer(zlib.decompress(blob), dtype=DTYPE).reshape(60, -1)[0].tolist()
    meaning = {"up": 3, "down": 2, "inconclusive": 1, "latency": 4}  # what each name says of this minute
    expected = [meaning.get(name, -1) for name in named[:-1]] + [1, 2]  # below 0.5 s, below 1 s
    assert stored == expected, f"docs/locations.md lists {named}; a minute stores {stored}"
