"""Security: secrets never leave the agent; TLS and basic auth (web.yml); hostile requests to the
endpoints are refused cleanly; bandit finds nothing of medium or high severity."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import io
import json
import logging
import re
import shutil
import sqlite3
import ssl
import subprocess
import sys
import tarfile
import threading
import time
from urllib.parse import quote, unquote, unquote_plus

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from agent import logs
from agent.app import Agent
from agent.config import parse_config
from agent.redact import Redactor
from agent.report import build_report
from agent.report import render
from agent.report.bundle import export_bundle
from agent.store import DB_NAME

from .conftest import ROOT
from .servers import closed_port, http_server, make_certs
from .test_daemon import wait_for

SECRETS = {"url": "Ur1Passw0rdX", "token": "tok-9f8e7d6c5b4a", "file": "fileKey-77aa88bb", "basic": "bAs1cPass-991",
           "query": "qTok-55cc66dd"}


async def test_secrets_never_appear_in_logs_metrics_status_or_reports(tmp_path, monkeypatch):
    seen_headers: list[dict] = []

    async def denied(request):  # a server that echoes what it got, where the journal keeps it
        seen_headers.append(dict(request.headers))
        echo = json.dumps({"headers": dict(request.headers), "query": request.query_string})
        return web.Response(status=401, text="no " + echo, headers={
            "X-Echo-Auth": request.headers.get("Authorization", "-"), "X-Echo-Query": request.query_string,
            "X-Echo-Key": request.headers.get("X-Api-Key", "-")})
    app = web.Application()
    app.router.add_get("/", denied)
    (tmp_path / "key").write_text(SECRETS["file"] + "\n")
    stream = io.StringIO()
    logs.setup("debug", stream=stream)
    async with http_server(app) as base:
        host = base.split("//")[1]
        cfg_text = f"""
agent: {{listen: "127.0.0.1:0", flush_interval: 200ms}}
evidence: {{headers: [X-Echo-Auth, X-Echo-Query, X-Echo-Key], body_bytes: 4096}}
targets:
  - name: with-query-token
    service: api
    url: "{base}/?token=${{SLA_TEST_QTOKEN}}"
    interval: 200ms
    timeout: 2s
    max_in_flight: 11
  - name: with-userinfo
    service: api
    url: "http://svc:{SECRETS['url']}@{host}/"
    interval: 200ms
    timeout: 2s
    max_in_flight: 11
  - name: with-token
    service: api
    url: "{base}/"
    interval: 200ms
    timeout: 2s
    max_in_flight: 11
    headers: {{Authorization: "Bearer ${{SLA_TEST_TOKEN}}"}}
    header_files: {{X-Api-Key: key}}
  - name: basic
    service: web
    url: "{base}/"
    interval: 200ms
    timeout: 150ms
    basic_auth: {{username: ops, password: "${{SLA_TEST_BASIC}}"}}
  - name: refused
    service: web
    url: "http://svc:{SECRETS['url']}@127.0.0.1:{closed_port()}/"
    interval: 200ms
    timeout: 150ms
