"""An upstream that misbehaves on command: a raw asyncio HTTP/1.1 server on 127.0.0.1 in a thread.

Raw sockets rather than aiohttp, so a fault is exactly what goes over the wire: a head that comes
late, a body that trickles, a TCP reset (SO_LINGER 0) after N bytes or N server-sent events, bytes
that are not JSON or not UTF-8, a 50 MB body.

`upstream.behaviour` answers every request until the test sets another one. Each response head
the upstream sends carries a fresh `x-request-id: req_<n>`; `heads(via)` lists the ids that went
to requests carrying `x-fault-client: <via>` (the tests' direct and proxied clients say which
they are), `requests(via)` every request that arrived, answered or not.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import orjson

VIA = "x-fault-client"


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    request_id: str | None = None  # set when a response head was sent
    head: bytes = b""  # the request line and header lines exactly as received

    @property
    def via(self) -> str | None:
        return self.headers.get(VIA)


@dataclass
class Conn:
    """What a behaviour writes with."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    request: Request
    upstream: "FaultyUpstream"

    async def head(self, status: int, headers: Sequence[tuple[str, str]], reason: str = "") -> None:
        rid = self.upstream.next_request_id()
        self.request.request_id = rid
        lines = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Unknown')}", f"x-request-id: {rid}"]
        lines += [f"{name}: {value}" for name, value in headers]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await self.writer.drain()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reset(self, pause: float = 0.2) -> None:
        """Let what was written arrive, then abort with a TCP RST (SO_LINGER 0)."""
        await self.writer.drain()
        await asyncio.sleep(pause)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


# A behaviour answers one request; it returns True to keep the connection for the next one.
Behaviour = Callable[[Conn], Awaitable[bool]]

_REASONS = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}
JSON = ("content-type", "application/json")


def respond(status: int, body: bytes, headers: Sequence[tuple[str, str]] = (JSON,)) -> Behaviour:
    async def behaviour(conn: Conn) -> bool:
        await conn.head(status, [*headers, ("content-length", str(len(body)))])
        await conn.send(body)
        return True

    return behaviour


def slow_head(delay: float, then: Behaviour) -> Behaviour:
    """Nothing for `delay` seconds, then `then`."""

    async def behaviour(conn: Conn) -> bool:
        await asyncio.sleep(delay)
        return await then(conn)

    return behaviour


def trickle(body: bytes, pieces: int, gap: float, stall_after: int | None = None) -> Behaviour:
    """The head at once, then the body in `pieces` parts `gap` seconds apart; with `stall_after`,
    silence after that many parts (the connection stays open until the peer gives up)."""

    async def behaviour(conn: Conn) -> bool:
        await conn.head(200, [JSON, ("content-length", str(len(body)))])
        size = -(-len(body) // pieces)
        for i in range(pieces):
            if stall_after is not None and i == stall_after:
                await conn.reader.read()  # until the peer closes
                return False
            if i:
                await asyncio.sleep(gap)
            await conn.send(body[i * size:(i + 1) * size])
        return True

    return behaviour


def reset_mid_body(body: bytes, cut: int) -> Behaviour:
    """Announces the whole body (Content-Length), sends `cut` bytes, then resets the connection."""

    async def behaviour(conn: Conn) -> bool:
        await conn.head(200, [JSON, ("content-length", str(len(body)))])
        await conn.send(body[:cut])
        await conn.reset()
        return False

    return behaviour


def sse_event(event: str, data: dict) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def sse_stream(events: Sequence[bytes], reset_after: int | None = None) -> Behaviour:
    """A chunked text/event-stream, one chunk per event; with `reset_after`, a TCP reset after
    that many events instead of the terminating chunk."""

    async def behaviour(conn: Conn) -> bool:
        await conn.head(200, [("content-type", "text/event-stream; charset=utf-8"),
                              ("transfer-encoding", "chunked")])
        for i, event in enumerate(events):
            if i == reset_after:
                await conn.reset()
                return False
            await conn.send(b"%x\r\n%s\r\n" % (len(event), event))
            await asyncio.sleep(0.01)
        await conn.send(b"0\r\n\r\n")
        return True

    return behaviour


def openai_error(status: int, code: str) -> bytes:
    return orjson.dumps({"error": {"message": f"upstream says {status}", "type": "server_error" if status >= 500
                                   else "requests", "param": None, "code": code}})


@dataclass
class FaultyUpstream:
    behaviour: Behaviour = field(default_factory=lambda: respond(200, b'{"object":"list","data":[]}'))
    port: int = 0
    log: list[Request] = field(default_factory=list)
    open_connections: int = 0  # TCP connections from the proxy open right now
    peak_connections: int = 0  # the most ever open at once
    closed_connections: int = 0

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="faulty-upstream", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def next_request_id(self) -> str:
        with self._lock:
            return f"req_{next(self._ids)}"

    def start(self) -> "FaultyUpstream":
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            held = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in held:
                task.cancel()
            await asyncio.gather(*held, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def requests(self, via: str) -> list[Request]:
        with self._lock:
            return [r for r in self.log if r.via == via]

    def heads(self, via: str) -> list[str]:
        """The request ids of the responses that reached `via`'s requests (head sent)."""
        return [r.request_id for r in self.requests(via) if r.request_id is not None]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.open_connections += 1
            self.peak_connections = max(self.peak_connections, self.open_connections)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.log.append(request)
                if not await self.behaviour(Conn(reader, writer, request, self)):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the peer went away, or stop() ended a request held open
        finally:
            writer.transport.abort() if writer.transport.is_closing() else writer.close()
            with self._lock:
                self.open_connections -= 1
                self.closed_connections += 1


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if not size:
                break
            body += chunk[:-2]
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target, headers, bytes(body), head=head)
