"""Client-side faults against a real `assistants-audit serve` process: slow and idle clients,
many idle connections, clients that go away mid-request, and malformed request heads.

Everything is on loopback. Timing assertions are only upper bounds on timeouts (with generous
margins for a shared machine), never performance."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import threading
import time
from pathlib import Path

import openai
import pytest

from tests.serving.test_serve import ServeProcess
from tests.serving.test_serve import start_serve as serving  # noqa: F401 - the fixture: serve on tmp_path/store

KEY = "sk-client-faults-0123456789"
MARGIN = 30.0  # seconds a shared, loaded machine may add to a timeout before it counts as missed


def sdk(proxy: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=proxy.url + "/v1", max_retries=0, timeout=15)


def request_head(method: str = "GET", path: str = "/v1/files", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {KEY}\r\n{extra}\r\n".encode()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One Content-Length response from a blocking socket: (status, head + body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(head.split(b" ", 2)[1]), head + b"\r\n\r\n" + body


def seconds_until_closed(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Block until the peer closes `sock` (or `limit` passes): (seconds waited, bytes received)."""
    started = time.monotonic()
    received = b""
    sock.settimeout(limit)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the proxy kept the connection open for more than {limit:.0f} s") from None
    return time.monotonic() - started, received


class Served:
    """SDK calls in a background thread until stopped: counts what succeeded and what failed."""

    def __init__(self, proxy: ServeProcess) -> None:
        self.client = sdk(proxy)
        self.ok = 0
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                assert self.client.files.list().object == "list"
                self.ok += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.failures.append(exc)
            self._stop.wait(0.2)

    def __enter__(self) -> "Served":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


# -- slowloris, idle connections ---------------------------------------------------------------


async def _slowloris(port: int, give_up: float) -> tuple[float, bytes]:
    """Send a request head one byte every 0.5 s, never finishing it; (seconds until the proxy
    closed the connection, what it sent back)."""
    started = time.monotonic()  # before connecting: the proxy's deadline starts at its accept, not later
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    closed = asyncio.ensure_future(reader.read())  # the proxy's answer up to its close
    try:
        for byte in b"GET /v1/files HTTP/1.1\r\nHost: proxy\r\nX-Slow: " + b"z" * 1000:
            if closed.done() or time.monotonic() - started > give_up:
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.wait([closed], timeout=0.5)
        answer = await asyncio.wait_for(closed, timeout=1)
    except (asyncio.TimeoutError, ConnectionError):
        answer = None
    finally:
        writer.close()
    assert answer is not None, f"the slowloris connection was still open after {give_up:.0f} s"
    return time.monotonic() - started, answer


@pytest.mark.parametrize("workers", ["1", "2"])
def test_slowloris_is_cut_off_while_sdk_clients_are_served(emulator, serving, workers):
    header_timeout = 2.0
    proxy = serving(emulator.url, "--header-timeout", str(header_timeout), "--workers", workers)

    async def many() -> list[tuple[float, bytes]]:
        return await asyncio.gather(*(_slowloris(proxy.port, header_timeout + MARGIN) for _ in range(20)))

    with Served(proxy) as served:
        cut = asyncio.run(many())
    assert served.failures == [] and served.ok >= 3, (served.ok, served.failures)
    for seconds, answer in cut:
        assert header_timeout - 0.5 <= seconds <= header_timeout + MARGIN, seconds
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b'"code":"request_timeout"' in answer
    assert proxy.stop() == 0, proxy.output()


