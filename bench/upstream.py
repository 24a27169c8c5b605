"""A minimal, fast upstream for the benchmark: fixed realistic bodies, no state, so that the
upstream is never the bottleneck. `python -m bench.upstream PORT [EVENT_GAP_MS]`.

`POST /v1/responses` answers a plain response, or with `"stream": true` a long streamed one
(RESPONSE_STREAM_EVENTS events, one every RESPONSE_DELTA_GAP_S, like tokens arriving). Two
request headers, which only the benchmark's memory part sends, ask for an outsized answer:
`X-Bench-Events: N` (a stream of N events, sent as fast as possible) and `X-Bench-Output-Bytes: N`
(a plain response whose output text is N bytes)."""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

from bench.bodies import RUN_JSON, STEPS_JSON, response_json, response_stream_events, stream_events

_HEADERS = {"content-type": "application/json", "openai-version": "2020-10-01", "openai-processing-ms": "23",
            "x-request-id": "req_bench0000000000000000000000"}
_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "x-request-id": _HEADERS["x-request-id"]}
RESPONSE_STREAM_EVENTS = 1_000  # a long answer: ~1,000 output tokens, one delta each
RESPONSE_DELTA_GAP_S = 0.001
_BATCH = 64  # frames per write when a stream is sent as fast as possible


async def _stream(request: web.Request, frames: list[bytes], gap_s: float) -> web.StreamResponse:
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    await resp.prepare(request)
    if gap_s:
        for frame in frames:
            await resp.write(frame)
            await asyncio.sleep(gap_s)
    else:
        for start in range(0, len(frames), _BATCH):
            await resp.write(b"".join(frames[start:start + _BATCH]))
    await resp.write_eof()
    return resp


def make_app(event_gap_s: float = 0.005) -> web.Application:
    events = stream_events()
    response_events = response_stream_events(RESPONSE_STREAM_EVENTS)
    plain_response = response_json()

    async def run(request: web.Request) -> web.Response:
        return web.Response(body=RUN_JSON, headers=_HEADERS)

    async def steps(request: web.Request) -> web.Response:
        return web.Response(body=STEPS_JSON, headers=_HEADERS)

    async def create_run(request: web.Request) -> web.StreamResponse:
        await request.read()
        return await _stream(request, events, event_gap_s)

    async def create_response(request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read() or b"{}")
        if "X-Bench-Events" in request.headers:
            return await _stream(request, response_stream_events(int(request.headers["X-Bench-Events"])), 0.0)
        if body.get("stream") is True:
            return await _stream(request, response_events, RESPONSE_DELTA_GAP_S)
        if "X-Bench-Output-Bytes" in request.headers:
            return web.Response(body=response_json(int(request.headers["X-Bench-Output-Bytes"])), headers=_HEADERS)
        return web.Response(body=plain_response, headers=_HEADERS)

    app = web.Application()
    app.router.add_get("/v1/threads/{t}/runs/{r}", run)
    app.router.add_get("/v1/threads/{t}/runs/{r}/steps", steps)
    app.router.add_post("/v1/threads/{t}/runs", create_run)
    app.router.add_post("/v1/responses", create_response)
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
