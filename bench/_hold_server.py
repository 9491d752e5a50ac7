"""A local HTTP server that holds each request exactly `hold` seconds (for the benchmarks).

Run as its own process so its CPU is not counted against the agent: python bench/_hold_server.py PORT HOLD
"""
import asyncio
import sys

from aiohttp import web


async def main(port: int, hold: float) -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(hold)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096, reuse_address=True)
    await site.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
