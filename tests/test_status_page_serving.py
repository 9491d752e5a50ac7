"""How `/` is served: written beside the event loop the probes are timed on (a month of strips for many
targets is hundreds of kB of markup), and gzip'd for a client that takes it."""
from __future__ import annotations

import gzip
import threading

import aiohttp

from agent import view
from agent.app import Agent
from agent.config import parse_config

from .servers import closed_port
from .test_daemon import wait_for


async def test_the_page_is_written_off_the_loop_and_gzipped_for_who_takes_it(tmp_path, monkeypatch):
    written_in: list[str] = []
    real = view.render_page

    def render(*args):
        written_in.append(threading.current_thread().name)
        return real(*args)
    monkeypatch.setattr(view, "render_page", render)
    cfg = parse_config(f'agent: {{listen: "127.0.0.1:0"}}\ntargets: [{{name: api, service: api, '
                       f'url: "http://127.0.0.1:{closed_port()}/", interval: 1s, timeout: 2s}}]')
    agent = Agent(cfg, state_dir=str(tmp_path))
    await agent.start()
    try:
        await wait_for(lambda: agent.results_seen >= 1, "a result")
        async with aiohttp.ClientSession(auto_decompress=False) as s:
            async with s.get(agent.server.url + "/", headers={"Accept-Encoding": "gzip"}) as resp:
                packed, encoding, vary = await resp.read(), resp.headers.get("Content-Encoding"), resp.headers["Vary"]
            async with s.get(agent.server.url + "/", headers={"Accept-Encoding": "identity"}) as resp:
                plain, plain_encoding = await resp.read(), resp.headers.get("Content-Encoding")
    finally:
        await agent.stop()
    assert encoding == "gzip" and vary == "Accept-Encoding" and plain_encoding is None
    page = gzip.decompress(packed)
    assert page.startswith(b"<!doctype html>") and len(packed) < len(page) / 3
    assert plain.startswith(b"<!doctype html>")
    assert written_in and threading.main_thread().name not in written_in
