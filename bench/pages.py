"""The pages people read, as a phone and a laptop show them, for one or more source trees side by side:
an agent of each tree holding the demo's simulated month (and the month after it, live) serves `/` and the
month's `/report`, and headless Chromium (Debian's) reads each at 360x740 and 1280x900: the page's width
against the window's (wider: it scrolls sideways), its bytes, and the requests that failed (a 404 for an
icon...); and the bytes `/` sends with and without gzip.

    python bench/pages.py --root TREE [--root TREE ...]

Only 127.0.0.1 is used; each agent runs until its pages are read (bounded), then is stopped."""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.probes.browser.spec import find_chromium  # noqa: E402

SIZES = ((360, 740), (1280, 900))
WRITE = ("import sys, time; from agent.config import load_config; from agent.demo.history import write_history; "
         "print(write_history(load_config(sys.argv[1], probing=False), sys.argv[2], time.time()))")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(folder: Path, port: int) -> Path:
    """The demo's config without its browser check (one Chromium at a time here), on a port of its own."""
    text = (ROOT / "config" / "demo.yaml").read_text().replace("127.0.0.1:9810", f"127.0.0.1:{port}")
    lines, out, skip = text.splitlines(), [], False
    for line in lines:
        if line.startswith("  - name:"):
            skip = False
        if line.strip() == "type: browser":
            skip = True
            while out and not out[-1].startswith("  - name:"):
                out.pop()
            out.pop()
        if not skip:
            out.append(line)
    path = folder / "demo.yaml"
    path.write_text("\n".join(out) + "\n")
    return path


async def read(url: str) -> list[tuple[str, int, int, int, list[str]]]:
    from playwright.async_api import async_playwright

    rows = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
        for w, h in SIZES:
            page = await browser.new_page(viewport={"width": w, "height": h})
            failed: list[str] = []
            size = [0]

            async def seen(resp, failed=failed, size=size) -> None:
                size[0] += len(await resp.body())
                if resp.status >= 400:
                    failed.append(f"{resp.status} {resp.url.rsplit('/', 1)[-1]}")
            page.on("response", seen)
            await page.goto(url, wait_until="load")
            width = await page.evaluate("document.documentElement.scrollWidth")
            rows.append((f"{w}x{h}", width, w, size[0], failed))
            await page.close()
        await browser.close()
    return rows


def measure(tree: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="sla-pages-"))
    port = free_port()
    cfg, state = config(folder, port), folder / "state"
    month = subprocess.run([sys.executable, "-c", WRITE, str(cfg), str(state)], cwd=tree, capture_output=True,
                           text=True, timeout=300, check=True).stdout.strip()
    agent = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg), "--state-dir", str(state)],
                             cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # bounded: until it answers
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        time.sleep(12)  # a first evaluation of the month, as a person arriving after the start sees it
        for enc in ("identity", "gzip"):  # what travels: urllib leaves a gzip'd body as it came
            req = urllib.request.Request(base + "/", headers={"Accept-Encoding": enc, "Accept": "text/html"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                sent, how = len(resp.read()), resp.headers.get("Content-Encoding") or "none"
            print(f"{tree.name:<12} / asked with Accept-Encoding {enc}: {sent} bytes sent (Content-Encoding {how})",
                  flush=True)
        for path in ("/", f"/report?month={month}"):
            for size, width, window, got, failed in asyncio.run(read(base + path)):
                print(f"{tree.name:<12} {path:<22} {size:>9}: page {width:5d} px in a {window:4d} px window "
                      f"({'scrolls sideways' if width > window else 'fits'}), {got / 1000:6.1f} kB, "
                      f"failed requests: {', '.join(failed) or 'none'}", flush=True)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", action="append", type=Path, help="a source tree (default: this one)")
    args = ap.parse_args()
    if find_chromium() is None:
        sys.exit("needs Chromium (apt-get install chromium)")
    for tree in args.root or [ROOT]:
        measure(tree.resolve())


if __name__ == "__main__":
    main()
