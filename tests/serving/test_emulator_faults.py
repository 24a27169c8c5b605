"""Upstream trouble made by the emulator's faults (`X-Emulator-Fault`), seen through the proxy by
the official openai SDK (and a raw socket for a client that goes away): a slow answer is a 504,
a body that stalls is cut, a client that leaves mid-stream stops the emulator's stream; every
case is recorded with its error type."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import openai
import pytest
from aiohttp import web

from emulator.app import make_app
from tests.plugins.emulator import FAST, RunningEmulator
from tests.servers import ServerThread

KEY = "sk-emulator-faults-0123456789"
UPSTREAM_TIMEOUT = 0.5  # the proxy's --upstream-timeout in these tests
SLOW_EVENT_MS = 300  # the emulator's pause after each streamed event (slow_body)


def sdk(base_url: str, **kw) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(api_key=KEY, base_url=base_url, timeout=20, **kw)


class WatchedEmulator(RunningEmulator):
    """The emulator, with a note of how each request's handler ended (the test's only view into it)."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, str, type[BaseException] | None, float]] = []
        self.ended_event = threading.Event()

        def app() -> web.Application:
            application = make_app(FAST)
            application.middlewares.insert(0, self._watch)
            return application

        super().__init__(ServerThread(app).start(), FAST)

    @web.middleware
    async def _watch(self, request: web.Request, handler) -> web.StreamResponse:
        error = None
        try:
            return await handler(request)
        except BaseException as exc:
            error = type(exc)
            raise
        finally:
            self.ended.append((request.method, request.path, error, time.monotonic()))
            self.ended_event.set()

    def wait_ended(self, method: str, path_end: str, since: int,
                   timeout: float) -> tuple[type[BaseException] | None, float]:
        """How the first matching request after the `since`-th ended: (exception type or None, when)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m, path, error, at in self.ended[since:]:
                if m == method and path.endswith(path_end):
                    return error, at
            self.ended_event.wait(0.05)
            self.ended_event.clear()
        raise AssertionError(f"the emulator's {method} ...{path_end} never ended: {self.ended}")


@pytest.fixture
def watched() -> WatchedEmulator:
    running = WatchedEmulator()
    try:
        yield running
    finally:
        running.server.stop()


@pytest.fixture
def slow_proxy(watched, start_proxy):
    """The proxy in front of the watched emulator, giving up after UPSTREAM_TIMEOUT of silence."""
    return start_proxy(watched.url, upstream_timeout=UPSTREAM_TIMEOUT)


def test_emulator_latency_is_a_504_the_sdk_raises(slow_proxy):
    with pytest.raises(openai.APIStatusError) as caught:  # the emulator would answer 200 after 1.5 s
        sdk(slow_proxy.base_url).beta.assistants.list(extra_headers={"X-Emulator-Fault": "latency=1500"})
    assert caught.value.status_code == 504
    assert caught.value.body["type"] == "proxy_error" and caught.value.body["code"] == "upstream_timeout"
    (exchange,) = slow_proxy.recorder.wait_for(1)
    assert exchange.status == 504 and exchange.error_type == "upstream_timeout"
    assert exchange.path == "/v1/assistants"


def test_sdk_retry_after_a_504_gets_the_answer(slow_proxy):
    # first=1: only the first attempt (x-stainless-retry-count 0) is slow, so the SDK's retry succeeds
    page = sdk(slow_proxy.base_url, max_retries=1).beta.assistants.list(
        extra_headers={"X-Emulator-Fault": "latency=1500,first=1"})
    assert page.data == []
    first, retry = slow_proxy.recorder.wait_for(2)
    assert (first.status, first.error_type) == (504, "upstream_timeout")
    assert (retry.status, retry.error_type) == (200, None)


def test_emulator_body_stalling_mid_json_cuts_the_response(slow_proxy):
    # The head and a quarter of the body arrive, then the emulator is silent for 1.5 s: too late for
    # a 504, so the proxy cuts the client's connection and the SDK sees a broken response.
    with pytest.raises(openai.APIConnectionError):
        sdk(slow_proxy.base_url).beta.assistants.create(
            model="gpt-4o", instructions="x" * 400, extra_headers={"X-Emulator-Fault": "slow_body=1500"})
    (exchange,) = slow_proxy.recorder.wait_for(1)
    assert exchange.status == 200 and exchange.error_type == "upstream_timeout"
    assert 0 < len(exchange.response_body) < 1000


def _stream_request(thread_id: str, assistant_id: str) -> bytes:
    body = json.dumps({"assistant_id": assistant_id, "stream": True}).encode()
    return (f"POST /v1/threads/{thread_id}/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"OpenAI-Beta: assistants=v2\r\nContent-Type: application/json\r\n"
            f"X-Emulator-Fault: slow_body={SLOW_EVENT_MS}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def test_client_leaving_mid_stream_stops_the_emulator_stream(watched, slow_proxy):
    setup = sdk(watched.base_url)  # straight to the emulator: only the stream goes through the proxy
    assistant = setup.beta.assistants.create(model="gpt-4o")
    ask = [{"role": "user", "content": "Tell me a long story please"}]
    # the same kind of run streamed whole, directly, to count its events
    other = setup.beta.threads.create(messages=ask)
    events = sum(1 for _ in setup.beta.threads.runs.create(thread_id=other.id, assistant_id=assistant.id,
                                                           stream=True))
    assert events >= 10  # so streaming it whole takes events * SLOW_EVENT_MS, seconds
    thread = setup.beta.threads.create(messages=ask)
    setup.close()
    since = len(watched.ended)

    sock = socket.create_connection(("127.0.0.1", slow_proxy.server.port), timeout=10)
    sock.sendall(_stream_request(thread.id, assistant.id))
    received = b""
    while b"event: thread.run.created" not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 200 ") and b"text/event-stream" in received
    sock.close()
    left = time.monotonic()

    error, ended = watched.wait_ended("POST", "/runs", since, timeout=events * SLOW_EVENT_MS / 1000)
    assert error is not None and issubclass(error, (ConnectionError, asyncio.CancelledError)), error
    assert ended - left < events * SLOW_EVENT_MS / 1000 / 2, "the emulator kept streaming to nobody"
    (exchange,) = slow_proxy.recorder.wait_for(1)
    assert exchange.error_type == "client_disconnected" and exchange.status == 200
    assert b"thread.run.created" in exchange.response_body
    assert b"thread.run.completed" not in exchange.response_body and b"[DONE]" not in exchange.response_body
