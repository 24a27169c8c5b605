"""Connection-level guards of the proxy's listening socket: what happens before a request
reaches the forwarder (and so before anything can be recorded).

- Header-read timeout (`--header-timeout`). aiohttp has none: a client that trickles header
  bytes (slowloris) holds a connection and a parser until the keep-alive timeout, however slowly
  it sends. Here each connection has a deadline, armed when the connection is made and, on a
  keep-alive connection, when the first byte of the next request arrives; it is cleared as soon
  as a complete request head has been parsed. On expiry the client gets `408` (if it had started
  a request and no response is under way) and the connection is closed. An idle keep-alive
  connection that sends nothing is left to the keep-alive timeout (`--keepalive-timeout`), and
  so is a partial head pipelined behind a request still being handled (aiohttp's keep-alive
  timer closes a connection whose next head is incomplete when it fires).
- Parser refusals get OpenAI-shaped bodies and the right status: a header line over the parser's
  limit or too many header lines is `431` (as the forwarder answers for a header block over
  `--max-header-size`), a request line over its limit is `414`, anything else the parser refuses
  is `400`; logged at debug level, not as a server error with a traceback.
- `CONNECT` (authority-form target, which the router cannot match) reaches the forwarder, which
  refuses it with `405`; the answer carries `Allow` and closes the connection. So does any other
  target not starting with `/` (`OPTIONS *`), which the forwarder refuses with `400`.

`ProxyRunner` is an `aiohttp.web.AppRunner` for an app built by `proxy.serving.app.make_app` that serves
it with these guards; `serve` (single process and every worker) and the tests' in-process proxy
use it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from proxy.serving.app import FORWARDER, SETTINGS
from proxy.config import Settings
from proxy.serving.forward import OwnResponse, error_body
from proxy.logs import exception_summary

log = logging.getLogger("assistants_audit.guard")

ALLOW = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"  # every method but CONNECT is forwarded


def _raw_response(status: str, code: str, message: str) -> bytes:
    body = error_body(code, message)
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


class GuardedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol with a header-read deadline and clear parser refusals."""

    __slots__ = ("_guard", "_deadline", "_head_started", "_line_limit")

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop, guard: "Guard",
                 **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._guard = guard
        self._deadline: asyncio.TimerHandle | None = None
        self._head_started = False  # bytes of the next request head arrived
        self._line_limit = kwargs.get("max_line_size")

    # -- the header-read deadline ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages:  # a complete head was parsed: it is the handler's now
            self._disarm()
            self._head_started = False
        elif data and self._idle():  # the start of the next request's head
            self._head_started = True
            self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _idle(self) -> bool:
        """Waiting for the next request head: no request is being handled or drained. The first
        head's bytes can arrive before the connection's task first waits for them (the count of
        parsed requests is still 0 then); without that case, a client that sent a partial head at
        once was cut off without its 408."""
        return self._request_count == 0 or (self._waiter is not None and not self._waiter.done())

    def _arm(self) -> None:
        timeout = self._guard.header_timeout
        if timeout is not None and self._deadline is None:
            self._deadline = self._loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        transport = self.transport
        if transport is None or transport.is_closing() or not self._idle():
            return
        if self._head_started:  # a request began and no response is under way: say why
            transport.write(self._guard.timeout_response)
        log.debug("closing a connection that sent no complete request head in %ss",
                  self._guard.header_timeout)
        self.force_close()

    # -- parser refusals ---------------------------------------------------------------------

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        status, code, text = self._refusal(exc)
        log.debug("refused a malformed request (%d): %s", status, text)
        response = OwnResponse(status, error_body(code, text))
        response.force_close()
        return response

    def _refusal(self, exc: HttpProcessingError) -> tuple[int, str, str]:
        if isinstance(exc, LineTooLong):
            limit = exc.args[1] if len(exc.args) > 1 else None
            if limit == self._line_limit:
                return 414, "request_target_too_long", f"the request line exceeds {limit} bytes"
            return self._guard.headers_too_large
        if isinstance(exc, BadHttpMessage) and "too many headers" in str(exc.message).lower():
            return self._guard.headers_too_large
        # the parser's message quotes the refused bytes on its later lines (an Authorization
        # value, say): the client gets only its first line
        return 400, "invalid_request", f"malformed HTTP request: {exception_summary(exc)}"


class Guard:
    """What every connection of one server shares: the settings-derived limits and answers."""

    def __init__(self, settings: Settings) -> None:
        self.header_timeout = settings.header_timeout
        self.timeout_response = _raw_response(
            "408 Request Timeout", "request_timeout",
            f"request headers were not received within {settings.header_timeout} seconds")
        self.headers_too_large = (431, "request_header_fields_too_large",
                                  f"request headers exceed {settings.max_header_size} bytes")


class GuardedServer(web.Server):
    """aiohttp's protocol factory, making `GuardedRequestHandler`s."""

    def __init__(self, base: web.Server, guard: Guard, forward: Any) -> None:
        handler = base.request_handler

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            if request.method == "CONNECT":
                response = await forward(request)
                response.headers["Allow"] = ALLOW
                response.force_close()
                return response
            if not request.raw_path.startswith("/"):  # "*": the router would answer a bare 404
                return await forward(request)
            return await handler(request)

        # aiohttp keeps the per-connection arguments (the app's handler_args) in Server._kwargs
        super().__init__(handle, request_factory=base.request_factory,
                         handler_cancellation=base.handler_cancellation,
                         loop=asyncio.get_running_loop(), **base._kwargs)
        self.guard = guard

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, guard=self.guard, **self._kwargs)


class ProxyRunner(web.AppRunner):
    """An AppRunner for the proxy app (`proxy.serving.app.make_app`) whose connections are guarded."""

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return GuardedServer(base, Guard(self.app[SETTINGS]), self.app[FORWARDER].handle)
