"""Every scripted path, streamed, validated event by event against the spec (the conformance walk
covers the common paths; these are the rest: file_search with content, v1 retrieval, failures,
incomplete, expired, cancelled mid-stream)."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.emulator.rawhttp import call_json, raw, sse_events
from tests.spec_validation import validate_response, validate_stream_event

INCLUDE = "include[]=step_details.tool_calls[*].file_search.results[*].content"
DOC = b"Capybaras are the largest rodents. They live in South America near water."


def upload(url: str, version: str) -> str:
    boundary = "----streamspec"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="capybara.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\n").encode() + DOC + f"\r\n--{boundary}--\r\n".encode()
    return call_json(url, "POST", "/v1/files", body, {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                                      "OpenAI-Beta": f"assistants={version}"})["id"]


def stream(url: str, version: str, path: str, body: dict) -> list[tuple[str, object]]:
    status, headers, data = raw(url, "POST", path, dict(body, stream=True), {"OpenAI-Beta": f"assistants={version}"})
    assert status == 200, data[:300]
    events = sse_events(data)
    for name, payload in events[:-1]:
        validate_stream_event(name, payload, version)
    assert events[-1] == ("done", "[DONE]")
    return events


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_search_tools_stream_and_steps_conform(emulator, version):
    url = emulator.url
    hdr = {"OpenAI-Beta": f"assistants={version}"}
    file_id = upload(url, version)
    if version == "v2":
        vs = call_json(url, "POST", "/v1/vector_stores", {"file_ids": [file_id]})
        for _ in range(4):
            call_json(url, "GET", f"/v1/vector_stores/{vs['id']}")
        asst = {"model": "gpt-4o", "tools": [{"type": "file_search"}],
                "tool_resources": {"file_search": {"vector_store_ids": [vs["id"]]}}}
    else:
        asst = {"model": "gpt-4o", "tools": [{"type": "retrieval"}], "file_ids": [file_id]}
    asst_id = call_json(url, "POST", "/v1/assistants", asst, hdr)["id"]
    path = "/v1/threads/runs" + (f"?{INCLUDE}" if version == "v2" else "")
    events = stream(url, version, path, {"assistant_id": asst_id, "thread": {
        "messages": [{"role": "user", "content": "Where do capybaras live?"}]}})
    names = [name for name, _ in events]
    assert names[0] == "thread.created" and names[-2] == "thread.run.completed"
    delta = next(payload for name, payload in events if name == "thread.run.step.delta")
    call = delta["delta"]["step_details"]["tool_calls"][0]
    if version == "v2":
        assert call["file_search"]["results"][0]["content"][0]["text"] == DOC.decode()
    else:
        assert call["type"] == "retrieval"
    run = events[-2][1]
    steps_path = f"/v1/threads/{run['thread_id']}/runs/{run['id']}/steps" + (f"?{INCLUDE}" if version == "v2" else "")
    steps = call_json(url, "GET", steps_path, None, hdr)
    validate_response("GET /threads/{thread_id}/runs/{run_id}/steps", 200, steps, version)
    completed = next(payload for name, payload in events if name == "thread.message.completed")
    assert completed["content"][0]["text"]["annotations"][0]["type"] == "file_citation"


@pytest.mark.parametrize("version", ["v2", "v1"])
@pytest.mark.parametrize("trigger,last", [
    ("[fail:rate_limit_exceeded]", "thread.run.failed"),
    ("[incomplete:max_completion_tokens]", {"v2": "thread.run.incomplete", "v1": "thread.run.completed"}),
    ("[expire]", "thread.run.expired"),
])
def test_scripted_endings_stream_conform(emulator, version, trigger, last):
    asst = call_json(emulator.url, "POST", "/v1/assistants", {"model": "gpt-4o", "tools": [{"type": "code_interpreter"}]},
                     {"OpenAI-Beta": f"assistants={version}"})
    events = stream(emulator.url, version, "/v1/threads/runs", {"assistant_id": asst["id"], "thread": {
        "messages": [{"role": "user", "content": f"Hi {trigger}"}]}})
    expected = last[version] if isinstance(last, dict) else last
    assert events[-2][0] == expected


def test_cancel_while_streaming_ends_the_stream_cancelled(make_emulator):
    """With a wall clock the stream waits between phases; a cancel arriving meanwhile ends it."""
    running = make_emulator(time_scale=20)
    url = running.url
    asst = call_json(url, "POST", "/v1/assistants", {"model": "gpt-4o"})
    thread = call_json(url, "POST", "/v1/threads", {"messages": [{"role": "user", "content": "Slowly [slow]"}]})
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", f"/v1/threads/{thread['id']}/runs", json.dumps({"assistant_id": asst["id"], "stream": True}),
                 {"Authorization": "Bearer sk-x", "OpenAI-Beta": "assistants=v2", "Content-Type": "application/json"})
    resp = conn.getresponse()
    first = resp.readline() + resp.readline()
    run_id = json.loads(first.split(b"data: ", 1)[1])["id"]
    cancelled = call_json(url, "POST", f"/v1/threads/{thread['id']}/runs/{run_id}/cancel")
    assert cancelled["status"] == "cancelling"
    events = sse_events(first + resp.read())
    conn.close()
    for name, payload in events[:-1]:
        validate_stream_event(name, payload, "v2")
    names = [name for name, _ in events]
    assert names[-3:] == ["thread.run.cancelling", "thread.run.cancelled", "done"]
