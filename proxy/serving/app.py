"""Build the proxy's aiohttp application: one catch-all route, typed app keys, and the upstream
ClientSession owned by `cleanup_ctx` (one pooled session per process)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import hdrs, web

from proxy.config import Settings
from proxy.serving.exchange import NullRecorder, Recorder
from proxy.serving.fingerprint import Fingerprinter
from proxy.serving.forward import Forwarder, OwnResponse, error_body, make_client_session

SETTINGS = web.AppKey("settings", Settings)
RECORDER = web.AppKey("recorder", Recorder)
FORWARDER = web.AppKey("forwarder", Forwarder)
SESSION = web.AppKey("session", aiohttp.ClientSession)


def make_app(
    settings: Settings,
    recorder: Recorder | None = None,
    *,
    session: aiohttp.ClientSession | None = None,
    fingerprinter: Fingerprinter | None = None,
    worker: str = "w0",
    tracing: bool | None = None,
    tracer_provider: object | None = None,
    credentials: object | None = None,
) -> web.Application:
    """The proxy app. `session` (if given) is used and left open; otherwise one is created on
    start-up and closed on cleanup. `tracing`/`tracer_provider` turn on traceparent minting.
    `credentials` (a proxy.sources.enrich.CredentialCache) is told each client's credential by fingerprint."""
    if tracer_provider is not None and tracing is None:
        tracing = True
    recorder = recorder if recorder is not None else NullRecorder()
    forwarder = Forwarder(settings, recorder, fingerprinter or Fingerprinter.for_settings(settings),
                          worker=worker, tracing=tracing, credentials=credentials)
    # handler_cancellation: a client that goes away cancels its handler, and with it the
    # upstream request, even while the upstream is silent. The parser's own limits sit above
    # max_header_size so the forwarder can answer 431 itself for most oversized heads; the
    # request line may be one byte longer than a header field, so a LineTooLong names which one
    # overflowed (proxy.serving.guard answers 414 or 431). Idle keep-alive connections are closed after
    # --keepalive-timeout (aiohttp's default is an hour), so many idle clients cannot pin memory.
    # auto_decompress off: aiohttp would otherwise inflate a compressed request body while its
    # Content-Encoding and Content-Length still go upstream; the recorder decodes its own copy.
    field_limit = max(8190, 2 * settings.max_header_size)
    app = web.Application(handler_args={
        "handler_cancellation": True, "max_field_size": field_limit, "max_line_size": field_limit + 1,
        "keepalive_timeout": settings.keepalive_timeout, "auto_decompress": False,
    })
    app[SETTINGS] = settings
    app[RECORDER] = recorder
    app[FORWARDER] = forwarder

    async def upstream_session(app: web.Application) -> AsyncIterator[None]:
        own = session is None
        app[SESSION] = make_client_session(settings) if own else session
        forwarder.session = app[SESSION]
        yield
        forwarder.stop_draining()
        await forwarder.close()
        if own:
            await app[SESSION].close()

    async def drain(app: web.Application) -> None:
        forwarder.drain(settings.grace_period)

    app.cleanup_ctx.append(upstream_session)
    app.on_shutdown.append(drain)
    # [\s\S], not ".": a path may hold a newline (%0A), and it is forwarded like any other
    app.router.add_route("*", r"/{tail:[\s\S]*}", forwarder.handle, expect_handler=_expect)
    return app


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """aiohttp's own handling of `Expect`, but an unknown expectation gets the proxy's 417 (not
    aiohttp's text/plain one, which echoes the field's value back)."""
    if request.version != aiohttp.HttpVersion11:
        return None
    if request.headers[hdrs.EXPECT].lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started
        return None
    response = OwnResponse(417, error_body("expectation_failed", "only Expect: 100-continue is supported"))
    response.force_close()  # the body is not read
    return response
