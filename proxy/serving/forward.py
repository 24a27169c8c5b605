"""The hot path: one catch-all handler that forwards a request to the configured upstream and
streams the answer back, byte for byte, chunk by chunk.

Rules (RFC 9110 section 7.6.1 for hop-by-hop fields):
- The upstream is fixed by configuration. The request target must be origin-form ("/..."); the
  Host, X-Forwarded-Host or an absolute-form target never choose where a request goes.
- Hop-by-hop fields (Connection and the fields it lists, Keep-Alive, Proxy-*, TE, Trailer,
  Transfer-Encoding, Upgrade) are dropped in both directions; everything else passes as received,
  including Content-Length and Content-Encoding (compressed bytes are never decoded here).
- Bodies stream both ways; only a capped copy is kept for the `Exchange` handed to the recorder,
  after the last byte was written and before the response is finished.
- What one client can hold of the upstream is bounded: a request body that pauses longer than
  `--body-timeout` ends the upstream request (408), and at most `--max-upstream-connections`
  requests are upstream at once (one connection each); the next waits up to `--connect-timeout`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import suppress
from itertools import chain
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from proxy.config import Settings
from proxy.serving.exchange import SECRET_HEADERS, Exchange, Headers, Recorder, new_exchange_id
from proxy.serving.fingerprint import Fingerprinter, credential_from_headers
from proxy.logs import exception_summary
from proxy.serving.tracecontext import outgoing_traceparent

log = logging.getLogger("assistants_audit.forward")

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
     "te", "trailer", "transfer-encoding", "upgrade"}
)
# Fields the proxy answers itself or rewrites: Host is set to the upstream; Expect was already
# answered with 100 Continue by the server; X-Proxy-Key is the proxy's own credential.
_REQUEST_ONLY_HERE = frozenset({"host", "expect", "x-proxy-key"})
_UNCAPPED = 1 << 62
# The message of the cancellation with which a draining proxy ends what outlived the grace period.
_SHUTDOWN_CUT = "proxy_shutdown"


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The fields a proxy forwards: everything but hop-by-hop ones, order and case kept.

    One pass with the names lowered once; `Connection` is looked at only when present (the
    common case is `Connection: keep-alive` or none), as this runs twice per request."""
    lowered = [(name.lower(), name, value) for name, value in headers]
    listed: set[str] = set()
    for low, _, value in lowered:
        if low == "connection":
            listed.update(token.strip().lower() for token in value.split(",") if token.strip())
    drop = HOP_BY_HOP | listed if listed else HOP_BY_HOP
    return [(name, value) for low, name, value in lowered
            if low not in drop and not low.startswith("proxy-")]


def _text(raw: bytes) -> str:
    """Header bytes as text the server can write back unchanged (UTF-8; Latin-1 if not UTF-8)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _was_reset(exc: BaseException) -> bool:
    """The upstream reset the connection (TCP RST) rather than closing it early: aiohttp keeps
    the socket error only in the message of the ClientPayloadError it raises."""
    return isinstance(exc, ConnectionResetError) or "ConnectionResetError" in str(exc)


def _linger_zero(transport: Any) -> None:
    """Make the next close of `transport` a TCP RST."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


def _recordable(headers: Iterable[tuple[str, str]]) -> Headers:
    return tuple([(low, value) for low, value in ((name.lower(), value) for name, value in headers)
                  if low not in SECRET_HEADERS])


def error_body(code: str, message: str) -> bytes:
    """An OpenAI-shaped error, so SDKs raise their normal APIStatusError for proxy failures."""
    return orjson.dumps(
        {"error": {"message": message, "type": "proxy_error", "param": None, "code": code}}
    )


