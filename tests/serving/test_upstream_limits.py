"""What one client may hold of the upstream: a request body that stops arriving ends in `408`
(`--body-timeout`) and its upstream request is cancelled; at most `--max-upstream-connections`
connections are open to the upstream, and requests beyond them wait for a free one up to
`--connect-timeout`, then get `503`."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.faults.faulty_upstream import Conn, FaultyUpstream, respond
from tests.recording.store_helpers import wait_for

OK = b'{"object":"list","data":[]}'


@pytest.fixture
def raw_upstream():
    up = FaultyUpstream().start()
    yield up
    up.stop()


def _read_answer(sock: socket.socket) -> tuple[int, dict, bytes]:
    """The proxy's whole answer on a connection it closes after it."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_trickling_request_body_gets_408_and_the_upstream_request_is_cancelled(raw_upstream, start_proxy, framing):
    proxy = start_proxy(raw_upstream.url, body_timeout=1)
    framed = b"Content-Length: 1000\r\n\r\n" if framing == "content-length" else b"Transfer-Encoding: chunked\r\n\r\n"
    first = b"{" if framing == "content-length" else b"1\r\n{\r\n"
    with socket.create_connection(("127.0.0.1", proxy.server.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/threads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer sk-trickle\r\n" + framed + first)
        # then nothing more: the body pauses past --body-timeout
        assert wait_for(lambda: raw_upstream.open_connections == 1)  # the upstream request began
        status, headers, body = _read_answer(sock)
    assert status == 408
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert wait_for(lambda: raw_upstream.closed_connections == 1 and raw_upstream.open_connections == 0)
    assert raw_upstream.log == []  # no request was completed upstream
    (recorded,) = proxy.recorder.wait_for(1)
    assert (recorded.status, recorded.error_type) == (408, "request_timeout")


def test_a_body_that_keeps_coming_is_not_cut(raw_upstream, start_proxy):
    """The timeout is between bytes, not for the whole body."""
    proxy = start_proxy(raw_upstream.url, body_timeout=2)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.server.port, timeout=30)

    def pieces():
        for _ in range(6):  # 3 s in all, 0.5 s apart
            threading.Event().wait(0.5)
            yield b"x" * 10

    conn.request("POST", "/v1/files", body=pieces(), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    assert conn.getresponse().status == 200
    assert raw_upstream.log[0].body == b"x" * 60


def _held_until(gate: threading.Event):
    async def behaviour(conn: Conn) -> bool:
        while not gate.is_set():
            await asyncio.sleep(0.02)
        return await respond(200, OK)(conn)

    return behaviour


def _get(port: int) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/v1/assistants", headers={"Authorization": "Bearer sk-cap"})
    response = conn.getresponse()
    result = response.status, response.read()
    conn.close()
    return result


def test_requests_beyond_the_connection_cap_wait_for_a_free_one(raw_upstream, start_proxy):
    cap, extra = 3, 4
    gate = threading.Event()
    raw_upstream.behaviour = _held_until(gate)
    proxy = start_proxy(raw_upstream.url, max_upstream_connections=cap, connect_timeout=60)
    with ThreadPoolExecutor(cap + extra) as pool:
        answers = [pool.submit(_get, proxy.server.port) for _ in range(cap + extra)]
        assert wait_for(lambda: len(raw_upstream.log) == cap)  # the cap is busy, the rest wait
        gate.set()
        assert [a.result(60) for a in answers] == [(200, OK)] * (cap + extra)
    assert len(raw_upstream.log) == cap + extra
    assert raw_upstream.peak_connections == cap


def test_a_request_that_finds_no_free_connection_in_time_gets_503(raw_upstream, start_proxy):
    gate = threading.Event()
    raw_upstream.behaviour = _held_until(gate)
    proxy = start_proxy(raw_upstream.url, max_upstream_connections=1, connect_timeout=1)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(_get, proxy.server.port)
        assert wait_for(lambda: len(raw_upstream.log) == 1)
        status, body = _get(proxy.server.port)
        gate.set()
        assert held.result(60) == (200, OK)
    assert status == 503
    assert json.loads(body)["error"]["code"] == "upstream_busy"
    assert raw_upstream.peak_connections == 1 and len(raw_upstream.log) == 1
    busy = [e for e in proxy.recorder.wait_for(2) if e.status == 503]
    assert [(e.error_type, e.path) for e in busy] == [("upstream_busy", "/v1/assistants")]
