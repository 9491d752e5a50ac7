"""A local HTTP server that holds each request exactly `hold` seconds (for the benchmarks).

Run as its own process so its CPU is not counted against the agent:
    python bench/_hold_server.py PORT HOLD [FAIL_SHARE [CERT KEY]]
With FAIL_SHARE (0.1 = one request in ten) that share is answered 503, spread evenly. With CERT and KEY
it speaks HTTPS, TLS 1.3 only.
"""
import asyncio
import random
import ssl
import sys

from aiohttp import web


async def main(port: int, hold: float, fail_share: float, tls: ssl.SSLContext | None) -> None:
    draw = random.Random(1).random  # the same failures in every run; spread over the targets as real ones are
    seen = [0]

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(hold)
        seen[0] += 1
        if draw() < fail_share:
            return web.Response(status=503, text="unavailable (benchmark)", headers={"X-Request-Id": str(seen[0])})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096, reuse_address=True, ssl_context=tls)
    await site.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    context = None
    if len(sys.argv) > 5:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(sys.argv[4], sys.argv[5])
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0, context))
