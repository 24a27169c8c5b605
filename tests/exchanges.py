"""The one factory for test exchanges: an `Exchange` as the forwarder hands it to the recorder.

Every field has a plausible value (an SDK request for a run, answered 200 with JSON) and the sizes
match the bodies; a test says only what it is about. Fixture-based exchanges
(tests/recording/recorded.py) and sink tests (tests/sinks/factories.py) build on it.
"""

from __future__ import annotations

from typing import Any

from proxy.serving.exchange import Exchange, new_exchange_id

T0 = 1_700_000_000.0  # started_at of an exchange with t=0


def exchange(
    i: int = 0, *, method: str = "GET", path: str = "/v1/threads/thread_1/runs/run_1", t: float = 0.0,
    duration: float = 0.2, status: int | None = 200, origin: str = "client",
    body: bytes = b'{"object":"thread"}', request_body: bytes = b"", **fields: Any,
) -> Exchange:
    """`i` numbers it (its upstream x-request-id is req_<i>); `t` is seconds after T0; `body` is
    the response body; any other Exchange field can be given as is."""
    values: dict[str, Any] = dict(
        exchange_id=new_exchange_id(), worker="w0", origin=origin, started_at=T0 + t, ttfb_s=duration / 2,
        duration_s=duration, proxy_overhead_s=0.001, method=method, path=path, query="",
        request_headers=(("user-agent", "OpenAI/Python 1.54.0"), ("openai-beta", "assistants=v2")),
        key_fingerprint="fp-test", request_body=request_body, request_body_size=len(request_body),
        status=status, response_headers=(("x-request-id", f"req_{i}"), ("content-type", "application/json")),
        response_body=body, response_body_size=len(body), upstream="http://upstream",
    )
    values.update(fields)
    return Exchange(**values)
