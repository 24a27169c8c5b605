"""End to end: the real openai SDK -> the proxy -> an upstream the test controls."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import openai
import pytest

from proxy.serving.forward import HOP_BY_HOP
from tests.serving.upstreams import GZIP_BODY, HOP_BY_HOP_RESPONSE, OPENAI_ERROR, Upstream
from tests.servers import ServerThread, free_port, serve

KEY = "sk-test-0123456789abcdef"


def client(base_url: str, **kw) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0, timeout=10, **kw)


def raw_get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.getheaders(), body


def test_json_call_forwards_and_records_without_the_key(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    assistant = client(proxy.base_url).beta.assistants.create(model="gpt-4o", name="a")
    assert assistant.id == "asst_1"

    method, path, headers, size = upstream.seen[-1]
    names = {k.lower(): v for k, v in headers}
    assert (method, path) == ("POST", "/v1/assistants")
    assert names["authorization"] == f"Bearer {KEY}"  # forwarded to the upstream
    assert names["host"] == upstream.url.removeprefix("http://")
    assert names["openai-beta"] == "assistants=v2"
    assert "user-agent" in names and names["user-agent"].startswith("OpenAI/Python")
    assert size == int(names["content-length"]) > 0

    (exchange,) = proxy.recorder.wait_for(1)
    assert exchange.status == 200 and exchange.method == "POST" and exchange.path == "/v1/assistants"
    assert json.loads(exchange.response_body)["id"] == "asst_1"
    assert json.loads(exchange.request_body)["model"] == "gpt-4o"
    assert exchange.request_body_size == size
    assert exchange.key_fingerprint and exchange.key_fingerprint.startswith("kfp_")
    assert KEY not in repr(exchange) and KEY[3:] not in exchange.key_fingerprint
    assert exchange.header("x-request-id", response=True) == "req_abc"
    assert exchange.ttfb_s is not None and 0 <= exchange.proxy_overhead_s <= exchange.duration_s


def test_same_key_same_fingerprint_other_key_other(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    client(proxy.base_url).beta.assistants.list()
    client(proxy.base_url).beta.assistants.list()
    openai.OpenAI(api_key="sk-other", base_url=proxy.base_url, max_retries=0).beta.assistants.list()
    a, b, c = proxy.recorder.wait_for(3)
    assert a.key_fingerprint == b.key_fingerprint != c.key_fingerprint


def test_azure_paths_and_api_key_header(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    azure = openai.AzureOpenAI(api_key=KEY, azure_endpoint=proxy.url, api_version="2024-05-01-preview",
                               max_retries=0)
    azure.beta.assistants.list()
    method, path, headers, _ = upstream.seen[-1]
    assert path == "/openai/assistants?api-version=2024-05-01-preview"
    assert dict((k.lower(), v) for k, v in headers)["api-key"] == KEY
    (exchange,) = proxy.recorder.wait_for(1)
    assert exchange.query == "api-version=2024-05-01-preview"
    assert "api-key" not in dict(exchange.request_headers) and exchange.key_fingerprint.startswith("kfp_")


def test_first_sse_event_arrives_while_upstream_holds_the_stream(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    stream = client(proxy.base_url).beta.threads.runs.create("thread_1", assistant_id="asst_1", stream=True)
    events = iter(stream)
    first = next(events)
    assert first.event == "thread.run.created"
    assert not upstream.stream_cancelled.is_set()
    assert proxy.recorder.exchanges == []  # the upstream has not finished: nothing recorded yet
    upstream.let_go()
    rest = [event.event for event in events]
    assert rest == ["thread.run.completed"]
    (exchange,) = proxy.recorder.wait_for(1)
    assert exchange.error_type is None and b"thread.run.completed" in exchange.response_body
    # time to the first event was measured before the held part of the stream
    assert exchange.ttfb_s <= float(exchange.extra["first_event_s"]) < exchange.duration_s


def test_gzip_bytes_pass_through_untouched(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    direct = raw_get(upstream.url, "/v1/gzip", {"Accept-Encoding": "gzip"})
    proxied = raw_get(proxy.url, "/v1/gzip", {"Accept-Encoding": "gzip"})
    assert proxied[2] == direct[2] == GZIP_BODY
    headers = {k.lower(): v for k, v in proxied[1]}
    assert headers["content-encoding"] == "gzip" and headers["content-length"] == str(len(GZIP_BODY))
    # and the SDK (which asks for gzip) decodes it as usual
    assert client(proxy.base_url).get("/gzip", cast_to=object)["object"] == "list"
    exchange = proxy.recorder.wait_for(1)[0]
    assert exchange.response_body == GZIP_BODY  # the recorded copy is the wire bytes


def test_upstream_errors_pass_through_unchanged(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    with pytest.raises(openai.NotFoundError) as caught:
        client(proxy.base_url).get("/missing", cast_to=object)
    assert caught.value.body == OPENAI_ERROR["error"]
    assert caught.value.response.headers["x-request-id"] == "req_123"
    direct, proxied = raw_get(upstream.url, "/v1/missing"), raw_get(proxy.url, "/v1/missing")
    assert proxied[0] == direct[0] == 404 and proxied[2] == direct[2]


def test_refused_upstream_is_502_proxy_error(start_proxy):
    proxy = start_proxy(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(openai.APIStatusError) as caught:
        client(proxy.base_url).beta.assistants.list()
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "proxy_error" and caught.value.body["code"] == "upstream_unreachable"
    (exchange,) = proxy.recorder.wait_for(1)
    assert exchange.status == 502 and exchange.error_type == "upstream_unreachable"


def test_slow_upstream_is_504_proxy_error(upstream, start_proxy):
    proxy = start_proxy(upstream.url, upstream_timeout=0.3)
    with pytest.raises(openai.APIStatusError) as caught:
        client(proxy.base_url).get("/slow", cast_to=object)
    assert caught.value.status_code == 504 and caught.value.body["code"] == "upstream_timeout"
    (exchange,) = proxy.recorder.wait_for(1)
    assert exchange.error_type == "upstream_timeout"


def test_client_disconnect_mid_stream_cancels_the_upstream(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    sock = socket.create_connection(("127.0.0.1", proxy.server.port))
    sock.sendall(b"POST /v1/threads/thread_1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 2\r\n\r\n{}")
    received = b""
    while b"thread.run.created" not in received:
        received += sock.recv(65536)
    assert upstream.first_event_sent.is_set() and not upstream.stream_cancelled.is_set()
    sock.close()
    assert upstream.stream_cancelled.wait(5), "the upstream never saw the client go away"
    (exchange,) = proxy.recorder.wait_for(1)
    assert exchange.error_type == "client_disconnected" and b"thread.run.created" in exchange.response_body


def _read_chunked_until_failure(url: str, path: str) -> tuple[bytes, type[BaseException] | None]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    try:
        return resp.read(), None
    except http.client.IncompleteRead as exc:
        return exc.partial, type(exc)


def test_upstream_reset_mid_stream_reaches_the_client_as_a_failure(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    direct = _read_chunked_until_failure(upstream.url, "/v1/reset")
    proxied = _read_chunked_until_failure(proxy.url, "/v1/reset")
    assert direct[1] is http.client.IncompleteRead
    assert proxied == direct
    (exchange,) = proxy.recorder.wait_for(1)
    assert exchange.error_type == "upstream_reset" and exchange.response_body == direct[0]


def test_hop_by_hop_request_headers_are_not_forwarded(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    raw_get(proxy.url, "/v1/assistants", {"Connection": "keep-alive, X-Private", "X-Private": "1",
                                          "Keep-Alive": "timeout=5", "TE": "trailers",
                                          "Proxy-Authorization": "Basic eDp5", "X-End-To-End": "yes"})
    names = {k.lower() for k, _ in upstream.seen[-1][2]}
    assert "x-end-to-end" in names
    assert not names & (HOP_BY_HOP | {"x-private"})


@pytest.mark.parametrize("path", ["/v1/hop-by-hop", "/v1/hop-by-hop-chunked"])
def test_hop_by_hop_response_headers_never_reach_the_client(upstream, start_proxy, path):
    proxy = start_proxy(upstream.url)
    direct = raw_get(upstream.url, path)
    proxied = raw_get(proxy.url, path)
    listed = {"x-foo", "x-bar"}  # named by the upstream's Connection field
    hop = HOP_BY_HOP | listed | {"proxy-authenticate"}
    sent = {k.lower() for k, _ in direct[1]}
    assert {"connection", "keep-alive", "trailer", "proxy-authenticate"} | listed <= sent  # the upstream sent them
    received = [(k.lower(), v) for k, v in proxied[1]]
    assert not {k for k, _ in received} & (hop - {"transfer-encoding"}), received
    # the proxy frames the body itself: at most its own single Transfer-Encoding, never the upstream's copy
    assert [v for k, v in received if k == "transfer-encoding"] in ([], ["chunked"])
    # every end-to-end field passes unchanged, in order (Date is the upstream's clock)
    end_to_end = [(k, v) for k, v in direct[1] if k.lower() not in hop | {"date"}]
    assert [(k, v) for k, v in proxied[1] if k.lower() not in {"transfer-encoding", "date"}] == end_to_end
    assert {k.lower() for k, _ in end_to_end} >= {k.lower() for k, _ in HOP_BY_HOP_RESPONSE} - hop
    assert proxied[0] == direct[0] == 200 and proxied[2] == direct[2] == b'{"hop": false}'
    (exchange,) = proxy.recorder.wait_for(1)
    assert exchange.status == 200 and exchange.error_type is None


@pytest.mark.parametrize("tracing", [False, True])
def test_traceparent(upstream, start_proxy, tracing):
    proxy = start_proxy(upstream.url, tracing=tracing)
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    raw_get(proxy.url, "/v1/assistants", {"traceparent": incoming})
    sent = dict((k.lower(), v) for k, v in upstream.seen[-1][2])["traceparent"]
    (exchange,) = proxy.recorder.wait_for(1)
    if not tracing:
        assert sent == incoming and exchange.traceparent is None
        return
    version, trace_id, span_id, flags = sent.split("-")
    assert trace_id == "0af7651916cd43dd8448eb211c80319c" and span_id != "b7ad6b7169203331"
    assert exchange.traceparent == sent and exchange.extra["client_traceparent"] == incoming
    raw_get(proxy.url, "/v1/assistants")  # no client trace: a new one
    assert dict((k.lower(), v) for k, v in upstream.seen[-1][2])["traceparent"].split("-")[1] != trace_id


def test_recorder_failure_never_fails_the_request(upstream, start_proxy):
    class Broken:
        def submit(self, exchange):
            raise OSError("disk full")

    proxy = start_proxy(upstream.url, recorder=Broken())
    assert client(proxy.base_url).beta.assistants.create(model="gpt-4o").id == "asst_1"


def test_client_disconnect_mid_upload_cancels_the_upstream_request(upstream, start_proxy):
    proxy = start_proxy(upstream.url)
    sock = socket.create_connection(("127.0.0.1", proxy.server.port))
    sock.sendall(b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                 b"Content-Length: 10000000\r\n\r\n" + b"x" * 1_000_000)
    assert upstream.upload_started.wait(30), "the upload never reached the upstream"
    sock.close()
    assert upstream.upload_aborted.wait(5), "the upstream never saw the upload stop"
    (exchange,) = proxy.recorder.wait_for(1)
    assert exchange.error_type == "client_disconnected" and exchange.status is None
    assert 0 < exchange.request_body_size <= 1_000_000
    assert upstream.seen == []  # the upstream never got a complete request
