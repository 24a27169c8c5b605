"""The reference floor: a bare aiohttp + uvloop forwarder that records nothing.

It does what any streaming reverse proxy must (stream the request body, drop hop-by-hop headers,
stream the response chunk by chunk) and nothing else, so the difference between it and
`assistants-audit serve` is the price of recording. `python -m bench.forwarder PORT UPSTREAM`."""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import web

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "host", "content-length"})
SESSION = web.AppKey("session", aiohttp.ClientSession)


def make_app(upstream: str) -> web.Application:
    async def session_ctx(app: web.Application):
        app[SESSION] = aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                                             connector=aiohttp.TCPConnector(limit=0))
        yield
        await app[SESSION].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        try:
            return await _forward(request)
        except ConnectionResetError:  # the load generator hung up at the end of a run
            raise web.HTTPBadRequest() from None

    async def _forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        data = request.content if request.body_exists else None
        async with request.app[SESSION].request(request.method, upstream + request.rel_url.raw_path_qs,
                                                headers=headers, data=data,
                                                skip_auto_headers=("User-Agent", "Accept-Encoding")) as up:
            out = web.StreamResponse(status=up.status, headers={k: v for k, v in up.headers.items()
                                                                if k.lower() not in HOP_BY_HOP})
            if up.content_length is not None:
                out.content_length = up.content_length
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(sys.argv[2].rstrip("/")), host="127.0.0.1", port=int(sys.argv[1]), print=None,
                access_log=None)


if __name__ == "__main__":
    main()
