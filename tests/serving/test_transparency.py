"""What a client receives through the proxy equals what it receives directly; hostile request
targets and headers never steer the proxy away from its configured upstream."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

import pytest
from aiohttp import web

from proxy.serving.forward import HOP_BY_HOP
from tests.faults.faulty_upstream import FaultyUpstream
from tests.servers import free_port, serve

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


# --- every request target and field line, as sent; the proxy's own answers ------------------------


@pytest.fixture
def raw_upstream():
    """An upstream that keeps each request head exactly as it arrived (`.log[i].head`)."""
    up = FaultyUpstream().start()
    try:
        yield up
    finally:
        up.stop()


def answer(port: int, data: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send `data` as is; the response's status, fields (as sent) and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.getheaders(), response.read()


def assert_own_answer(status: int, fields: list[tuple[str, str]], body: bytes, code: str | None = None) -> None:
    """The proxy answered itself: an OpenAI-shaped error and no field of aiohttp's own."""
    assert not {name.lower() for name, _ in fields} & {"server", "date"}, (status, fields)
    error = json.loads(body)["error"]
    assert error["type"] == "proxy_error" and set(error) == {"message", "type", "param", "code"}, body
    if code is not None:
        assert error["code"] == code, body


FORWARDED = "forwarded"
ODD_TARGETS = [
    ("GET", b"/v1/files%0Aid", FORWARDED),
    ("GET", b"/v1/files%0D%0AX-Injected:%201", FORWARDED),
    ("GET", b"/v1/files/%00", FORWARDED),
    ("GET", b"/v1/files/a%2Fb%2F..%2Fc", FORWARDED),
    ("GET", b"/v1//files", FORWARDED),
    ("GET", b"/v1/files?after=a%0Ab&limit=1", FORWARDED),
    ("GET", b"/v1/files?a=b?c/d", FORWARDED),
    ("GET", b"/v1/caf%C3%A9/%E2%9C%93", FORWARDED),
    ("GET", b"/v1/%zz/%", FORWARDED),
    ("GET", b"/v1/files;type=a", FORWARDED),
    ("GET", b"/v1/./files/../files", FORWARDED),
    ("GET", b"/v1/" + b"a" * 20000, FORWARDED),
    ("OPTIONS", b"/v1/files", FORWARDED),
    ("OPTIONS", b"*", 400),
    ("GET", b"*", 400),
    ("GET", b"//v1/files", 400),
    ("GET", b"/v1/files?", 400),  # an empty query cannot be sent as such by the upstream client
    ("GET", b"/v1/files#top", 400),
    ("GET", b"/v1/files?a=1#top", 400),
    ("GET", "/v1/café".encode(), 400),  # raw non-ASCII bytes: refused by the HTTP parser
    ("GET", b"/v1/\xff", 400),
]


@pytest.mark.parametrize("method, target, outcome", ODD_TARGETS,
                         ids=[f"{m} {t[:40]!r}" for m, t, _ in ODD_TARGETS])
