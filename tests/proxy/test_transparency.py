"""What a client receives through the proxy equals what it receives directly; hostile request
targets and headers never steer the proxy away from its configured upstream."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

import pytest
from aiohttp import web

from proxy.forward import HOP_BY_HOP
from tests.proxy.upstreams import Upstream
from tests.servers import serve

FIXTURES = json.loads((Path(__file__).parent.parent / "fixtures" / "proxy" / "responses.json").read_text())


def replay_app() -> web.Application:
    """Serves each recorded response at its recorded path, SSE bodies one event per chunk."""
    by_route = {(f["method"], f["path"]): f for f in FIXTURES}

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        fixture = by_route[(request.method, request.raw_path)]
        response = web.StreamResponse(status=fixture["status"], reason=fixture["reason"])
        for name, value in fixture["headers"]:
            response.headers.add(name, value)
        await response.prepare(request)
        body = fixture["body"].encode()
        for part in body.split(b"\n\n"):
            if part:
                await response.write(part + b"\n\n" if b"\n\n" in body else part)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def fetch(port: int, method: str, path: str) -> tuple[int, str, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=b"{}" if method == "POST" else None,
                 headers={"Authorization": "Bearer sk-x", "Content-Type": "application/json"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP | {"date"}]
    return resp.status, resp.reason, headers, body


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f["name"] for f in FIXTURES])
def test_recorded_response_is_byte_identical_through_the_proxy(fixture, start_proxy):
    with serve(replay_app) as upstream:
        proxy = start_proxy(upstream.url)
        direct = fetch(upstream.port, fixture["method"], fixture["path"])
        proxied = fetch(proxy.server.port, fixture["method"], fixture["path"])
    assert direct[0] == fixture["status"] and direct[3] == fixture["body"].encode()
    assert proxied == direct
    (exchange,) = proxy.recorder.wait_for(1)
    assert exchange.response_body == direct[3] and exchange.status == direct[0]
    assert "set-cookie" not in dict(exchange.response_headers)  # cookies are secrets too


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received and b'"code"' in received or received.endswith(b"}"):
                break
    return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.mark.parametrize("target", [b"http://evil.example/v1/assistants", b"//evil.example/v1/assistants"])
def test_absolute_form_and_scheme_relative_targets_are_refused(upstream, start_proxy, target):
    proxy = start_proxy(upstream.url)
    answer = raw(proxy.server.port, b"GET " + target + b" HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 400
    assert upstream.seen == []


def test_connect_is_refused(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    answer = raw(proxy.server.port, b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n")
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert status_of(answer) == 405  # answered by the proxy itself, and the tunnel is not opened
    assert b"\r\nallow: get, head, post, put, patch, delete, options" in head
    assert b"\r\nconnection: close" in head and b'"code":"method_not_allowed"' in answer
    assert upstream.seen == []
    (exchange,) = proxy.recorder.wait_for(1)  # recorded like any other refusal
    assert (exchange.method, exchange.status, exchange.error_type) == ("CONNECT", 405, "method_not_allowed")


@pytest.mark.parametrize("path", ["/v1/../../etc/passwd", "/v1/%2e%2e/%2e%2e/x", "/@evil.example/v1/x",
                                  "/v1/x@evil.example:80/"])
def test_host_tricks_and_traversal_stay_on_the_upstream(upstream, start_proxy, path):
    proxy = start_proxy(upstream.url)
    request = (f"GET {path} HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: evil.example\r\n"
               f"Connection: close\r\n\r\n").encode()
    answer = raw(proxy.server.port, request)
    assert status_of(answer) == 200
    (seen,) = upstream.seen  # it reached the configured upstream, and only it
    host = dict((k.lower(), v) for k, v in seen[2])["host"]
    assert host == upstream.url.removeprefix("http://")


@pytest.mark.parametrize("head", [
    b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    b"GET /v1/files HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
])
def test_smuggling_shapes_are_rejected(upstream, start_proxy, head):
    proxy = start_proxy(upstream.url)
    assert status_of(raw(proxy.server.port, head)) == 400
    assert upstream.seen == []


def test_body_over_the_limit_is_413(upstream, start_proxy):
    proxy = start_proxy(upstream.url, max_body_size=1000)
    answer = raw(proxy.server.port, b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
    assert status_of(answer) == 413 and b"request_too_large" in answer
    assert upstream.seen == []


def test_chunked_body_over_the_limit_is_413(upstream, start_proxy):
    proxy = start_proxy(upstream.url, max_body_size=1000)
    chunk = b"800\r\n" + b"x" * 0x800 + b"\r\n"
    answer = raw(proxy.server.port, b"POST /v1/files HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + chunk + b"0\r\n\r\n")
    assert status_of(answer) == 413


def test_headers_over_the_limit_are_431(upstream, start_proxy):
    proxy = start_proxy(upstream.url, max_header_size=2048)
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 200) for i in range(20))
    answer = raw(proxy.server.port, b"GET /v1/files HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert status_of(answer) == 431
    assert upstream.seen == []


def test_require_proxy_key(upstream, start_proxy):
    proxy = start_proxy(upstream.url, require_proxy_key="pk-secret")
    denied = raw(proxy.server.port, b"GET /v1/files HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    wrong = raw(proxy.server.port, b"GET /v1/files HTTP/1.1\r\nHost: x\r\nX-Proxy-Key: nope\r\nConnection: close\r\n\r\n")
    allowed = raw(proxy.server.port, b"GET /v1/files HTTP/1.1\r\nHost: x\r\nX-Proxy-Key: pk-secret\r\n"
                  b"Connection: close\r\n\r\n")
    assert (status_of(denied), status_of(wrong), status_of(allowed)) == (401, 401, 200)
    (seen,) = upstream.seen
    assert "x-proxy-key" not in {k.lower() for k, _ in seen[2]}  # the proxy's key never leaves it


def test_non_ascii_header_values_pass_unchanged(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    request = b"GET /v1/utf8-header HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    line = "x-note: café ✓\r\n".encode()
    assert line in raw(upstream.port, request).lower()
    assert line in raw(proxy.server.port, request).lower()
