"""Upstream faults, end to end: a real `assistants-audit serve` process with a real store, in front
of an upstream that misbehaves on command (`faulty_upstream.py`), driven by the official `openai`
SDK (or raw HTTP where bytes matter).

Each fault is made twice, once with the client talking to the faulty upstream directly and once
through the proxy, and the test asserts:
1. the client saw what it would have seen without the proxy (same result or exception class,
   status, body, end-to-end headers, stream events, bytes); where the proxy must answer itself
   (nothing listening, nothing said in time) it answers the documented OpenAI-shaped 502/504,
   which the SDK retries exactly as it retries a connection failure;
2. the store holds every exchange the proxy forwarded exactly once (raw `exchange_log` rows
   counted by exchange id, matched to the `x-request-id` of every response head the upstream
   sent), with what went wrong (`error_type`, `bytes_out`, `body_truncated`, `parse_error`,
   `retry_count`).
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import orjson
import pytest

from tests.faults.faulty_upstream import (
    JSON,
    VIA,
    FaultyUpstream,
    openai_error,
    reset_mid_body,
    respond,
    slow_head,
    sse_event,
    sse_stream,
    trickle,
)
from tests.serving.test_serve import ServeProcess
from tests.recording.store_helpers import rows, wait_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the Assistants API is deprecated

KEY = "sk-upstream-faults-0123456789"
# --upstream-timeout: generous by default (this machine is shared and loaded: no test but the
# timeout ones may depend on a deadline), short where the upstream's silence is the fault
UPSTREAM_TIMEOUT = 30.0
SHORT_TIMEOUT = 1.5
BODY_CAP = 1 << 20  # --body-cap of the proxy under test
# Response fields that legitimately differ between two answers, or are hop-by-hop.
_VARYING = {"x-request-id", "date", "connection", "keep-alive", "transfer-encoding"}

ASSISTANT = {"id": "asst_fault", "object": "assistant", "created_at": 1, "name": "f", "description": None,
             "model": "gpt-4o", "instructions": None, "tools": [], "metadata": {}, "top_p": 1.0,
             "temperature": 1.0, "response_format": "auto"}


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    up = FaultyUpstream().start()
    try:
        yield up
    finally:
        up.stop()


def listens(pid: int, port: int) -> bool:
    """Process `pid` holds the listening TCP socket of `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    try:
        return any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:  # the process is gone
        return False


class Proxy:
    """`assistants-audit serve` as a subprocess, with its store. Other test runs share this
    machine: a port found free may be taken before the proxy binds it, and then something else
    answers on it. So the proxy must be the one listening, else it starts again on other ports."""

    def __init__(self, upstream_url: str, store: Path, upstream_timeout: float) -> None:
        self.store = store
        for _ in range(5):
            try:
                self.process = ServeProcess(upstream_url, store, "--no-enrich", "--body-cap", str(BODY_CAP),
                                            "--upstream-timeout", str(upstream_timeout), "--connect-timeout", "5")
            except AssertionError as exc:  # it exited before anything listened on its port
                if "address already in use" in str(exc).lower():
                    continue
                raise
            port = self.process.port

            def ours() -> bool:  # the supervisor's worker holds the listening socket
                return any(listens(pid, port) for pid in self.process.worker_pids())

            if wait_for(lambda: ours() or self.process.proc.poll() is not None, timeout=30) and ours():
                break
            assert "address already in use" in self.process.output().lower(), self.process.output()
            self.stop()
        else:
            raise AssertionError("no free port for the proxy")
        self.url = self.process.url

    def alive(self) -> bool:
        return self.process.proc.poll() is None and self.process.accepts()

    def stop(self) -> None:
        if self.process.proc.poll() is None:
            self.process.proc.kill()
            self.process.proc.wait()
        self.process.log.close()


@pytest.fixture
def start_proxy(tmp_path) -> Iterator[Callable[..., Proxy]]:
    started: list[Proxy] = []

    def start(upstream_url: str, upstream_timeout: float = UPSTREAM_TIMEOUT) -> Proxy:
        started.append(Proxy(upstream_url, tmp_path / "store", upstream_timeout))
        return started[-1]

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def proxy(upstream, start_proxy) -> Proxy:
    return start_proxy(upstream.url)


def sdk(base: str, via: str, *, max_retries: int = 0, timeout: float = 30) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=base + "/v1", max_retries=max_retries, timeout=timeout,
                         default_headers={VIA: via})


def both(upstream: FaultyUpstream, proxy: Proxy, **kwargs: Any) -> tuple[openai.OpenAI, openai.OpenAI]:
    """The same client twice: talking to the upstream directly, and through the proxy."""
    return sdk(upstream.url, "direct", **kwargs), sdk(proxy.url, "proxy", **kwargs)


# -- what the client saw -------------------------------------------------------------------------


@dataclass
class Seen:
    """What one SDK call gave its caller: a result, or an exception (with its HTTP response)."""

    result: Any = None
    error: type[BaseException] | None = None
    cause: type[BaseException] | None = None  # the transport's exception under the SDK's
    status: int | None = None
    body: bytes | None = None
    headers: list[tuple[str, str]] | None = None

    def same_as(self, other: "Seen") -> None:
        assert (self.error, self.cause, self.status, self.body, self.headers, self.result) == (
            other.error, other.cause, other.status, other.body, other.headers, other.result)


def e2e_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in headers.multi_items() if k.lower() not in _VARYING)


def seen(call: Callable[[], Any]) -> Seen:
    try:
        result = call()
    except Exception as exc:  # the class is what is compared
        response = getattr(exc, "response", None)
        if isinstance(response, httpx.Response):
            return Seen(error=type(exc), status=response.status_code, body=response.read(),
                        headers=e2e_headers(response.headers))
        return Seen(error=type(exc), cause=type(exc.__cause__) if exc.__cause__ else None)
    if hasattr(result, "model_dump"):
        result = result.model_dump()
    return Seen(result=result)


# -- what the store holds ------------------------------------------------------------------------


COLUMNS = ("exchange_id, upstream_request_id, status_code, error_type, retry_count, bytes_out, body_truncated, "
           "parse_error")


@dataclass(frozen=True)
class Row:
    exchange_id: str
    upstream_request_id: str | None
    status_code: int | None
    error_type: str | None
    retry_count: int | None
    bytes_out: int
    body_truncated: bool
    parse_error: str | None


def stored(proxy: Proxy, expected: int, timeout: float = 30.0) -> list[Row]:
    """The raw exchange_log rows, once at least `expected` arrived (the store catches up within
    about a second), in the order the requests started. No exchange id appears twice."""

    def fetch() -> list[Row]:
        sql = f"SELECT {COLUMNS} FROM exchange_log ORDER BY started_at, exchange_id"
        return [Row(*r) for r in rows(proxy.store, sql)]

    got = wait_for(lambda: (lambda r: r if len(r) >= expected else [])(fetch()), timeout=timeout) or fetch()
    assert len(got) == expected, got
    duplicates = rows(proxy.store, "SELECT exchange_id, count(*) FROM exchange_log GROUP BY 1 HAVING count(*) > 1")
    assert duplicates == []
    assert len({r.exchange_id for r in got}) == len(got)
    return got


def stored_once(proxy: Proxy, upstream: FaultyUpstream, unanswered: int = 0) -> list[Row]:
    """Every response head the upstream sent to the proxy is in the store exactly once, plus
    `unanswered` exchanges the upstream never answered (no request id); nothing else."""
    heads = upstream.heads("proxy")
    got = stored(proxy, len(heads) + unanswered)
    assert sorted(r.upstream_request_id for r in got if r.upstream_request_id) == sorted(heads)
    assert sum(r.upstream_request_id is None for r in got) == unanswered
    return got


def still_serving(proxy: Proxy, upstream: FaultyUpstream, client: openai.OpenAI) -> None:
    """The proxy process and its recorder survived: a normal call works and is stored too."""
    upstream.behaviour = respond(200, orjson.dumps(ASSISTANT))
    assert client.beta.assistants.retrieve("asst_fault").id == "asst_fault"
    assert proxy.alive()
    last = upstream.heads("proxy")[-1]
    assert wait_for(lambda: rows(proxy.store, f"SELECT count(*) FROM exchange_log WHERE upstream_request_id = '{last}'")
                    == [(1,)], timeout=30)


# -- refused, slow, silent -----------------------------------------------------------------------


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections are refused, and no other process
    can take the port while the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_upstream_refused_is_a_502_the_sdk_retries_like_a_refused_connection(start_proxy, refusing_port):
    port = refusing_port
    proxy = start_proxy(f"http://127.0.0.1:{port}")
    direct = sdk(f"http://127.0.0.1:{port}", "direct", max_retries=1)
    proxied = sdk(proxy.url, "proxy", max_retries=1)
    with pytest.raises(openai.APIConnectionError):
        direct.beta.assistants.list()
    with pytest.raises(openai.InternalServerError) as info:
        proxied.beta.assistants.list()
    # the documented equivalent: an OpenAI-shaped 502 (the SDK retries it as it retries a refused
    # connection, so both clients made two attempts)
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_unreachable" and info.value.body["type"] == "proxy_error"
    got = stored(proxy, 2)
    assert [(r.status_code, r.error_type, r.retry_count, r.upstream_request_id) for r in got] == [
        (502, "upstream_unreachable", 0, None), (502, "upstream_unreachable", 1, None)]
    assert proxy.alive()


def test_slow_headers_within_the_timeout_arrive_unchanged(upstream, proxy):
    upstream.behaviour = slow_head(0.4, respond(200, orjson.dumps(ASSISTANT), [JSON, ("openai-processing-ms", "400")]))
    direct, proxied = both(upstream, proxy)
    expected = seen(lambda: direct.beta.assistants.with_raw_response.retrieve("asst_fault").http_response)
    through = seen(lambda: proxied.beta.assistants.with_raw_response.retrieve("asst_fault").http_response)
    assert expected.error is None and through.error is None
    for response in (expected.result, through.result):
        assert response.status_code == 200 and orjson.loads(response.content) == ASSISTANT
    assert e2e_headers(through.result.headers) == e2e_headers(expected.result.headers)
    [row] = stored_once(proxy, upstream)
    assert (row.status_code, row.error_type, row.bytes_out) == (200, None, len(orjson.dumps(ASSISTANT)))


def test_headers_later_than_the_upstream_timeout_are_a_504(upstream, start_proxy):
    proxy = start_proxy(upstream.url, upstream_timeout=SHORT_TIMEOUT)
    upstream.behaviour = slow_head(60, respond(200, b"{}"))  # silent far longer than anyone waits
    # the proxied client waits longer than the proxy waits for the upstream
    direct, proxied = sdk(upstream.url, "direct", timeout=0.5), sdk(proxy.url, "proxy", timeout=30)
    with pytest.raises(openai.APITimeoutError):
        direct.beta.assistants.list()
    with pytest.raises(openai.InternalServerError) as info:
        proxied.beta.assistants.list()
    assert info.value.status_code == 504 and info.value.body["code"] == "upstream_timeout"
    [row] = stored_once(proxy, upstream, unanswered=1)
    assert (row.status_code, row.error_type, row.bytes_out) == (
        504, "upstream_timeout", len(info.value.response.content))
    assert len(upstream.requests("proxy")) == 1  # the request did reach the upstream
    assert proxy.alive()


def test_a_slow_body_arrives_whole_and_unchanged(upstream, proxy):
    body = orjson.dumps({"object": "list", "data": [dict(ASSISTANT, id=f"asst_{i}") for i in range(40)],
                         "first_id": "asst_0", "last_id": "asst_39", "has_more": False})
    upstream.behaviour = trickle(body, pieces=5, gap=0.15)
    direct, proxied = both(upstream, proxy)
    expected = seen(lambda: direct.beta.assistants.list())
    through = seen(lambda: proxied.beta.assistants.list())
    through.same_as(expected)
    assert len(through.result["data"]) == 40
    [row] = stored_once(proxy, upstream)
    assert (row.status_code, row.error_type, row.bytes_out, row.parse_error) == (200, None, len(body), None)


def test_a_body_stalled_past_the_upstream_timeout_cuts_the_client(upstream, start_proxy):
    proxy = start_proxy(upstream.url, upstream_timeout=SHORT_TIMEOUT)
    body = orjson.dumps({"object": "list", "data": [dict(ASSISTANT, id=f"asst_{i}") for i in range(40)]})
    upstream.behaviour = trickle(body, pieces=4, gap=0.05, stall_after=2)
    direct, proxied = sdk(upstream.url, "direct", timeout=0.5), sdk(proxy.url, "proxy", timeout=30)
    with pytest.raises(openai.APIConnectionError):  # directly: the SDK's own read timeout
        direct.beta.assistants.list()
    with pytest.raises(openai.APIConnectionError):  # through the proxy: the cut connection
        proxied.beta.assistants.list()
    [row] = stored_once(proxy, upstream)
    half = -(-len(body) // 4) * 2
    assert (row.status_code, row.error_type, row.bytes_out, row.parse_error) == (
        200, "upstream_timeout", half, "response:truncated")
    assert proxy.alive()


# -- error statuses and the SDK's retries ----------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_error_statuses_pass_through_and_each_sdk_retry_is_its_own_exchange(upstream, proxy, status):
    body = openai_error(status, f"fault_{status}")
    upstream.behaviour = respond(status, body, [JSON, ("retry-after-ms", "1"), ("x-fault", str(status))])
    direct, proxied = both(upstream, proxy, max_retries=2)
    expected = seen(lambda: direct.beta.assistants.list())
    through = seen(lambda: proxied.beta.assistants.list())
    through.same_as(expected)
    assert (through.status, through.body) == (status, body)
    assert through.error is (openai.RateLimitError if status == 429 else openai.InternalServerError)
    # three attempts each way, numbered by the SDK
    for via in ("direct", "proxy"):
        assert [r.headers["x-stainless-retry-count"] for r in upstream.requests(via)] == ["0", "1", "2"]
    got = stored_once(proxy, upstream)
    assert [r.upstream_request_id for r in got] == upstream.heads("proxy")
    assert [(r.status_code, r.retry_count, r.bytes_out) for r in got] == [
        (status, 0, len(body)), (status, 1, len(body)), (status, 2, len(body))]
    assert {r.error_type for r in got} == {"server_error" if status >= 500 else "requests"}


# -- resets ------------------------------------------------------------------------------------------


def test_reset_mid_json_body_fails_the_client_as_it_would_directly(upstream, proxy):
    body = orjson.dumps({"object": "list", "data": [dict(ASSISTANT, id=f"asst_{i}") for i in range(40)]})
    cut = len(body) // 3
    upstream.behaviour = reset_mid_body(body, cut)
    direct, proxied = both(upstream, proxy)
    expected = seen(lambda: direct.beta.assistants.list())
    through = seen(lambda: proxied.beta.assistants.list())
    assert expected.error is openai.APIConnectionError
    through.same_as(expected)
    # the bytes that came before the reset arrive, then the same kind of failure
    assert raw_until_failure(upstream.url, "direct") == raw_until_failure(proxy.url, "proxy") == (
        body[:cut], httpx.ReadError)
    got = stored_once(proxy, upstream)
    # recorded as cut short: what was forwarded, why it stopped, and a body parsed as truncated
    assert [(r.status_code, r.error_type, r.bytes_out, r.parse_error) for r in got] == [
        (200, "upstream_reset", cut, "response:truncated")] * 2
    still_serving(proxy, upstream, proxied)


def raw_until_failure(base: str, via: str) -> tuple[bytes, type[BaseException] | None]:
    received = bytearray()
    with httpx.Client(timeout=10) as client:
        try:
            headers = {VIA: via, "Authorization": f"Bearer {KEY}"}
            with client.stream("GET", base + "/v1/assistants", headers=headers) as response:
                for chunk in response.iter_raw():
                    received += chunk
        except httpx.TransportError as exc:
            return bytes(received), type(exc)
    return bytes(received), None


RUN = {"id": "run_fault", "object": "thread.run", "created_at": 1, "thread_id": "thread_fault",
       "assistant_id": "asst_fault", "status": "queued", "model": "gpt-4o", "instructions": "", "tools": [],
       "parallel_tool_calls": True}
STREAM = [sse_event("thread.run.created", RUN), sse_event("thread.run.queued", RUN),
          sse_event("thread.run.in_progress", dict(RUN, status="in_progress")),
          sse_event("thread.run.completed", dict(RUN, status="completed")), b"event: done\ndata: [DONE]\n\n"]


def stream_events(client: openai.OpenAI) -> tuple[list[tuple[str, str]], tuple[type, type] | None]:
    """The events a streamed run gave, then the failure: the SDK's exception and its cause (the
    transport's: a reset is not an early close)."""
    events: list[tuple[str, str]] = []
    try:
        for event in client.beta.threads.runs.create(thread_id="thread_fault", assistant_id="asst_fault", stream=True):
            events.append((event.event, event.data.status))
    except Exception as exc:
        return events, (type(exc), type(exc.__cause__))
    return events, None


def test_reset_mid_sse_stream_gives_the_same_events_then_the_same_failure(upstream, proxy):
    direct, proxied = both(upstream, proxy)
    upstream.behaviour = sse_stream(STREAM)  # first the whole stream, as a reference
    whole = stream_events(direct)
    assert whole == ([("thread.run.created", "queued"), ("thread.run.queued", "queued"),
                      ("thread.run.in_progress", "in_progress"), ("thread.run.completed", "completed")], None)
    assert stream_events(proxied) == whole
    upstream.behaviour = sse_stream(STREAM, reset_after=2)
    expected = stream_events(direct)
    assert expected == (whole[0][:2], (openai.APIConnectionError, httpx.ReadError))
    assert stream_events(proxied) == expected
    complete, cut = stored_once(proxy, upstream)
    assert (complete.status_code, complete.error_type, complete.bytes_out) == (200, None, len(b"".join(STREAM)))
    assert (cut.status_code, cut.error_type, cut.bytes_out) == (200, "upstream_reset", len(b"".join(STREAM[:2])))
    assert rows(proxy.store, "SELECT run_id, status, streamed FROM runs") == [("run_fault", "completed", True)]
    still_serving(proxy, upstream, proxied)


# -- bodies that are not what they claim -------------------------------------------------------------


@pytest.mark.parametrize("body, parse_error", [
    (b'{"id": "asst_fault", "object": "assistant", "name": ', "response:invalid_json"),
    (b'{"id": "asst_fault", "object": "assistant", "name": "\xff\xfe\xc3("}', "response:invalid_utf8"),
], ids=["invalid-json", "invalid-utf8"])
def test_a_broken_body_is_forwarded_byte_for_byte_and_stored(upstream, proxy, body, parse_error):
    upstream.behaviour = respond(200, body)
    direct, proxied = both(upstream, proxy)
    expected = seen(lambda: direct.beta.assistants.retrieve("asst_fault"))
    through = seen(lambda: proxied.beta.assistants.retrieve("asst_fault"))
    assert expected.error is not None  # the SDK cannot decode it
    through.same_as(expected)
    raw = proxied.beta.assistants.with_raw_response.retrieve("asst_fault")
    assert raw.http_response.content == body
    assert raw.http_response.headers["content-length"] == str(len(body))
    got = stored_once(proxy, upstream)
    assert [(r.status_code, r.bytes_out, r.parse_error, r.body_truncated) for r in got] == [
        (200, len(body), parse_error, False)] * 2
    still_serving(proxy, upstream, proxied)


def test_a_50mb_json_response_arrives_intact_and_only_a_capped_copy_is_kept(upstream, proxy):
    item = orjson.dumps(dict(ASSISTANT, instructions="x" * 4000))
    count = 50 * 1024 * 1024 // (len(item) + 1)
    body = b'{"object":"list","data":[' + b",".join([item] * count) + b'],"has_more":false}'
    assert len(body) > 50 * 1000 * 1000
    digest = hashlib.sha256(body).hexdigest()
    upstream.behaviour = respond(200, body)
    direct, proxied = both(upstream, proxy, timeout=60)
    for client in (direct, proxied):
        response = client.beta.assistants.with_raw_response.list().http_response
        assert response.status_code == 200 and response.headers["content-length"] == str(len(body))
        assert hashlib.sha256(response.content).hexdigest() == digest
    [row] = stored_once(proxy, upstream)
    assert (row.status_code, row.error_type, row.bytes_out, row.body_truncated, row.parse_error) == (
        200, None, len(body), True, "response:truncated")
    # the observation copy is capped: the journal holds about one body cap, not 50 MB
    journal = sum(p.stat().st_size for p in (proxy.store / "journal").rglob("*") if p.is_file())
    assert BODY_CAP <= journal < 2 * BODY_CAP
    still_serving(proxy, upstream, proxied)
