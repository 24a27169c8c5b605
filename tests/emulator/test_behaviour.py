"""Emulator behaviour beyond the SDK happy path: determinism, headers, gzip, faults, Azure paths,
scripted run endings, cancellation, vector store billing state, pagination."""

from __future__ import annotations

import gzip
import http.client
import json
import warnings

import openai
import pytest

from emulator.app import EmulatorSettings
from tests.emulator.rawhttp import raw
from tests.plugins.emulator import start_emulator

warnings.filterwarnings("ignore", category=DeprecationWarning)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def scripted_session(url: str) -> list[tuple[int, str, bytes]]:
    """A fixed sequence of calls: create, run, poll to the end, list steps and messages, stream."""
    out = []

    def call(method, path, body=None):
        status, headers, data = raw(url, method, path, body)
        out.append((status, headers["x-request-id"], data))
        return json.loads(data) if headers.get("content-type", "").startswith("application/json") else data

    asst = call("POST", "/v1/assistants", {"model": "gpt-4o", "instructions": "Hi", "tools": [
        {"type": "code_interpreter"}]})
    thread = call("POST", "/v1/threads", {"messages": [{"role": "user", "content": "Sum 0..9"}]})
    run = call("POST", f"/v1/threads/{thread['id']}/runs", {"assistant_id": asst["id"]})
    for _ in range(20):
        run = call("GET", f"/v1/threads/{thread['id']}/runs/{run['id']}")
        if run["status"] == "completed":
            break
    call("GET", f"/v1/threads/{thread['id']}/runs/{run['id']}/steps")
    call("GET", f"/v1/threads/{thread['id']}/messages")
    call("POST", "/v1/threads/runs", {"assistant_id": asst["id"], "stream": True,
                                      "thread": {"messages": [{"role": "user", "content": "Again"}]}})
    return out


def test_same_seed_same_calls_give_byte_identical_responses():
    first, second, other = (start_emulator(EmulatorSettings(seed=seed)) for seed in (7, 7, 8))
    try:
        a, b, c = (scripted_session(e.url) for e in (first, second, other))
    finally:
        for e in (first, second, other):
            e.server.stop()
    assert a == b
    assert all(status == 200 for status, _, _ in a)
    assert b"thread.run.completed" in a[-1][2]
    assert [body for _, _, body in a] != [body for _, _, body in c]  # the seed decides the ids


def test_openai_headers_and_poll_hint(emulator):
    client = emulator.client()
    asst = client.beta.assistants.create(model="gpt-4o", instructions="Hi")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id)
    resp = client.beta.threads.runs.with_raw_response.retrieve(thread_id=thread.id, run_id=run.id)
    assert resp.headers["openai-poll-after-ms"] == "1"
    assert resp.headers["x-request-id"].startswith("req_")
    assert int(resp.headers["openai-processing-ms"]) > 0
    assert resp.headers["openai-version"] == "2020-10-01"
    assert int(resp.headers["x-ratelimit-remaining-requests"]) < int(resp.headers["x-ratelimit-limit-requests"])


def test_json_is_gzipped_for_clients_that_accept_it(emulator):
    status, headers, body = raw(emulator.url, "GET", "/v1/vector_stores", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["object"] == "list"
    status, headers, body = raw(emulator.url, "GET", "/v1/vector_stores", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in headers and json.loads(body)["object"] == "list"
    # the openai SDK accepts gzip, so it gets gzip
    resp = emulator.client().vector_stores.with_raw_response.list()
    assert resp.headers["content-encoding"] == "gzip"


def test_fault_429_with_retry_after_and_first_attempt_only(emulator):
    client = emulator.client()
    fault = {"X-Emulator-Fault": "status=429,retry_after=3"}
    with pytest.raises(openai.RateLimitError) as exc:
        client.beta.assistants.list(extra_headers=fault)
    assert exc.value.response.headers["retry-after"] == "3"
    assert exc.value.code == "rate_limit_exceeded"
    # the SDK retries with x-stainless-retry-count: 1, which `first=1` lets through
    retrying = emulator.client(max_retries=1)
    with pytest.raises(openai.InternalServerError):
        client.beta.assistants.list(extra_headers={"X-Emulator-Fault": "status=503,first=1"})
    assert retrying.with_options(timeout=10).beta.assistants.list(
        extra_headers={"X-Emulator-Fault": "status=500,retry_after=0,first=1"}).object == "list"


def test_fault_reset_mid_stream_breaks_the_sdk_stream(emulator):
    client = emulator.client()
    asst = client.beta.assistants.create(model="gpt-4o", instructions="Hi")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    seen = []
    with pytest.raises(Exception, match=r"(?i)(peer closed|incomplete|connection|reset)"):
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id,
                                             extra_headers={"X-Emulator-Fault": "reset_mid_stream=3"}) as s:
            for event in s:
                seen.append(event.event)
    assert seen == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]