def test_idle_keepalive_outlives_the_header_timeout_and_ends_at_the_keepalive_timeout(emulator, serving):
    header_timeout, keepalive_timeout = 1, 6
    proxy = serving(emulator.url, "--header-timeout", str(header_timeout),
                    "--keepalive-timeout", str(keepalive_timeout))
    # A connection that never sends a byte has started nothing: closed at the header timeout
    # (well before the keep-alive timeout), without an answer.
    silent = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    silent_result: list[tuple[float, bytes]] = []
    watcher = threading.Thread(target=lambda: silent_result.append(seconds_until_closed(silent, 30)))
    watcher.start()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(request_head())
        assert read_response(sock)[0] == 200
        time.sleep(header_timeout + 1)  # idle past the header timeout: keep-alive rules idle time
        sock.sendall(request_head())
        assert read_response(sock)[0] == 200
        waited, extra = seconds_until_closed(sock, keepalive_timeout + MARGIN)
    assert keepalive_timeout - 1 <= waited <= keepalive_timeout + MARGIN and extra == b"", (waited, extra)
    watcher.join(30)
    silent.close()
    (waited, extra), = silent_result
    assert waited < keepalive_timeout - 1.5 and extra == b"", (waited, extra)
    assert proxy.stop() == 0, proxy.output()