"""
        (tmp_path / "cfg.yaml").write_text(cfg_text)
        env = {"SLA_TEST_TOKEN": SECRETS["token"], "SLA_TEST_BASIC": SECRETS["basic"], "SLA_TEST_QTOKEN": SECRETS["query"]}
        cfg = parse_config(cfg_text, str(tmp_path / "cfg.yaml"), environ=env, base_dir=tmp_path)
        from agent.logs import set_redactor
        from agent.redact import Redactor
        set_redactor(Redactor(cfg.secrets))
        agent = Agent(cfg, state_dir=str(tmp_path / "state"))
        results: list = []
        agent.listeners.append(results.append)
        await agent.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while sum(1 for r in results if r.target == "refused") < 3 or len(seen_headers) < 9:
            assert loop.time() < deadline
            await asyncio.sleep(0.05)
        await agent.evaluate_now()
        async with aiohttp.ClientSession() as s:
            texts = []
            for path in ("/metrics", "/api/v1/status", "/api/v1/report?month=2026-11", "/report?month=2026-11",
                         "/api/v1/journal"):
                async with s.get(agent.server.url + path) as resp:
                    texts.append(await resp.text())
        logging.getLogger("sla_agent.test").error("an error mentioning %s", f"http://u:{SECRETS['url']}@h/")
        await agent.stop()
    assert '"records": [' in texts[-1] and "X-Echo-Auth" in texts[-1]  # the journal kept the echoed headers
    from agent.report.bundle import export_bundle
    import tarfile
    import time as _time
    later = _time.time() + 3600  # every record before the cut-off
    month = _time.strftime("%Y-%m", _time.gmtime(later + 3600))
    export_bundle(cfg, str(tmp_path / "state"), month, later, tmp_path / "b.tar.gz")
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        bundle = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    from agent.report.unbundle import write_journal
    (written, _), = write_journal(tmp_path / "b.tar.gz", tmp_path / "lines")
    lines = [json.loads(x) for x in written.read_bytes().splitlines()]
    echoed = [x for x in lines if x["status"] == 401]
    assert echoed and all("<redacted>" in json.dumps(x["headers"]) + (x["body"] or "") for x in echoed)
    journal_rows = blobs = json.dumps(lines)
    # the secrets were really sent to the server
    sent = json.dumps(seen_headers)
    assert SECRETS["token"] in sent and SECRETS["file"] in sent
    assert base64.b64encode(f"ops:{SECRETS['basic']}".encode()).decode() in sent
    assert base64.b64encode(f"svc:{SECRETS['url']}".encode()).decode() in sent
    report = build_report(cfg, str(tmp_path / "state"), "2026-11", 1_795_700_000.0)
    outputs = {"logs": stream.getvalue(), "errors": json.dumps([r.error for r in results]),
               "metrics+status+reports+journal": "\n".join(texts), "journal rows": journal_rows, "bodies": blobs,
               **{f"bundle {name}": data.decode("utf-8", "replace") for name, data in bundle.items()},
               **{f"report.{fmt}": render(report, fmt) for fmt in ("json", "html", "markdown", "text")}}
    basic_b64 = base64.b64encode(f"ops:{SECRETS['basic']}".encode()).decode()
    url_b64 = base64.b64encode(f"svc:{SECRETS['url']}".encode()).decode()
    for where, text in outputs.items():
        for name, secret in list(SECRETS.items()) + [("basic-b64", basic_b64), ("url-b64", url_b64)]:
            assert secret not in text, f"{name} secret leaked into {where}"
    assert "<redacted>" in outputs["logs"]
    logs.setup("info")


OAUTH_SECRET = "S3cret+Value/42=xyz&q"  # nosec B105 - a test credential, with characters a form escapes


def _forms_of_secret(text: str) -> list[str]:
    """How the OAuth2 secret shows in `text` under any encoding: as is (after HTML escapes), after
    percent-decoding either way, or five bytes of it (or of its percent-encoded form) inside base64
    at any alignment."""
    found = []
    plain = html.unescape(text)
    for name, decoded in (("plain", plain), ("percent", unquote(plain)), ("form", unquote_plus(plain))):
        if OAUTH_SECRET in decoded:
            found.append(name)
    pieces = {form[i:i + 5].encode() for form in (OAUTH_SECRET, quote(OAUTH_SECRET, safe=""))
              for i in range(len(form) - 4)}
    for run in re.findall(r"[A-Za-z0-9+/]{7,}", plain):
        for pad in range(4):
            chunk = "A" * pad + run
            raw = base64.b64decode(chunk[:len(chunk) // 4 * 4])
            found += [f"base64 {run}" for piece in pieces if piece in raw][:1]
    return found


async def test_credentials_a_token_endpoint_echoes_are_redacted_in_every_encoding(tmp_path):
    """A token endpoint that quotes the request in its error: the Authorization header (HTTP Basic, base64
    of `id:secret` percent-encoded) and the form body (client_secret percent-encoded, '+' for a space).
    No form of the secret reaches the log, /api/v1/status, the status page, the journal or the bundle."""
    echoed: list[str] = []

    async def token(request: web.Request) -> web.Response:
        echoed.append(f"bad client: {request.headers.get('Authorization', '-')} {await request.text()}")
        return web.json_response({"error": echoed[-1]}, status=400)
    app = web.Application()
    app.router.add_post("/token", token)
    stream = io.StringIO()
    async with http_server(app) as base:
        targets = "".join(f"""
  - name: oauth-{how}
    service: api
    url: "{base}/api"
    interval: 200ms
    timeout: 2s
    max_in_flight: 11
    auth: {{oauth2: {{token_url: "{base}/token", client_id: cid, client_secret: "${{SLA_TEST_OAUTH}}",
                     client_auth: {how}}}}}""" for how in ("basic", "post"))
        (tmp_path / "cfg.yaml").write_text(f'agent: {{listen: "127.0.0.1:0", flush_interval: 200ms}}\n'
                                           f'targets:{targets}\n')
        cfg = parse_config((tmp_path / "cfg.yaml").read_text(), str(tmp_path / "cfg.yaml"),
                           environ={"SLA_TEST_OAUTH": OAUTH_SECRET})
        logs.setup("debug", Redactor(cfg.secrets), stream=stream)
        agent = Agent(cfg, state_dir=str(tmp_path / "state"))
        results: list = []
        agent.listeners.append(results.append)
        await agent.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while {r.target for r in results} != {"oauth-basic", "oauth-post"} or len(results) < 6:
            assert loop.time() < deadline
            await asyncio.sleep(0.05)
        await agent.flush()
        async with aiohttp.ClientSession() as s:
            texts = {}
            for path in ("/api/v1/status", "/", "/api/v1/journal"):
                async with s.get(agent.server.url + path) as resp:
                    texts[path] = await resp.text()
        await agent.stop()
    logs.setup("info")
    bundle = tmp_path / "b.tar.gz"
    # the report covers closed minutes, up to a settle before `now`: two minutes on, the last record's is one
    export_bundle(cfg, str(tmp_path / "state"), time.strftime("%Y-%m", time.gmtime()), time.time() + 120, bundle)
    with tarfile.open(bundle) as tar:
        texts["bundle"] = "\n".join(tar.extractfile(m).read().decode("utf-8", "replace") for m in tar.getmembers()
                                    if m.isfile())
    with sqlite3.connect(tmp_path / "state" / DB_NAME) as db:
        texts["journal rows"] = json.dumps(db.execute("SELECT * FROM journal").fetchall())
    texts["log"] = stream.getvalue()
    texts["errors"] = json.dumps([r.error for r in results])
    # the endpoint did echo the secret, in the three encodings, and the echo reached every output
    sent = "\n".join(echoed)
    assert "Basic Y2lk" in sent and "client_secret=S3cret%2BValue%2F42%3Dxyz%26q" in sent
    assert {f.split()[0] for f in _forms_of_secret(sent)} == {"percent", "form", "base64"}
    for where, text in texts.items():
        assert _forms_of_secret(text) == [], f"the secret leaked into {where}"
        assert where == "/" or "bad client" in text and "<redacted>" in text, where  # the page shows no errors


def test_file_headers_and_url_passwords_are_redacted_as_sent(tmp_path):
    """A header file's token is masked when echoed alone, as a secret header's is; a URL password with a
    percent-escape is sent decoded (in the Basic credentials aiohttp builds): both forms are masked."""
    (tmp_path / "auth").write_text("Bearer fileBearer-4242aa\n")
    cfg = parse_config('targets: [{name: a, service: web, url: "http://svc:p%40ss-Word9@127.0.0.1:9/", '
                       'header_files: {X-Upstream-Auth: auth}}]\n', base_dir=tmp_path)
    redact = Redactor(cfg.secrets)
    basic = base64.b64encode(b"svc:p@ss-Word9").decode()
    text = redact(f"token fileBearer-4242aa; password p@ss-Word9; Basic {basic}")
    assert text == "token <redacted>; password <redacted>; Basic <redacted>", text


def test_a_secret_a_server_decodes_and_echoes_in_its_own_encoding_is_redacted():
    """A server that decodes the form and writes the secret back encodes it its own way: Python's quote
    leaves '/', JavaScript's encodeURIComponent "!*'()", some libraries write lower-case hex, a JSON
    error escapes '/' or non-ASCII. Only the forms the agent itself sends were masked."""
    secret = "S3cret+Value/42=xyz&q (é)!"
    redact = Redactor([secret])
    lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe=""))
    echoes = [quote(secret), quote(secret, safe="!*'()"), lower_hex,
              json.dumps(secret), json.dumps(secret).replace("/", "\\/"), json.dumps(secret, ensure_ascii=False)]
    for echo in echoes:
        assert redact(f"error: {echo}.") in ("error: <redacted>.", 'error: "<redacted>".'), echo


def test_check_config_errors_do_not_echo_secrets(tmp_path):
    (tmp_path / "c.yaml").write_text('targets: [{name: a, service: web, url: "http://u:' + SECRETS["url"] +
                                     '@127.0.0.1:9/", interval: fast}]\n')
    proc = subprocess.run([sys.executable, "-m", "agent", "check-config", str(tmp_path / "c.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and SECRETS["url"] not in proc.stderr + proc.stdout


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("web-certs"))


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_web_yml_tls_and_basic_auth(tmp_path, certs):
    hashed = bcrypt.hashpw(b"scrape-pw", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(f"tls_server_config:\n  cert_file: {certs.good_cert}\n  key_file: {certs.good_key}\n"
                                      f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    cfg = parse_config(f'agent: {{listen: "127.0.0.1:0", web_config_file: "{tmp_path / "web.yml"}"}}\n'
                       f'targets: [{{name: a, service: web, url: "http://127.0.0.1:{closed_port()}/"}}]')
    agent = Agent(cfg, state_dir=str(tmp_path / "state"))
    await agent.start()
    try:
        assert agent.server.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
            async with s.get(agent.server.url + "/metrics") as resp:
                assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
            async with s.get(agent.server.url + "/metrics", headers=_basic("prometheus", "wrong")) as resp:
                assert resp.status == 401
            async with s.get(agent.server.url + "/metrics", headers=_basic("nobody", "scrape-pw")) as resp:
                assert resp.status == 401
            for _ in range(2):  # the second time from the cache
                async with s.get(agent.server.url + "/metrics", headers=_basic("prometheus", "scrape-pw")) as r:
                    assert r.status == 200 and "sla_probes_total" in await r.text()
        async with aiohttp.ClientSession() as s:  # plain HTTP to a TLS port is refused
            with pytest.raises(aiohttp.ClientError):
                async with s.get(agent.server.url.replace("https", "http") + "/metrics") as resp:
                    await resp.read()
    finally:
        await agent.stop()


async def _raw(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


async def test_endpoints_reject_oversize_and_malformed_requests(tmp_path):
    cfg = parse_config(f'agent: {{listen: "127.0.0.1:0"}}\n'
                       f'targets: [{{name: a, service: web, url: "http://127.0.0.1:{closed_port()}/"}}]')
    agent = Agent(cfg, state_dir=str(tmp_path / "state"))
    await agent.start()
    port = agent.server.port
    try:
        huge_header = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
        assert (await _raw(port, huge_header)).split(b"\r\n")[0].split()[1] in (b"400", b"431")
        long_url = b"GET /" + b"a" * 50_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert (await _raw(port, long_url)).split(b"\r\n")[0].split()[1] in (b"400", b"414")
        assert (await _raw(port, b"\x16\x03\x01garbage\r\n\r\n")).split(b"\r\n")[0].split()[1] == b"400"
        body = b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        assert (await _raw(port, body)).split(b"\r\n")[0].split()[1] == b"413"
        post = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        assert (await _raw(port, post)).split(b"\r\n")[0].split()[1] == b"405"
        bad_month = b"GET /report?month=../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"
        assert (await _raw(port, bad_month)).split(b"\r\n")[0].split()[1] == b"400"
        ok = await _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200")  # still serving
    finally:
        await agent.stop()


def test_bandit_finds_no_medium_or_high_issue():
    exe = shutil.which("bandit")
    assert exe, "bandit is a test dependency (pip install -e '.[test]')"
    proc = subprocess.run([exe, "-r", str(ROOT / "agent"), "-ll", "-f", "json", "-q"], capture_output=True,
                          text=True, timeout=300)
    report = json.loads(proc.stdout)
    issues = [f"{i['filename']}:{i['line_number']}: {i['issue_severity']} {i['test_id']} {i['issue_text']}"
              for i in report["results"] if i["issue_severity"] in ("MEDIUM", "HIGH")]
    assert issues == []


class CheckpwSpy:
    """bcrypt.checkpw as it is, noting on which thread each call ran and the cost of the hash it took;
    `gate` (when set up) holds every call until the test opens it."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[tuple[int, int]] = []  # (thread ident, cost)
        self.gate: threading.Event | None = None
        self.real = bcrypt.checkpw
        monkeypatch.setattr(bcrypt, "checkpw", self)

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls.append((threading.get_ident(), int(hashed[4:6])))
        if self.gate is not None:
            self.gate.wait(20)
        return self.real(password, hashed)