def test_fault_truncate_promises_more_than_it_sends(emulator):
    host_port = emulator.url.removeprefix("http://")
    with pytest.raises(http.client.IncompleteRead):
        raw(emulator.url, "GET", "/v1/vector_stores", headers={"X-Emulator-Fault": "truncate"})
    assert host_port  # the server is still serving afterwards:
    assert raw(emulator.url, "GET", "/v1/vector_stores")[0] == 200


def test_fault_slow_body_and_latency_still_deliver_the_body(emulator):
    status, _, body = raw(emulator.url, "GET", "/v1/vector_stores",
                          headers={"X-Emulator-Fault": "latency=5,slow_body=5"})
    assert status == 200 and json.loads(body)["object"] == "list"
    status, _, body = raw(emulator.url, "GET", "/v1/vector_stores", headers={"X-Emulator-Fault": "bogus"})
    assert status == 400 and json.loads(body)["error"]["param"] == "X-Emulator-Fault"


def test_azure_paths_with_api_version_and_api_key(emulator):
    azure = openai.AzureOpenAI(api_key="azure-key", api_version="2024-05-01-preview",
                               azure_endpoint=emulator.url, max_retries=0)
    asst = azure.beta.assistants.create(model="gpt-4o", instructions="Hi")
    thread = azure.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    run = azure.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id, poll_interval_ms=1)
    assert run.status == "completed"
    # an api-version before 2024-05-01 is Assistants v1, even without OpenAI-Beta
    status, headers, body = raw(emulator.url, "GET", f"/openai/assistants/{asst.id}?api-version=2024-02-15-preview",
                                headers={"OpenAI-Beta": "", "Authorization": "", "api-key": "azure-key"})
    assert status == 200 and "file_ids" in json.loads(body) and "apim-request-id" in headers
    status, _, _ = raw(emulator.url, "GET", "/openai/assistants", headers={"api-key": "azure-key"})
    assert status == 404  # no api-version


def test_missing_key_is_401(emulator):
    status, _, body = raw(emulator.url, "GET", "/v1/assistants", headers={"Authorization": ""})
    assert status == 401 and json.loads(body)["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("text,status,detail", [
    ("[fail:rate_limit_exceeded] hi", "failed", "rate_limit_exceeded"),
    ("[fail:server_error] hi", "failed", "server_error"),
    ("[incomplete:max_completion_tokens] hi", "incomplete", "max_completion_tokens"),
    ("[expire] hi", "expired", None),
])
def test_scripted_endings(emulator, text, status, detail):
    client = emulator.client()
    asst = client.beta.assistants.create(model="gpt-4o")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=asst.id, thread={"messages": [{"role": "user", "content": text}]}, poll_interval_ms=1)
    assert run.status == status
    if status == "failed":
        assert run.last_error.code == detail and run.failed_at
    if status == "incomplete":
        assert run.incomplete_details.reason == detail and run.usage is not None
        message = client.beta.threads.messages.list(thread_id=run.thread_id).data[0]
        assert message.status == "incomplete"


def test_max_completion_tokens_truncates_and_run_metadata_triggers(emulator):
    client = emulator.client()
    asst = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "A long answer please"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id,
                                                   max_completion_tokens=3)
    assert run.status == "incomplete" and run.usage.completion_tokens == 3
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id,
                                                   metadata={"script": "[fail:server_error]"})
    assert run.status == "failed"


def test_usage_is_null_until_terminal_and_grows_with_input(emulator):
    client = emulator.client()
    asst = client.beta.assistants.create(model="gpt-4o")
    short = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    long = client.beta.threads.create(messages=[{"role": "user", "content": "Hi " * 200}])
    run = client.beta.threads.runs.create(thread_id=short.id, assistant_id=asst.id)
    assert run.usage is None and run.status == "queued"
    short_run = client.beta.threads.runs.poll(run.id, thread_id=short.id, poll_interval_ms=1)
    long_run = client.beta.threads.runs.create_and_poll(thread_id=long.id, assistant_id=asst.id)
    assert long_run.usage.prompt_tokens > short_run.usage.prompt_tokens > 0


def test_cancel_goes_through_cancelling(emulator):
    client = emulator.client()
    asst = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Slowly [slow]"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id)
    cancelling = client.beta.threads.runs.cancel(thread_id=thread.id, run_id=run.id)
    assert cancelling.status == "cancelling"
    done = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=1)
    assert done.status == "cancelled" and done.cancelled_at
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.cancel(thread_id=thread.id, run_id=run.id)