class OwnResponse(web.Response):
    """An answer of the proxy's own (refusals, upstream failures): an OpenAI-shaped error and no
    `Server` or `Date` field, which aiohttp would add and the proxy promises not to."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status=status, body=body, content_type="application/json")

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        for name in ("Server", "Date"):
            self.headers.popall(name, None)


class TransparentResponse(web.StreamResponse):
    """A StreamResponse that adds no fields of its own (aiohttp would add Server, Date and a
    default Content-Type): the client sees the upstream's fields, not the proxy's."""

    def __init__(self, *, status: int, reason: str | None, upstream_fields: set[str], with_first_chunk: bool) -> None:
        super().__init__(status=status, reason=reason)
        self._upstream_fields = upstream_fields
        # aiohttp's own switch (web.Response sets it): hold the head until the first body write
        # and send both in one write. Only when that chunk is already here, so the client never
        # waits longer for the head than it would directly: one system call a response, not two.
        self._send_headers_immediately = not with_first_chunk

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        for name in ("Server", "Date", "Content-Type"):
            if name.lower() not in self._upstream_fields:
                self.headers.popall(name, None)


class _Capture:
    """Counts a body's bytes and keeps the first `cap` of them."""

    __slots__ = ("cap", "data", "size", "tail")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.size = 0
        self.tail = b""  # the last bytes seen, even past the cap

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.tail = (self.tail + chunk[-32:])[-32:]

    def ends_sse_stream(self) -> bool:
        """The Assistants stream's last event was relayed: SDKs hang up right after it."""
        return self.tail.rstrip().endswith(b"data: [DONE]")

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)


class _BodyTooLarge(Exception):
    pass


class _Clock:
    """Splits a request's wall time into waits on a peer and the proxy's own work."""

    __slots__ = ("t0", "upstream", "client", "first_chunk")

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.upstream = 0.0
        self.client = 0.0
        self.first_chunk: float | None = None  # request received -> first body chunk relayed

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def overhead(self) -> float:
        return max(0.0, self.elapsed() - self.upstream - self.client)