async def _trickled_body(port: int, pause_after: int, give_up: float) -> tuple[float, bytes]:
    """A POST whose body sends `pause_after` bytes 0.2 s apart, then pauses for good; (seconds
    from the last byte until the proxy closed the connection, what it sent back)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head("POST", "/v1/threads", "Content-Type: application/json\r\nContent-Length: 1000\r\n"))
    for byte in b'{"metadata"'[:pause_after]:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)  # well within --body-timeout: these bytes count as progress
    paused = time.monotonic()
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=give_up)
    except asyncio.TimeoutError:
        raise AssertionError(f"the trickling body was still being waited for after {give_up:.0f} s") from None
    finally:
        writer.close()
    return time.monotonic() - paused, answer


@pytest.mark.parametrize("workers", ["1", "2"])
def test_paused_request_bodies_get_408_and_free_their_upstream_connections(serving, workers):
    from tests.faults.faulty_upstream import FaultyUpstream

    body_timeout, clients = 1.0, 20
    upstream = FaultyUpstream().start()
    try:
        proxy = serving(upstream.url, "--body-timeout", str(body_timeout), "--workers", workers)

        async def many() -> list[tuple[float, bytes]]:
            return await asyncio.gather(*(_trickled_body(proxy.port, 4, body_timeout + MARGIN)
                                          for _ in range(clients)))

        with Served(proxy) as served:
            cut = asyncio.run(many())
        assert served.failures == [] and served.ok >= 3, (served.ok, served.failures)
        for seconds, answer in cut:
            assert seconds <= body_timeout + MARGIN, seconds
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b'"code":"request_timeout"' in answer
        # each trickled request had an upstream connection of its own, closed with its 408
        # (the upstream sees each close a moment after the client got its 408)
        assert _wait(lambda: upstream.closed_connections >= clients), (upstream.closed_connections,
                                                                        upstream.open_connections)
        assert [r.target for r in upstream.log if r.method == "POST"] == []
        assert proxy.stop() == 0, proxy.output()
    finally:
        upstream.stop()

# -- 10,000 idle keep-alive connections ---------------------------------------------------------

CONNECTIONS = 10_000
PROXY_KEY = "pk-client-faults"
# Measured per idle connection: about 6 KiB for a connection that has sent nothing (aiohttp's
# slotted RequestHandler with its llhttp parser, the uvloop transport, the handler's waiting
# coroutine and future, two timers) and about 12 KiB after one keep-alive request (aiohttp's
# idle handler still references that request and its response until the next request), so
# ~120 MB for 10,000. 200 MB allows 20 KiB each: a per-connection leak of a read buffer
# (64 KiB+) or of every request's body would blow it.
RSS_BUDGET_MB = 200


def _proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def many_fds():
    """Raise this process's open file limit (inherited by the proxy it starts) for 10k sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = CONNECTIONS + 2_000
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit is {hard}; {needed} open files are needed for "
                    f"{CONNECTIONS} connections")
    raised = needed if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, raised), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _open_idle(port: int, count: int) -> list[asyncio.StreamWriter]:
    """`count` connections, each after one completed keep-alive request, left open and idle.
    The requests lack the proxy key, so the proxy answers them itself (401) and the test measures
    the proxy rather than 10,000 upstream round trips."""
    head = request_head()
    writers: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(200)

    async def one() -> None:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
            writer.write(head)
            status = await reader.readuntil(b"\r\n\r\n")
            assert status.startswith(b"HTTP/1.1 401 ") and b"onnection: close" not in status, status
            length = int(next(line.split(b":", 1)[1] for line in status.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            await reader.readexactly(length)

    await asyncio.gather(*(one() for _ in range(count)))
    return writers


def test_ten_thousand_idle_keepalive_connections_in_bounded_memory(emulator, serving, many_fds):
    proxy = serving(emulator.url, "--keepalive-timeout", "300", "--require-proxy-key", PROXY_KEY)
    pid = proxy.worker_pids()[0]  # the worker holds the connections (the supervisor only supervises)
    client = openai.OpenAI(api_key=KEY, base_url=proxy.url + "/v1", max_retries=0, timeout=30,
                           default_headers={"X-Proxy-Key": PROXY_KEY})
    for _ in range(50):  # warm up: upstream session, recorder, store
        client.files.list()
    time.sleep(1)
    rss_before, fds_before = _proc_status(pid, "VmRSS") / 1024, _fds(pid)

    async def scenario() -> tuple[float, int]:
        writers: list[asyncio.StreamWriter] = []
        try:
            writers = await _open_idle(proxy.port, CONNECTIONS)
            await asyncio.sleep(1)
            rss, fds = _proc_status(pid, "VmRSS") / 1024, _fds(pid)
            # still served while they are all open
            listed = await asyncio.to_thread(client.files.list)
            assert listed.object == "list"
            return rss, fds
        finally:
            for writer in writers:
                writer.close()

    rss_open, fds_open = asyncio.run(scenario())
    print(f"proxy RSS {rss_before:.0f} MB -> {rss_open:.0f} MB with {CONNECTIONS} idle connections; "
          f"fds {fds_before} -> {fds_open}")
    # (a few of the baseline's own fds, pooled upstream connections, come and go)
    assert fds_open >= fds_before + CONNECTIONS - 20, "the proxy did not hold the connections open"
    assert rss_open - rss_before < RSS_BUDGET_MB, f"RSS grew {rss_open - rss_before:.0f} MB"
    deadline = time.monotonic() + 30
    while _fds(pid) > fds_before + 20:  # every closed connection's socket is released
        assert time.monotonic() < deadline, f"{_fds(pid)} fds still open (baseline {fds_before})"
        time.sleep(0.2)
    assert client.files.list().object == "list"
    assert proxy.stop() == 0, proxy.output()


# -- clients that go away mid-request, recorded exactly once ------------------------------------


def _exchange_rows(store: Path, method: str, path: str) -> list[dict]:
    from analytics.store import StoreError, connect

    try:
        con = connect(store)
    except StoreError:  # no segment yet
        return []
    try:
        cursor = con.execute(
            "select exchange_id, status_code, error_type, stream, bytes_in, bytes_out from exchange_log"
            " where origin = 'client' and method = ? and path = ?", [method, path])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
    except Exception:  # noqa: BLE001 - the table may not exist yet
        return []
    finally:
        con.close()


def _wait_rows(store: Path, method: str, path: str) -> list[dict]:
    deadline = time.monotonic() + 20
    while not (rows := _exchange_rows(store, method, path)):
        assert time.monotonic() < deadline, f"no {method} {path} exchange reached the store"
        time.sleep(0.2)
    return rows


def _cut_upload(port: int) -> None:
    """Announce a 10 MB file upload, send 1 MB of it, hang up."""
    part = (b'--b0undary\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
            b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_head("POST", "/v1/files", "Content-Type: multipart/form-data; boundary=b0undary\r\n"
                                  "Content-Length: 10000000\r\n") + part + b"x" * 1_000_000)
        time.sleep(0.3)


def _cut_stream(port: int, thread_id: str, assistant_id: str) -> None:
    """Start a streamed run whose events come 1 s apart; hang up after the first."""
    body = json.dumps({"assistant_id": assistant_id, "stream": True}).encode()
    head = request_head("POST", f"/v1/threads/{thread_id}/runs",
                        "OpenAI-Beta: assistants=v2\r\nContent-Type: application/json\r\n"
                        f"X-Emulator-Fault: slow_body=1000\r\nContent-Length: {len(body)}\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        received = b""
        while b"thread.run.created" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 ")


def test_client_disconnects_mid_upload_and_mid_stream_are_recorded_once(emulator, serving, tmp_path):
    store = tmp_path / "store"
    proxy = serving(emulator.url, "--no-enrich")
    api = emulator.client()
    assistant = api.beta.assistants.create(model="gpt-4o")
    thread = api.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    runs_path = f"/v1/threads/{thread.id}/runs"

    _cut_upload(proxy.port)
    assert sdk(proxy).files.list().object == "list"  # the proxy keeps serving
    _cut_stream(proxy.port, thread.id, assistant.id)
    assert sdk(proxy).beta.assistants.retrieve(assistant.id).id == assistant.id

    def check() -> None:
        (upload,) = _wait_rows(store, "POST", "/v1/files")
        assert upload["error_type"] == "client_disconnected" and upload["status_code"] is None, upload
        assert 0 < upload["bytes_in"] < 10_000_000, upload  # what arrived before the hang-up
        (stream,) = _wait_rows(store, "POST", runs_path)
        assert stream["error_type"] == "client_disconnected" and stream["status_code"] == 200, stream
        assert stream["stream"] and stream["bytes_out"] > 0, stream

    check()
    assert proxy.stop() == 0, proxy.output()
    check()  # the shutdown flush wrote nothing twice
    again = serving(emulator.url, "--no-enrich")  # replays the journal after the checkpoint
    assert sdk(again).files.list().object == "list"
    assert again.stop() == 0, again.output()
    check()


# -- protocol edges ------------------------------------------------------------------------------


def _exchange(port: int, data: bytes) -> bytes:
    """Send `data`, read until the proxy closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


LIMIT = 8192  # --max-header-size; the parser's own limit for one line is twice that
TOO_LARGE = f"request headers exceed {LIMIT} bytes"
EDGES = {
    "header block over the limit": (
        request_head(extra="".join(f"X-Filler-{i}: {'y' * 1000}\r\n" for i in range(20))), 431, TOO_LARGE),
    "one header line over twice the limit": (
        request_head(extra=f"X-Long: {'a' * (2 * LIMIT + 100)}\r\n"), 431, TOO_LARGE),
    "one header name over twice the limit": (
        request_head(extra=f"X-{'a' * (2 * LIMIT + 100)}: 1\r\n"), 431, TOO_LARGE),
    "more than 128 header lines": (
        request_head(extra="".join(f"X-{i}: 1\r\n" for i in range(200))), 431, TOO_LARGE),
    "request line over twice the limit": (
        request_head(path="/v1/files?q=" + "a" * (2 * LIMIT + 100)), 414, None),
    "CONNECT": (b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 405, None),
    "not HTTP": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, None),
}


def test_protocol_edges_get_clear_answers_and_the_proxy_keeps_serving(emulator, serving):
    proxy = serving(emulator.url, "--max-header-size", f"{LIMIT}B")
    for name, (data, status, message) in EDGES.items():
        answer = _exchange(proxy.port, data)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b" ", 2)[1] == str(status).encode(), (name, answer[:300])
        error = json.loads(body)["error"]  # OpenAI-shaped, so SDKs raise APIStatusError
        assert error["type"] == "proxy_error" and error["code"], (name, error)
        if message is not None:
            assert error["message"] == message, (name, error)
        if status == 405:
            assert b"\r\nallow: get, head, post, put, patch, delete, options" in head.lower(), head
    assert sdk(proxy).files.list().object == "list"
    assert proxy.stop() == 0, proxy.output()
    assert "Traceback" not in proxy.output()  # malformed requests are not server errors


def _wait(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
