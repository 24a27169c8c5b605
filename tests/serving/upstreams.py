"""Small upstreams the proxy tests control: they record what reached them and can hold a
stream open until the test lets go."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading

from aiohttp import web

GZIP_BODY = gzip.compress(json.dumps({"object": "list", "data": [{"id": f"asst_{i}"} for i in range(200)]}).encode(),
                          mtime=0)
# A response carrying hop-by-hop fields (those named by Connection included) among end-to-end ones.
HOP_BY_HOP_RESPONSE = [("Connection", "X-Foo, X-Bar"), ("X-Foo", "1"), ("X-Bar", "2"),
                       ("Keep-Alive", "timeout=5, max=100"), ("Proxy-Authenticate", "Basic realm=x"),
                       ("Trailer", "X-Checksum"), ("X-End-To-End", "yes"), ("Cache-Control", "no-store"),
                       ("x-request-id", "req_hop"), ("Content-Type", "application/json")]
OPENAI_ERROR = {"error": {"message": "No thread found with id 'thread_x'.", "type": "invalid_request_error",
                          "param": None, "code": None}}


class Upstream:
    """An aiohttp app standing in for the Assistants API. `seen` holds each request's
    (method, raw path, headers as a list, body size); `let_go()` lets held streams finish."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, list[tuple[str, str]], int]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None
        self.stream_cancelled = threading.Event()
        self.first_event_sent = threading.Event()
        self.upload_aborted = threading.Event()
        self.upload_started = threading.Event()  # the first request body bytes arrived

    def app(self) -> web.Application:
        app = web.Application(handler_args={"handler_cancellation": True})
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self._on_startup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self.loop = asyncio.get_running_loop()
        self._release = asyncio.Event()

    def let_go(self) -> None:
        """Let held streams finish (thread-safe)."""
        assert self.loop is not None and self._release is not None
        self.loop.call_soon_threadsafe(self._release.set)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        size = 0
        try:
            async for chunk in request.content.iter_any():
                size += len(chunk)
                self.upload_started.set()
        except (asyncio.CancelledError, ConnectionResetError, ConnectionError):
            self.upload_aborted.set()
            raise
        self.seen.append((request.method, request.raw_path, list(request.headers.items()), size))
        path = request.path
        if path.endswith("/gzip"):
            return web.Response(body=GZIP_BODY, headers={"Content-Encoding": "gzip",
                                                         "Content-Type": "application/json"})
        if path.endswith("/utf8-header"):
            return web.json_response({}, headers={"x-note": "café ✓"})
        if path.endswith("/missing"):
            return web.json_response(OPENAI_ERROR, status=404, headers={"x-request-id": "req_123"})
        if path.endswith("/hop-by-hop"):  # Content-Length framing
            return web.Response(body=b'{"hop": false}', headers=HOP_BY_HOP_RESPONSE)
        if path.endswith("/hop-by-hop-chunked"):  # no length: aiohttp adds Transfer-Encoding: chunked
            response = web.StreamResponse(headers=HOP_BY_HOP_RESPONSE)
            await response.prepare(request)
            await response.write(b'{"hop": ')
            await response.write(b"false}")
            await response.write_eof()
            return response
        if path.endswith("/slow"):
            await asyncio.sleep(5)
            return web.json_response({})
        if path.endswith("/reset"):
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(b"event: thread.run.created\ndata: {\"id\":\"run_1\"}\n\n")
            await asyncio.sleep(0.1)
            request.transport.abort()
            return response
        if path.endswith("/runs") and request.method == "POST":
            return await self.held_stream(request)
        if path.endswith("/files") and request.method == "POST":
            return web.json_response({"id": "file-abc", "object": "file", "bytes": size, "created_at": 1,
                                      "filename": "big.bin", "purpose": "assistants", "status": "processed"})
        if path.endswith("/assistants") and request.method == "POST":
            return web.json_response({"id": "asst_1", "object": "assistant", "created_at": 1, "name": "a",
                                      "description": None, "model": "gpt-4o", "instructions": None,
                                      "tools": [], "metadata": {}, "top_p": 1.0, "temperature": 1.0,
                                      "response_format": "auto"},
                                     headers={"x-request-id": "req_abc", "openai-processing-ms": "12"})
        return web.json_response({"object": "list", "data": [], "first_id": None, "last_id": None,
                                  "has_more": False})

    async def held_stream(self, request: web.Request) -> web.StreamResponse:
        """An SSE run stream: one event, then held open until `let_go()`, then the rest."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        run = {"id": "run_1", "object": "thread.run", "created_at": 1, "thread_id": "thread_1",
               "assistant_id": "asst_1", "status": "queued", "model": "gpt-4o", "instructions": "",
               "tools": [], "parallel_tool_calls": True}
        try:
            await response.write(f"event: thread.run.created\ndata: {json.dumps(run)}\n\n".encode())
            self.first_event_sent.set()
            await self._release.wait()
            completed = dict(run, status="completed")
            await response.write(f"event: thread.run.completed\ndata: {json.dumps(completed)}\n\n".encode())
            await response.write(b"event: done\ndata: [DONE]\n\n")
        except (asyncio.CancelledError, ConnectionResetError):
            self.stream_cancelled.set()
            raise
        await response.write_eof()
        return response
