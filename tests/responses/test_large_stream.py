"""A streamed response of 100,000 events and a 50 MB output, through the proxy from a loopback
upstream: the client gets every byte, the recorder keeps only the --body-cap copy, and the rows
say what was cut."""

from __future__ import annotations

import hashlib
import http.client
import json

from aiohttp import web

from proxy.config import MiB
from tests.recording.recorded import rows
from tests.servers import serve

EVENTS = 100_000
DELTA = "x" * 500  # 100,000 deltas of 500 characters: a 50 MB output
RESPONSE = {"id": "resp_large", "object": "response", "created_at": 1741965101, "status": "in_progress",
            "model": "gpt-4o", "output": [], "tools": [], "usage": None}


def event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def stream_parts():
    """The stream in batches of events (never whole in memory)."""
    yield event("response.created", {"type": "response.created", "response": RESPONSE, "sequence_number": 0})
    batch = []
    for n in range(1, EVENTS - 1):
        batch.append(event("response.output_text.delta", {
            "type": "response.output_text.delta", "item_id": "msg_large", "output_index": 0, "content_index": 0,
            "delta": DELTA, "sequence_number": n}))
        if len(batch) == 1000:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch)
    done = dict(RESPONSE, status="completed", output=[{"type": "message", "id": "msg_large", "status": "completed",
                                                       "role": "assistant", "content": [{"type": "output_text",
                                                       "text": DELTA * (EVENTS - 2), "annotations": []}]}],
                usage={"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 12_500_000,
                       "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 12_500_005})
    yield event("response.completed", {"type": "response.completed", "response": done, "sequence_number": EVENTS - 1})


def upstream_app() -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        for part in stream_parts():
            await response.write(part)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/responses", handle)
    return app


class CapturedSizes:
    """A sink that notes how many body bytes each exchange reached the recorder with."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def on_exchange(self, exchange, facts) -> None:
        self.sizes.append((len(exchange.response_body), exchange.response_body_size))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_long_stream_recorded_under_the_body_cap(audit):
    expected = hashlib.sha256()
    expected_size = 0
    for part in stream_parts():
        expected.update(part)
        expected_size += len(part)
    assert expected_size > 100 * 1_000_000  # the deltas, then the completed response repeating them

    sizes = CapturedSizes()
    with serve(upstream_app) as upstream:
        proxy = audit.start(upstream.url, extra_sinks=[sizes])
        conn = http.client.HTTPConnection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]), timeout=120)
        conn.request("POST", "/v1/responses", body=b'{"model":"gpt-4o","input":"long","stream":true}',
                     headers={"Authorization": "Bearer sk-large", "Content-Type": "application/json"})
        resp = conn.getresponse()
        got, got_size = hashlib.sha256(), 0
        while chunk := resp.read(1 << 20):
            got.update(chunk)
            got_size += len(chunk)
        conn.close()
        con = proxy.finish()

    assert resp.status == 200 and (got_size, got.hexdigest()) == (expected_size, expected.hexdigest())
    assert sizes.sizes == [(8 * MiB, expected_size)]  # the recorder saw the capped copy only
    (ex,) = rows(con, "SELECT * FROM exchanges")
    assert (ex["operation"], ex["api"], ex["response_id"], ex["stream"]) == (
        "responses.create", "responses", "resp_large", True)
    assert (ex["bytes_out"], ex["body_truncated"], ex["error_type"]) == (expected_size, True, None)
    (row,) = rows(con, "SELECT * FROM responses")
    # the completed event lay past the cap: the row says so and claims no tokens
    assert (row["id"], row["status"], row["streamed"], row["truncated"]) == ("resp_large", "in_progress", True, True)
    assert (row["input_tokens"], row["output_tokens"], row["usage_invalid"]) == (None, None, None)