def test_vector_store_usage_grows_after_processing_and_expires(emulator):
    client = emulator.client()
    vs = client.vector_stores.create(name="billing", expires_after={"anchor": "last_active_at", "days": 1})
    f = client.files.create(file=("doc.txt", b"storage costs money " * 50), purpose="assistants")
    attached = client.vector_stores.files.create(vector_store_id=vs.id, file_id=f.id)
    assert attached.status == "in_progress" and attached.usage_bytes == 0
    pending = client.vector_stores.retrieve(vs.id)
    assert pending.file_counts.in_progress == 1 and pending.usage_bytes == 0 and pending.status == "in_progress"
    for _ in range(5):
        ready = client.vector_stores.retrieve(vs.id)
    assert ready.file_counts.completed == 1 and ready.usage_bytes == f.bytes and ready.status == "completed"
    before = ready.last_active_at
    client.vector_stores.search(vector_store_id=vs.id, query="costs")
    touched = client.vector_stores.retrieve(vs.id)
    assert touched.last_active_at > before and touched.expires_at == touched.last_active_at + 86400
    assert raw(emulator.url, "POST", f"/_emulator/advance?seconds={2 * 86400}")[0] == 200
    assert client.vector_stores.retrieve(vs.id).status == "expired"


def test_unsupported_file_fails_processing(emulator):
    client = emulator.client()
    vs = client.vector_stores.create()
    f = client.files.create(file=("data.bin", b"\x00\x01"), purpose="assistants")
    done = client.vector_stores.files.create_and_poll(vector_store_id=vs.id, file_id=f.id, poll_interval_ms=1)
    assert done.status == "failed" and done.last_error.code == "unsupported_file"
    assert client.vector_stores.retrieve(vs.id).file_counts.failed == 1


def test_message_attachment_creates_thread_vector_store(emulator):
    client = emulator.client()
    f = client.files.create(file=("notes.md", b"# Notes\nthe answer is 42"), purpose="assistants")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "answer?",
                                                   "attachments": [{"file_id": f.id,
                                                                    "tools": [{"type": "file_search"}]}]}])
    vs_ids = thread.tool_resources.file_search.vector_store_ids
    assert len(vs_ids) == 1
    vs = client.vector_stores.retrieve(vs_ids[0])
    assert vs.expires_after.days == 7 and vs.file_counts.total == 1


def test_pagination(emulator):
    client = emulator.client()
    ids = [client.beta.assistants.create(model="gpt-4o", name=str(i)).id for i in range(5)]
    page = client.beta.assistants.list(limit=2, order="asc")
    assert [a.id for a in page.data] == ids[:2] and page.has_more
    page = client.beta.assistants.list(limit=2, order="asc", after=page.last_id)
    assert [a.id for a in page.data] == ids[2:4]
    assert [a.id for a in client.beta.assistants.list(limit=100)] == ids[::-1]
    assert [a.id for a in client.beta.assistants.list(order="asc", before=ids[3]).data] == ids[:3]
    assert [a.id for a in client.beta.assistants.list(order="asc")] == ids  # auto-paging
    with pytest.raises(openai.BadRequestError):
        client.beta.assistants.list(limit=500)


def test_wall_clock_mode_runs_and_streams(make_emulator):
    """The CLI's default clock: emulated time follows wall time (here 50x faster)."""
    client = make_emulator(time_scale=50, poll_after_ms=10).client()
    asst = client.beta.assistants.create(model="gpt-4o", instructions="Hi", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id)
    assert run.status == "completed" and run.completed_at >= run.started_at
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="Again")
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id) as stream:
        names = [event.event for event in stream]
    assert names[0] == "thread.run.created" and names[-1] == "thread.run.completed"
    assert "thread.run.step.delta" in names


def test_organization_usage_buckets_follow_processing(emulator):
    client = emulator.client()
    start = client.vector_stores.create(name="usage").created_at
    vs_id = client.vector_stores.list().data[0].id
    f = client.files.create(file=("u.txt", b"x" * 1000), purpose="assistants")
    client.vector_stores.files.create_and_poll(vector_store_id=vs_id, file_id=f.id, poll_interval_ms=1)
    assert raw(emulator.url, "POST", "/_emulator/advance?seconds=86400")[0] == 200
    page = client.get("/organization/usage/vector_stores", cast_to=object,
                      options={"params": {"start_time": start - 86400, "bucket_width": "1d"}})
    assert page["object"] == "page" and page["has_more"] is False
    usage = [bucket["results"][0]["usage_bytes"] for bucket in page["data"]]
    assert usage[0] == 0 and len(usage) == 3 and usage[1:] == [1000, 1000]  # before, on the day, after
    assert page["data"][0]["results"][0]["object"] == "organization.usage.vector_stores.result"
