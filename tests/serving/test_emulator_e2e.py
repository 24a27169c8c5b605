"""End to end against the emulator: the real openai SDK -> the proxy -> the emulator, compared
with the same SDK talking to the emulator directly."""

from __future__ import annotations

import http.client

import httpx2 as httpx
import openai
import pytest

KEY = "sk-e2e-secret-key-0000111122223333"


def sdk(base_url: str, seen: list | None = None) -> openai.OpenAI:
    hooks = {"request": [seen.append]} if seen is not None else {}
    return openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0, timeout=20,
                         http_client=httpx.Client(event_hooks=hooks))


def test_assistants_workflow_through_the_proxy(proxy):
    sent: list[httpx.Request] = []
    client = sdk(proxy.base_url, sent)
    assistant = client.beta.assistants.create(model="gpt-4o", instructions="Be brief.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello there"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=1)
    assert run.status == "completed"
    messages = client.beta.threads.messages.list(thread_id=thread.id)
    assert [m.role for m in messages.data] == ["assistant", "user"]

    exchanges = proxy.recorder.wait_for(len(sent))
    assert len(exchanges) == len(sent)  # one Exchange per HTTP request, no more
    assert [(e.method, e.path) for e in exchanges] == [(r.method, r.url.raw_path.decode().split("?")[0])
                                                      for r in sent]
    assert all(e.status == 200 and e.error_type is None for e in exchanges)
    assert any(e.header("content-encoding", response=True) == "gzip" for e in exchanges)
    assert KEY not in repr(exchanges)
    assert len({e.key_fingerprint for e in exchanges}) == 1


def test_streamed_run_events_arrive_before_the_emulator_finishes(proxy, emulator):
    client = sdk(proxy.base_url)
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Stream please"}])
    before = len(proxy.recorder.wait_for(2))
    stream = client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, stream=True,
        extra_headers={"X-Emulator-Fault": "slow_body=100"})
    events = iter(stream)
    first = next(events)
    assert first.event == "thread.run.created"
    # The proxy records an exchange only after its last byte: none yet, so the emulator is
    # still streaming while the client already holds the first event.
    assert len(proxy.recorder.exchanges) == before
    names = [first.event] + [event.event for event in events]
    assert names[-1] == "thread.run.completed"
    streamed = proxy.recorder.wait_for(before + 1)[-1]
    assert streamed.error_type is None and streamed.response_body.count(b"event: ") == len(names) + 1


def _raw(port: int, method: str, path: str, body: bytes | None = None, fault: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {KEY}", "Accept-Encoding": "gzip", "OpenAI-Beta": "assistants=v2",
               "Content-Type": "application/json"}
    if fault:
        headers["X-Emulator-Fault"] = fault
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    try:
        data, error = resp.read(), None
    except http.client.IncompleteRead as exc:
        data, error = exc.partial, type(exc)
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, error


def test_gzip_json_is_byte_identical(proxy, emulator):
    assistant = sdk(emulator.base_url).beta.assistants.create(model="gpt-4o", instructions="x" * 500)
    path = f"/v1/assistants/{assistant.id}"
    direct = _raw(emulator.server.port, "GET", path)
    proxied = _raw(proxy.server.port, "GET", path)
    assert direct[1]["content-encoding"] == proxied[1]["content-encoding"] == "gzip"
    assert proxied[2] == direct[2] and direct[2][:2] == b"\x1f\x8b"
    assert proxied[1]["content-length"] == direct[1]["content-length"]


@pytest.mark.parametrize("fault", ["status=429", "status=500", "status=503"])
def test_upstream_error_statuses_pass_through(proxy, emulator, fault):
    direct = _raw(emulator.server.port, "GET", "/v1/assistants", fault=fault)
    proxied = _raw(proxy.server.port, "GET", "/v1/assistants", fault=fault)
    assert proxied[0] == direct[0] == int(fault.split("=")[1])
    assert proxied[2] == direct[2]
    for name in ("retry-after", "x-ratelimit-remaining-requests", "content-type"):
        assert proxied[1].get(name) == direct[1].get(name)


def test_sdk_sees_the_same_error_through_the_proxy(proxy, emulator):
    errors = []
    for base in (emulator.base_url, proxy.base_url):
        with pytest.raises(openai.RateLimitError) as caught:
            sdk(base).beta.assistants.list(extra_headers={"X-Emulator-Fault": "status=429"})
        errors.append((caught.value.status_code, caught.value.body, caught.value.code))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("fault", ["truncate", "reset_mid_stream=2"])
def test_cut_responses_fail_the_same_way(proxy, emulator, fault):
    client = sdk(emulator.base_url)
    assistant = client.beta.assistants.create(model="gpt-4o")

    def call(port: int):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        if fault == "truncate":
            return _raw(port, "GET", f"/v1/threads/{thread.id}", None, fault)
        body = f'{{"assistant_id": "{assistant.id}", "stream": true}}'.encode()
        return _raw(port, "POST", f"/v1/threads/{thread.id}/runs", body, fault)

    direct, proxied = call(emulator.server.port), call(proxy.server.port)
    assert direct[3] is http.client.IncompleteRead
    assert proxied[3] is direct[3] and proxied[0] == direct[0]
    if fault == "truncate":
        assert len(proxied[2]) == len(direct[2]) > 0  # half the promised body, then the cut
    else:
        assert proxied[2].count(b"event: ") == direct[2].count(b"event: ") == 2
    (exchange,) = proxy.recorder.wait_for(1)
    assert exchange.error_type == "upstream_reset"