@contextlib.asynccontextmanager
async def agent_behind_basic_auth(tmp_path, cost: int, extra: str = ""):
    """A real agent whose web.yml has the user `prometheus` (password `scrape-pw`, a hash of `cost`),
    probing a real local server."""
    hashed = bcrypt.hashpw(b"scrape-pw", bcrypt.gensalt(rounds=cost)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    async with http_server(app) as base:
        cfg = parse_config(f'agent: {{listen: "127.0.0.1:0", web_config_file: "{tmp_path / "web.yml"}"{extra}}}\n'
                           f'targets: [{{name: api, service: api, url: "{base}/", interval: 100ms, timeout: 2s}}]')
        agent = Agent(cfg, state_dir=str(tmp_path / "state"))
        await agent.start()
        try:
            yield agent
        finally:
            await agent.stop()


async def test_basic_auth_verifies_off_the_loop_at_one_cost_whoever_asks(tmp_path, monkeypatch, caplog):
    """bcrypt ran on the event loop; an unknown user cost a verification of another cost than a known one
    (user names could be told by the answer's time); a password over 72 bytes was a 500 and an ERROR."""
    spy = CheckpwSpy(monkeypatch)
    loop_thread = threading.get_ident()
    caplog.set_level(logging.WARNING)
    attempts = [("prometheus", "wrong"), ("nobody", "scrape-pw"), ("prometheus", "x" * 73),
                ("prometheus", "é" * 40), ("nobody", "x" * 73)]
    async with agent_behind_basic_auth(tmp_path, cost=5) as agent:
        url = agent.server.url + "/metrics"
        async with aiohttp.ClientSession() as s:
            statuses, costs = [], []
            for user, password in attempts:
                before = len(spy.calls)
                async with s.get(url, headers=_basic(user, password)) as resp:
                    statuses.append(resp.status)
                costs.append([cost for _, cost in spy.calls[before:]])
            before = len(spy.calls)
            for _ in range(3):  # the first verified, the next two from the cache
                async with s.get(url, headers=_basic("prometheus", "scrape-pw")) as resp:
                    assert resp.status == 200
            verified = len(spy.calls) - before
    assert statuses == [401] * len(attempts)
    assert costs == [[5]] * len(attempts), f"bcrypt calls (and their cost) per refused attempt: {costs}"
    assert verified == 1
    on_loop = sum(1 for thread, _ in spy.calls if thread == loop_thread)
    assert on_loop == 0, f"{on_loop} of {len(spy.calls)} bcrypt verifications ran on the event loop's thread"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_basic_auth_refuses_attempts_beyond_a_short_queue(tmp_path, monkeypatch):
    """Wrong passwords from many clients at once wait for one verifier, a few of them at most; the rest
    get a 429 at once, and a scraper whose password passed before is still let in."""
    from agent.export import basicauth

    spy = CheckpwSpy(monkeypatch)
    monkeypatch.setattr(basicauth, "MAX_WAITING", 4, raising=False)
    async with agent_behind_basic_auth(tmp_path, cost=4) as agent:
        url = agent.server.url + "/healthz"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            async with s.get(url, headers=_basic("prometheus", "scrape-pw")) as resp:
                assert resp.status == 200
            spy.gate = threading.Event()

            async def attempt(i: int) -> tuple[int, str | None]:
                async with s.get(url, headers=_basic("prometheus", f"guess-{i}")) as resp:
                    return resp.status, resp.headers.get("Retry-After")

            flood = [asyncio.create_task(attempt(i)) for i in range(12)]
            try:
                await wait_for(lambda: sum(1 for t in flood if t.done()) >= 8, "8 attempts refused")
                async with s.get(url, headers=_basic("prometheus", "scrape-pw")) as resp:
                    cached = resp.status
            finally:
                spy.gate.set()
            answers = await asyncio.gather(*flood)
    assert sorted(answers) == [(401, None)] * 4 + [(429, "1")] * 8
    assert cached == 200
    assert len(spy.calls) == 1 + 4


async def test_probes_stay_decided_and_healthz_answers_during_a_wrong_password_flood(tmp_path):
    """Eight clients sending wrong passwords, no credentials needed, held the loop in bcrypt: most probes
    of that time turned inconclusive and /healthz waited seconds."""
    results: list = []
    async with agent_behind_basic_auth(tmp_path, cost=11, extra=", loop_lag_bound: 100ms") as agent:
        agent.listeners.append(results.append)
        url = agent.server.url
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

            async def get(path: str, user: str, password: str) -> int:
                async with s.get(url + path, headers=_basic(user, password)) as resp:
                    await resp.read()
                    return resp.status

            assert await get("/healthz", "prometheus", "scrape-pw") == 200  # its pair verified once, then cached

            async def client(i: int) -> list[int]:
                return [await get("/metrics", "prometheus", f"guess-{i}-{k}") for k in range(2)]

            start = agent.clock.monotonic()
            flood = [asyncio.create_task(client(i)) for i in range(8)]
            health = []
            while not all(t.done() for t in flood) and len(health) < 50:
                health.append(await get("/healthz", "prometheus", "scrape-pw"))
                await asyncio.sleep(0.05)  # paces the health checks (bounded by count); no assertion on time
            refused = [status for t in flood for status in await t]
            end = agent.clock.monotonic()
    during = [r for r in results if start <= r.mono_start <= end]
    assert refused == [401] * 16 and health and set(health) == {200}
    assert len(during) >= 5, f"only {len(during)} probes ran during the flood"
    inconclusive = sum(1 for r in during if r.outcome == "inconclusive")
    assert inconclusive == 0, f"{inconclusive} of {len(during)} probes inconclusive during the flood"
