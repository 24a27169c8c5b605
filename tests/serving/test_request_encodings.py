"""Compressed request bodies reach the upstream byte for byte; only the recorder's private copy
is decoded (for parsing), and a copy it cannot or will not decode is a parse error, not a crash."""

from __future__ import annotations

import dataclasses
import gzip
import json
import socket
import zlib

import httpx2
import pytest

from proxy.assistants.parse import parse
from proxy.assistants.wire import MAX_DECODED_BODY
from proxy.assistants.facts import ExchangeFact
from tests.faults.faulty_upstream import FaultyUpstream
from tests.recording.recorded import exchange

BODY = json.dumps({"messages": [{"role": "user", "content": "hello " * 200}], "metadata": {"k": "v"}}).encode()
# Bytes as a client would label them: real gzip/deflate, stacked codings (applied left to right),
# and codings nobody here decodes (their bytes are opaque to the proxy: it must not look).
ENCODED = {
    "gzip": gzip.compress(BODY, mtime=0),
    "deflate": zlib.compress(BODY),
    "br": b"\x1b\xff\x00\xf8\x9f\x05" + bytes(range(200)),
    "zstd": b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 2,
    "x-unknown-coding": b"\x00\x01 not json at all \xff\xfe",
    "gzip, deflate": zlib.compress(gzip.compress(BODY, mtime=0)),
    "gzip, br": b"\x1b\x10\x00" + gzip.compress(BODY, mtime=0),
}


@pytest.fixture
def raw_upstream():
    up = FaultyUpstream().start()
    yield up
    up.stop()


def _post(port: int, encoding: str, body: bytes, chunked: bool) -> bytes:
    head = (f"POST /v1/threads HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Encoding: {encoding}\r\nAuthorization: Bearer sk-enc\r\nConnection: close\r\n")
    if chunked:
        half = len(body) // 2
        framed = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]) if part)
        data = head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
    else:
        data = head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("encoding", list(ENCODED))
def test_compressed_request_body_reaches_the_upstream_byte_for_byte(raw_upstream, start_proxy, encoding, chunked):
    proxy = start_proxy(raw_upstream.url, upstream_timeout=10)
    body = ENCODED[encoding]
    answer = _post(proxy.server.port, encoding, body, chunked)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]

    (seen,) = raw_upstream.log
    assert seen.body == body
    assert seen.headers["content-encoding"] == encoding
    if not chunked:
        assert seen.headers["content-length"] == str(len(body))
    (recorded,) = proxy.recorder.wait_for(1)
    assert recorded.request_body == body and recorded.request_body_size == len(body)


def test_recorded_row_is_parsed_from_the_decoded_body(emulator, start_proxy):
    """httpx (the SDK's HTTP library) posts a gzip body to the emulator through the proxy: the
    emulator decodes what arrived byte for byte, and the recorder decodes its own copy."""
    proxy = start_proxy(emulator.url, upstream_timeout=10)
    payload = {"model": "gpt-4o-mini", "name": "zipped", "instructions": "x" * 2000}
    compressed = gzip.compress(json.dumps(payload).encode())
    response = httpx2.post(f"{proxy.base_url}/assistants", content=compressed, timeout=30, headers={
        "Authorization": "Bearer sk-enc", "OpenAI-Beta": "assistants=v2",
        "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "zipped"

    (recorded,) = proxy.recorder.wait_for(1)
    assert recorded.request_body == compressed
    fact = parse(recorded, capture_content=False)[0]
    assert isinstance(fact, ExchangeFact)
    assert (fact.operation, fact.status_code, fact.parse_error) == ("assistants.create", 200, None)
    assert fact.model == "gpt-4o-mini" and fact.bytes_in == len(compressed)


def _with_request_body(name: str, body: bytes, encoding: str):
    ex = exchange(name, request_headers=[("content-encoding", encoding)])
    return dataclasses.replace(ex, request_body=body, request_body_size=len(body))


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", lambda b: gzip.compress(b)),
    ("deflate", zlib.compress),
    ("gzip, deflate", lambda b: zlib.compress(gzip.compress(b))),
    ("deflate, gzip", lambda b: gzip.compress(zlib.compress(b))),
    ("identity, gzip", lambda b: gzip.compress(b)),
], ids=["gzip", "deflate", "gzip-deflate", "deflate-gzip", "identity-gzip"])
def test_recorder_decodes_every_coding_of_its_copy(encoding, encode):
    plain = parse(exchange("synthetic_runs_submit_tool_outputs"), capture_content=True)
    raw = exchange("synthetic_runs_submit_tool_outputs").request_body
    facts = parse(_with_request_body("synthetic_runs_submit_tool_outputs", encode(raw), encoding), capture_content=True)
    assert facts[0].parse_error is None
    assert facts[1:] == plain[1:] and len(plain) > 1


def _bomb(wbits: int, size: int = 4 * MAX_DECODED_BODY) -> bytes:
    """`size` zero bytes compressed (about 1000:1), without holding them in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(1 << 20)
    return b"".join(compressor.compress(zeros) for _ in range(size >> 20)) + compressor.flush()


GZIP, ZLIB = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS


@pytest.mark.parametrize("encoding, make_body, error", [
    ("zstd", lambda: ENCODED["zstd"], "request:unsupported_encoding:zstd"),
    ("x-unknown-coding", lambda: ENCODED["x-unknown-coding"], "request:unsupported_encoding:x-unknown-coding"),
    ("gzip, x-unknown-coding", lambda: ENCODED["x-unknown-coding"], "request:unsupported_encoding:x-unknown-coding"),
    ("gzip", lambda: b"not gzip at all", "request:bad_gzip:error"),
    # a small body that decodes to four times the cap: decoding stops at the cap
    ("gzip", lambda: _bomb(GZIP), "request:decoded_too_large:gzip"),
    ("deflate, gzip", lambda: gzip.compress(_bomb(ZLIB)), "request:decoded_too_large:deflate"),
], ids=["zstd", "unknown", "stacked-unknown", "bad-gzip", "gzip-bomb", "stacked-bomb"])
def test_undecodable_or_oversized_copies_are_parse_errors(encoding, make_body, error):
    ex = _with_request_body("synthetic_runs_submit_tool_outputs", make_body(), encoding)
    fact = parse(ex, capture_content=False)[0]
    assert isinstance(fact, ExchangeFact)
    assert fact.parse_error == error and fact.operation == "runs.submit_tool_outputs"