def test_every_request_target_is_forwarded_as_sent_or_refused_with_400(raw_upstream, start_proxy, method, target,
                                                                        outcome):
    proxy = start_proxy(raw_upstream.url)
    status, fields, body = answer(proxy.server.port, method.encode() + b" " + target
                                  + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    if outcome == FORWARDED:
        (seen,) = raw_upstream.log
        assert seen.head.split(b"\r\n")[0] == method.encode() + b" " + target + b" HTTP/1.1"
        assert status == 200 and body == b'{"object":"list","data":[]}'
        assert ("x-request-id", seen.request_id) in fields  # the upstream's answer, not the proxy's
        (exchange,) = proxy.recorder.wait_for(1)
        assert (exchange.path + "?" + exchange.query).rstrip("?").encode() == target and exchange.status == 200
    else:
        assert status == 400, (status, body)
        assert_own_answer(status, fields, body)
        assert raw_upstream.log == []


FIELD_LINES = {
    "same name, other case": [b"X-Dup: 1", b"x-dup: 2", b"X-DUP: 3"],
    "interleaved": [b"X-Dup: 1", b"X-Other: a", b"x-dup: 2", b"x-other: b"],
    "same spelling": [b"X-Dup: 1", b"X-Dup: 2"],
    "openai-beta": [b"OpenAI-Beta: assistants=v2", b"openai-beta: assistants=v1"],
    "accept": [b"Accept: application/json", b"accept: text/event-stream"],
    "sdk fields": [b"X-Stainless-Lang: python", b"x-stainless-lang: js", b"X-Stainless-Retry-Count: 0"],
    "credentials": [b"Authorization: Bearer sk-a", b"authorization: Bearer sk-b", b"api-key: k1", b"API-KEY: k2"],
    "cookies": [b"Cookie: a=1", b"cookie: b=2", b"COOKIE: c=3"],
}


@pytest.mark.parametrize("lines", FIELD_LINES.values(), ids=FIELD_LINES.keys())
def test_every_request_field_line_reaches_the_upstream_in_order_as_spelled(raw_upstream, start_proxy, lines):
    proxy = start_proxy(raw_upstream.url)
    status, _, _ = answer(proxy.server.port, b"GET /v1/files HTTP/1.1\r\nHost: x\r\n" + b"\r\n".join(lines)
                          + b"\r\nX-Last: end\r\nConnection: close\r\n\r\n")
    assert status == 200
    (seen,) = raw_upstream.log
    request_line, host, *forwarded = seen.head.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert host == b"Host: " + raw_upstream.url.removeprefix("http://").encode()
    assert forwarded == [*lines, b"X-Last: end"]


async def _bad_upstream_field(conn) -> bool:
    await conn.send(b"HTTP/1.1 200 OK\r\nx-bad: a\rb\r\ncontent-length: 2\r\n\r\n{}")
    return True


async def _silent(conn) -> bool:
    await conn.reader.read()  # until the proxy gives up
    return False


async def _close(conn) -> bool:
    return False  # no answer, a clean close


async def _reset(conn) -> bool:
    await conn.reset(pause=0)
    return False


HEAD = b"GET /v1/files HTTP/1.1\r\nHost: x\r\n"
OWN_ANSWERS = {  # settings, upstream behaviour (None: nothing listens), request, status, code
    "400 absolute-form": ({}, ..., b"GET http://evil.example/v1/files HTTP/1.1\r\nHost: x\r\n\r\n", 400,
                          "invalid_request_target"),
    "400 OPTIONS *": ({}, ..., b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_target"),
    "400 fragment": ({}, ..., b"GET /v1/files#x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_target"),
    "400 parser": ({}, ..., HEAD + b"X-Bad: a\x01b\r\n\r\n", 400, "invalid_request"),
    "401": ({"require_proxy_key": "pk-right"}, ..., HEAD + b"X-Proxy-Key: pk-wrong\r\n\r\n", 401,
            "invalid_proxy_key"),
    "405": ({}, ..., b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 405,
            "method_not_allowed"),
    "408": ({"header_timeout": 0.5}, ..., HEAD, 408, "request_timeout"),
    "413 length": ({"max_body_size": 1000}, ..., b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
                   + b"x" * 5000, 413, "request_too_large"),
    "413 chunked": ({"max_body_size": 1000}, ..., b"POST /v1/files HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                    b"\r\n\r\n800\r\n" + b"x" * 0x800 + b"\r\n0\r\n\r\n", 413, "request_too_large"),
    "414": ({"max_header_size": 4096}, ..., b"GET /v1/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414,
            "request_target_too_long"),
    "417": ({}, ..., b"POST /v1/files HTTP/1.1\r\nHost: x\r\nExpect: a-miracle\r\nContent-Length: 2\r\n\r\n{}",
            417, "expectation_failed"),
    "431 block": ({"max_header_size": 2048}, ..., HEAD + b"".join(b"X-F%d: %s\r\n" % (i, b"y" * 200)
                                                                  for i in range(20)) + b"\r\n",
                  431, "request_header_fields_too_large"),
    "431 line": ({"max_header_size": 4096}, ..., HEAD + b"X-Long: " + b"y" * 9000 + b"\r\n\r\n", 431,
                 "request_header_fields_too_large"),
    "431 count": ({}, ..., HEAD + b"".join(b"X-F%d: y\r\n" % i for i in range(200)) + b"\r\n", 431,
                  "request_header_fields_too_large"),
    "502 refused": ({}, None, HEAD + b"\r\n", 502, "upstream_unreachable"),
    "502 closed": ({}, _close, HEAD + b"\r\n", 502, "upstream_reset"),
    "502 reset": ({}, _reset, HEAD + b"\r\n", 502, None),
    "502 malformed": ({}, _bad_upstream_field, HEAD + b"\r\n", 502, "upstream_error"),
    "504": ({"upstream_timeout": 0.5}, _silent, HEAD + b"\r\n", 504, "upstream_timeout"),
}


@pytest.mark.parametrize("settings, behaviour, request_bytes, status, code", OWN_ANSWERS.values(),
                         ids=OWN_ANSWERS.keys())
def test_the_proxys_own_answers_carry_no_server_or_date(raw_upstream, start_proxy, settings, behaviour,
                                                       request_bytes, status, code):
    if behaviour is not ...:
        raw_upstream.behaviour = behaviour
    upstream_url = raw_upstream.url if behaviour is not None else f"http://127.0.0.1:{free_port()}"
    proxy = start_proxy(upstream_url, **settings)
    got, fields, body = answer(proxy.server.port, request_bytes)
    assert got == status, body
    assert_own_answer(got, fields, body, code)
