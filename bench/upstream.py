"""A minimal, fast upstream for the benchmark: fixed realistic bodies, no state, so that the
upstream is never the bottleneck. `python -m bench.upstream PORT [EVENT_GAP_MS]`."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from bench.bodies import RUN_JSON, STEPS_JSON, stream_events

_HEADERS = {"content-type": "application/json", "openai-version": "2020-10-01", "openai-processing-ms": "23",
            "x-request-id": "req_bench0000000000000000000000"}


def make_app(event_gap_s: float = 0.005) -> web.Application:
    events = stream_events()

    async def run(request: web.Request) -> web.Response:
        return web.Response(body=RUN_JSON, headers=_HEADERS)

    async def steps(request: web.Request) -> web.Response:
        return web.Response(body=STEPS_JSON, headers=_HEADERS)

    async def create_run(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8",
                                           "x-request-id": _HEADERS["x-request-id"]})
        await resp.prepare(request)
        for frame in events:
            await resp.write(frame)
            if event_gap_s:
                await asyncio.sleep(event_gap_s)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/v1/threads/{t}/runs/{r}", run)
    app.router.add_get("/v1/threads/{t}/runs/{r}/steps", steps)
    app.router.add_post("/v1/threads/{t}/runs", create_run)
    return app


def main() -> None:
    port = int(sys.argv[1])
    gap = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.005
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(gap), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