class Forwarder:
    """The catch-all handler. One per app (per worker process)."""

    def __init__(
        self,
        settings: Settings,
        recorder: Recorder,
        fingerprinter: Fingerprinter,
        *,
        worker: str = "w0",
        tracing: bool | None = None,
        credentials: Any = None,
    ) -> None:
        self.settings = settings
        # Optional proxy.sources.enrich.CredentialCache: fingerprint -> credential, in memory only, so
        # the enricher can fetch what a client never asked for with that client's own key.
        self.credentials = credentials
        self.recorder = recorder
        self.fingerprint = fingerprinter
        self.worker = worker
        self.tracing = settings.tracing if tracing is None else tracing
        self.upstream = URL(settings.upstream)
        self.upstream_origin = str(self.upstream.origin())
        # What Host must say upstream: the default port is implied, as clients would send it.
        self.upstream_host = self.upstream.raw_authority
        self.session: aiohttp.ClientSession | None = None  # set by the app's cleanup_ctx
        self._proxy_key = settings.require_proxy_key.encode() if settings.require_proxy_key else None
        self._in_flight: set[asyncio.Task[Any]] = set()
        # Held from the upstream request until its response is relayed: one connection each.
        self._upstream_slots = asyncio.Semaphore(settings.max_upstream_connections)
        self._grace_timer: asyncio.TimerHandle | None = None
        self._exact_session: aiohttp.ClientSession | None = None

    # -- shutdown ----------------------------------------------------------------------------

    def drain(self, grace_period: float) -> None:
        """The server stopped accepting: requests still running `grace_period` seconds from now
        are cut by the proxy itself, so their record says `proxy_shutdown` (when aiohttp cuts
        them, the closed connection looks like a client that went away)."""
        loop = asyncio.get_running_loop()
        self._grace_timer = loop.call_later(grace_period, self._cut_in_flight)

    def stop_draining(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def _cut_in_flight(self) -> None:
        for task in list(self._in_flight):
            task.cancel(_SHUTDOWN_CUT)

    # -- the handler -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            return await self._handle(request)
        finally:
            self._in_flight.discard(task)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        clock = _Clock()
        started_at = time.time()
        raw_target = request.raw_path
        path, _, query = raw_target.partition("?")
        # the raw lines: aiohttp's parsed fields respell well-known names (`accept` -> `Accept`)
        client_headers = [(_text(name), _text(value)) for name, value in request.raw_headers]
        fingerprint = self.fingerprint(credential_from_headers(client_headers))
        base = dict(started_at=started_at, method=request.method, path=path, query=query,
                    key_fingerprint=fingerprint)
        rejection = self._reject(request, raw_target, client_headers)
        if rejection is not None:
            status, code, message = rejection
            return self._answer_locally(request, clock, base, _recordable(client_headers),
                                        status, code, message)
        if self.credentials is not None and fingerprint is not None:
            self.credentials.remember(fingerprint, tuple(
                (name.lower(), value) for name, value in client_headers
                if name.lower() in ("authorization", "api-key")))

        headers, traceparent, client_traceparent, respelled = self._upstream_headers(client_headers)
        recorded_request_headers = _recordable(headers.items())
        url = URL(self.upstream_origin + raw_target, encoded=True)
        # A target the URL would change on the way (a fragment, an empty query) is refused
        # rather than forwarded as something the client did not send.
        if (url.scheme, url.raw_host, url.port, url.raw_path_qs) != (
                self.upstream.scheme, self.upstream.raw_host, self.upstream.port, raw_target):
            return self._answer_locally(request, clock, base, recorded_request_headers, 400,
                                        "invalid_request_target",
                                        "the request target cannot be forwarded as sent")

        request_body = _Capture(self.settings.body_cap)
        failure: dict[str, str] = {}
        data: bytes | AsyncIterator[bytes] | None = None
        if request.body_exists:
            data = self._body_already_here(request, request_body)
            if data is None:
                data = self._stream_body(request, request_body, failure)
        extra = {"client_traceparent": client_traceparent} if client_traceparent else {}

        def exchange(status: int | None, response_headers: Headers, response_body: _Capture,
                     ttfb: float | None, error_type: str | None) -> Exchange:
            extra_all = dict(extra, upstream_s=f"{clock.upstream:.6f}", client_s=f"{clock.client:.6f}")
            if clock.first_chunk is not None:  # for streams: time to the first event
                extra_all["first_event_s"] = f"{clock.first_chunk:.6f}"
            return Exchange(
                exchange_id=new_exchange_id(), worker=self.worker, origin="client",
                ttfb_s=ttfb, duration_s=clock.elapsed(), proxy_overhead_s=clock.overhead(),
                request_headers=recorded_request_headers, request_body=bytes(request_body.data),
                request_body_size=request_body.size, status=status, response_headers=response_headers,
                response_body=bytes(response_body.data), response_body_size=response_body.size,
                error_type=error_type, request_body_truncated=request_body.truncated,
                response_body_truncated=response_body.truncated, upstream=self.upstream_origin,
                traceparent=traceparent, extra=extra_all, **base,
            )

        try:
            if not await self._take_upstream_slot():
                return self._answer_locally(
                    request, clock, base, recorded_request_headers, 503, "upstream_busy",
                    f"all {self.settings.max_upstream_connections} connections to the upstream "
                    f"{self.upstream_origin} stayed busy for {self.settings.connect_timeout} seconds")
        except asyncio.CancelledError as cancelled:
            self._submit(exchange(None, (), _Capture(0), None, self._cancel_reason(request, cancelled)))
            raise
        try:
            return await self._round_trip(request, url, headers, data, clock, failure, exchange, respelled)
        finally:
            self._upstream_slots.release()

    async def _take_upstream_slot(self) -> bool:
        """One of --max-upstream-connections, waiting up to --connect-timeout when all are busy."""
        if not self._upstream_slots.locked():
            await self._upstream_slots.acquire()  # free: returns without suspending
            return True
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await self._upstream_slots.acquire()
        except TimeoutError:
            return False
        return True

    async def _round_trip(self, request: web.Request, url: URL, headers: CIMultiDict[str],
                          data: AsyncIterator[bytes] | None, clock: _Clock, failure: dict[str, str],
                          exchange: Any, respelled: bool) -> web.StreamResponse:
        session = self.session
        assert session is not None, "the ClientSession is created by the app's cleanup_ctx"
        if respelled:
            session = self._every_field_session(session)
        t = time.perf_counter()
        try:
            upstream = await session.request(
                request.method, url, headers=headers, data=data, allow_redirects=False,
                auto_decompress=False, trace_request_ctx=headers if respelled else None,
            )
        except asyncio.CancelledError as cancelled:
            clock.upstream += time.perf_counter() - t
            self._submit(exchange(None, (), _Capture(0), None, self._cancel_reason(request, cancelled)))
            raise
        except Exception as exc:  # every failure becomes an answer, never a traceback
            clock.upstream += time.perf_counter() - t
            status, code, message = self._classify_failure(exc, failure)
            if code == "client_disconnected":
                self._submit(exchange(None, (), _Capture(0), None, code))
                return web.Response(status=499)  # nobody is listening; aiohttp discards it
            body = error_body(code, message)
            response = OwnResponse(status, body)
            captured = _Capture(len(body))
            captured.add(body)
            self._submit(exchange(status, _recordable(response.headers.items()), captured, None, code))
            if code == "request_timeout":
                # Closed once answered: aiohttp would otherwise linger for seconds reading the
                # rest of a body that stopped coming.
                response.force_close()
                with suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
                    await response.prepare(request)
                    await response.write_eof()
                request.protocol.force_close()
            return response
        clock.upstream += time.perf_counter() - t
        ttfb = clock.elapsed()
        try:
            return await self._relay(request, upstream, clock, ttfb, exchange)
        finally:
            upstream.release()

    async def _relay(self, request: web.Request, upstream: aiohttp.ClientResponse, clock: _Clock,
                     ttfb: float, exchange: Any) -> web.StreamResponse:
        upstream_headers = [(_text(k), _text(v)) for k, v in upstream.raw_headers]
        forwarded = end_to_end(upstream_headers)
        content = upstream.content
        try:
            first = content.read_nowait()  # what arrived with the head, if anything (never waits)
        except Exception:  # the body already failed: the loop below reads that failure and reports it
            first = b""
        response = TransparentResponse(status=upstream.status, reason=upstream.reason,
                                       upstream_fields={name.lower() for name, _ in forwarded},
                                       with_first_chunk=bool(first))
        for name, value in forwarded:
            response.headers.add(name, value)
        recorded_headers = _recordable(upstream_headers)
        body = _Capture(self.settings.body_cap)
        error_type: str | None = None
        upstream_rst = False
        # Journal an answer before the client can hold all of it: when the last bytes of a
        # Content-Length body or the stream's final `[DONE]` event arrive, the exchange is
        # submitted before they are written, so a kill -9 right after cannot lose an answered one.
        expected = upstream.content_length if upstream.content_length else None
        submitted = False
        try:
            t = time.perf_counter()
            await response.prepare(request)
            clock.client += time.perf_counter() - t
            while True:
                if first:
                    chunk, first = first, b""
                else:
                    t = time.perf_counter()
                    try:
                        chunk = await content.readany()
                    finally:
                        clock.upstream += time.perf_counter() - t
                if not chunk:
                    break
                body.add(chunk)
                if not submitted and ((expected is not None and body.size >= expected) or body.ends_sse_stream()):
                    if clock.first_chunk is None:
                        clock.first_chunk = clock.elapsed()
                    self._submit(exchange(upstream.status, recorded_headers, body, ttfb, None))
                    submitted = True
                t = time.perf_counter()
                try:
                    await response.write(chunk)
                finally:
                    clock.client += time.perf_counter() - t
                    if clock.first_chunk is None:
                        clock.first_chunk = clock.elapsed()
        except asyncio.CancelledError as cancelled:
            upstream.close()  # the upstream sees the disconnect, as it would without the proxy
            if not submitted:
                reason = None if body.ends_sse_stream() else self._cancel_reason(request, cancelled)
                self._submit(exchange(upstream.status, recorded_headers, body, ttfb, reason))
            raise
        except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
            if request.transport is not None and not request.transport.is_closing():
                error_type = "upstream_reset"
            elif not body.ends_sse_stream():
                error_type = "client_disconnected"
            log.debug("stream ended early (%s): %s", error_type, exception_summary(exc))
        except TimeoutError:
            error_type = "upstream_timeout"
        except (aiohttp.ClientError, OSError) as exc:
            error_type = "upstream_reset"
            upstream_rst = _was_reset(exc)
            log.debug("upstream failed mid-body: %s", exception_summary(exc))
        if not submitted:
            self._submit(exchange(upstream.status, recorded_headers, body, ttfb, error_type))
        if error_type is None:
            t = time.perf_counter()
            try:
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
                # the client hung up as the response ended (the exchange is recorded already)
                log.debug("client left at the end of the response: %s", exception_summary(exc))
            clock.client += time.perf_counter() - t
            return response
        upstream.close()
        if request.transport is not None:
            # The client must see the failure it would see directly: a cut connection, not a
            # cleanly finished (and so silently truncated) body; a reset if the upstream reset.
            if upstream_rst:
                _linger_zero(request.transport)
            request.transport.abort()
        return response

    # -- pieces ------------------------------------------------------------------------------

    def _every_field_session(self, session: aiohttp.ClientSession) -> aiohttp.ClientSession:
        """The session for the rare request that spells one field name two ways: the same pool of
        connections, plus the trace hook that keeps every line (a hook on the one session would
        cost every request aiohttp's tracing machinery, about 5 % of a worker's CPU)."""
        if self._exact_session is None or self._exact_session.connector is not session.connector:
            self._exact_session = make_client_session(self.settings, connector=session.connector)
        return self._exact_session

    async def close(self) -> None:
        if self._exact_session is not None:
            await self._exact_session.close()  # not the shared connector: connector_owner=False
            self._exact_session = None

    def _reject(self, request: web.Request, raw_target: str,
                client_headers: list[tuple[str, str]]) -> tuple[int, str, str] | None:
        """Cheap checks answered by the proxy itself, before anything reaches the upstream."""
        if request.method == "CONNECT":
            return 405, "method_not_allowed", "CONNECT is not supported by this proxy"
        if not raw_target.startswith("/") or raw_target.startswith("//"):
            return 400, "invalid_request_target", "only origin-form request targets (/path) are accepted"
        raw = request.raw_headers  # name + ": " + value + CRLF each; joined in C, not summed in Python
        header_bytes = len(b"".join(chain.from_iterable(raw))) + 4 * len(raw)
        if header_bytes > self.settings.max_header_size:
            return 431, "request_header_fields_too_large", (
                f"request headers exceed {self.settings.max_header_size} bytes")
        length = request.content_length
        if length is not None and length > self.settings.max_body_size:
            return 413, "request_too_large", f"request body exceeds {self.settings.max_body_size} bytes"
        if self._proxy_key is not None:
            offered = request.headers.get("X-Proxy-Key", "").encode()
            if not hmac.compare_digest(offered, self._proxy_key):
                return 401, "invalid_proxy_key", "this proxy requires a valid X-Proxy-Key header"
        return None

    def _upstream_headers(
        self, client_headers: list[tuple[str, str]]
    ) -> tuple[CIMultiDict[str], str | None, str | None, bool]:
        headers: CIMultiDict[str] = CIMultiDict()
        headers["Host"] = self.upstream_host
        client_traceparent = None
        spelled: dict[str, str] = {}
        respelled = False  # one name sent in two spellings (`X-Dup`, `x-dup`): see _EveryField
        for name, value in end_to_end(client_headers):
            lowered = name.lower()
            if lowered in _REQUEST_ONLY_HERE:
                continue
            if lowered == "traceparent":
                client_traceparent = value
                if self.tracing:
                    continue
            if spelled.setdefault(lowered, name) != name:
                respelled = True
            headers.add(name, value)
        traceparent = None
        if self.tracing:
            traceparent = outgoing_traceparent(client_traceparent)
            headers["traceparent"] = traceparent
        return headers, traceparent, client_traceparent, respelled

    @staticmethod
    def _body_already_here(request: web.Request, capture: _Capture) -> bytes | None:
        """The whole request body when it arrived with the head (a JSON body of a few KB mostly
        does): sent upstream as bytes, in one write with the request's head, instead of through
        a streamed payload (a task of its own and a read timeout per chunk). None otherwise."""
        content = request.content
        if request.content_length is None or not content.is_eof():
            return None  # chunked, or still arriving: streamed (with its pause timeout)
        try:
            body = content.read_nowait()
        except Exception:  # noqa: BLE001 - a failed body is left to the streamed path to report
            return None
        if len(body) != request.content_length:  # cannot happen once at EOF; never guess
            raise RuntimeError("request body length differs from its Content-Length")
        capture.add(body)
        return body

    async def _stream_body(self, request: web.Request, capture: _Capture,
                           failure: dict[str, str]) -> AsyncIterator[bytes]:
        limit = self.settings.max_body_size
        content = request.content
        try:
            while True:
                try:
                    async with asyncio.timeout(self.settings.body_timeout):
                        chunk = await content.readany()
                except TimeoutError:
                    failure["kind"] = "request_timeout"
                    raise
                if not chunk:
                    return
                capture.add(chunk)
                if capture.size > limit:
                    failure["kind"] = "request_too_large"
                    raise _BodyTooLarge()
                yield chunk
        except (ConnectionResetError, aiohttp.ClientConnectionResetError, aiohttp.ClientPayloadError):
            failure.setdefault("kind", "client_disconnected")
            raise

    def _classify_failure(self, exc: BaseException, failure: dict[str, str]) -> tuple[int, str, str]:
        kind = failure.get("kind")
        if kind == "request_too_large":
            return 413, kind, f"request body exceeds {self.settings.max_body_size} bytes"
        if kind == "client_disconnected":
            return 499, kind, "client disconnected"
        if kind == "request_timeout":
            return 408, kind, f"the request body paused for more than {self.settings.body_timeout} seconds"
        if isinstance(exc, TimeoutError):
            return 504, "upstream_timeout", f"the upstream {self.upstream_origin} did not answer in time"
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return 502, "upstream_reset", f"the upstream {self.upstream_origin} closed the connection"
        if isinstance(exc, aiohttp.ClientConnectorError):
            return 502, "upstream_unreachable", f"cannot connect to the upstream {self.upstream_origin}"
        # never the exception's repr: aiohttp's carries the request's headers, key included
        log.warning("upstream request failed: %s: %s", type(exc).__name__, exception_summary(exc))
        return 502, "upstream_error", f"the request to the upstream {self.upstream_origin} failed"

    @staticmethod
    def _cancel_reason(request: web.Request, cancelled: asyncio.CancelledError) -> str:
        if cancelled.args == (_SHUTDOWN_CUT,):
            return "proxy_shutdown"
        transport = request.transport
        return "client_disconnected" if transport is None or transport.is_closing() else "proxy_shutdown"

    def _answer_locally(self, request: web.Request, clock: _Clock, base: dict[str, Any],
                        request_headers: Headers, status: int, code: str, message: str) -> web.Response:
        body = error_body(code, message)
        response = OwnResponse(status, body)
        if status in (400, 413, 431, 503):
            response.force_close()  # the rest of the request is not read; don't reuse the connection
        self._submit(Exchange(
            exchange_id=new_exchange_id(), worker=self.worker, origin="client", ttfb_s=None,
            duration_s=clock.elapsed(), proxy_overhead_s=clock.elapsed(),
            request_headers=request_headers, request_body=b"", request_body_size=0, status=status,
            response_headers=_recordable(response.headers.items()), response_body=body,
            response_body_size=len(body), error_type=code, upstream=self.upstream_origin, **base,
        ))
        return response

    def _submit(self, exchange: Exchange) -> None:
        try:
            self.recorder.submit(exchange)
        except Exception:  # recording must never be the reason a client's request fails
            log.exception("recorder.submit failed for %s", exchange.exchange_id)


async def _send_every_field(session: aiohttp.ClientSession, context: Any,
                            params: aiohttp.TraceRequestStartParams) -> None:
    """aiohttp's session merges the fields it is given by case-sensitive name, so `X-Dup: 1`
    then `x-dup: 2` would reach the upstream as `x-dup: 2` alone. The request's fields (which
    aiohttp lets a trace hook change) are set back to every line the forwarder passed, in order."""
    fields = context.trace_request_ctx
    if fields is not None:
        params.headers.clear()
        params.headers.extend(fields)


def make_client_session(settings: Settings, *, connector: aiohttp.BaseConnector | None = None) -> aiohttp.ClientSession:
    """The one pooled upstream session of a process: no cookie jar, no decompression, no
    headers of aiohttp's own (User-Agent, Accept, Accept-Encoding, Content-Type).

    Given a `connector`, the session for requests that spell a field name two ways: it shares
    that pool (without owning it) and sends every field line as passed (`_send_every_field`)."""
    timeout = aiohttp.ClientTimeout(total=None, connect=settings.connect_timeout,
                                    sock_read=settings.upstream_timeout)
    trace_configs = []
    if connector is not None:
        every_field = aiohttp.TraceConfig()
        every_field.on_request_start.append(_send_every_field)
        trace_configs.append(every_field)
    return aiohttp.ClientSession(
        connector=connector or aiohttp.TCPConnector(limit=settings.max_upstream_connections, ttl_dns_cache=60,
                                                    enable_cleanup_closed=True),
        connector_owner=connector is None, timeout=timeout, auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        max_line_size=256 * 1024, max_field_size=256 * 1024, trace_configs=trace_configs,
    )
