"""The emulator's JSON keeps the key order and event sequence of real OpenAI traffic
(tests/fixtures/emulator/recorded_shapes.json, made by scripts/emulator_fixtures.py from the
ruby-openai VCR cassettes). Keys the newer spec added may appear in between."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.emulator.rawhttp import call_json, raw, sse_events

SHAPES = json.loads((Path(__file__).parent.parent / "fixtures" / "emulator" / "recorded_shapes.json").read_text())
V1 = {"OpenAI-Beta": "assistants=v1"}
# The 2024 recordings name a run step's expiry `expires_at`; the spec (and the emulator) say `expired_at`.
RENAMED = {"expires_at": "expired_at"}


def assert_keys_in_order(recorded: dict, emulated: dict, what: str, *, step: bool = False) -> None:
    expected = [RENAMED.get(k, k) if step else k for k in recorded]
    positions = []
    for key in expected:
        assert key in emulated, f"{what}: key {key!r} missing; emulator sent {list(emulated)}"
        positions.append(list(emulated).index(key))
    assert positions == sorted(positions), f"{what}: order {expected} vs emulator {list(emulated)}"


def upload(url: str, name: str, text: bytes) -> dict:
    boundary = "----shapes"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: text/plain\r\n\r\n").encode() + text + f"\r\n--{boundary}--\r\n".encode()
    return call_json(url, "POST", "/v1/files", body,
                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})


@pytest.fixture
def objects(emulator) -> dict[str, dict]:
    url = emulator.url
    out: dict[str, dict] = {}
    out["assistant_v2"] = asst = call_json(url, "POST", "/v1/assistants", {"model": "gpt-4", "instructions": "Hi"})
    out["thread_v2"] = thread = call_json(url, "POST", "/v1/threads", {})
    out["message_v2"] = call_json(url, "POST", f"/v1/threads/{thread['id']}/messages",
                                  {"role": "user", "content": "Hello"})
    out["run_v2"] = call_json(url, "POST", f"/v1/threads/{thread['id']}/runs", {"assistant_id": asst["id"]})
    out["run_list_v2"] = call_json(url, "GET", f"/v1/threads/{thread['id']}/runs?order=asc")
    v1_thread = call_json(url, "POST", "/v1/threads", {"messages": [{"role": "user", "content": "Hi"}]}, V1)
    out["run_v1"] = call_json(url, "POST", f"/v1/threads/{v1_thread['id']}/runs", {"assistant_id": asst["id"]}, V1)
    out["file"] = f = upload(url, "sentiment.txt", b"positive words")
    out["vector_store"] = vs = call_json(url, "POST", "/v1/vector_stores", {})
    out["vector_store_file"] = call_json(url, "POST", f"/v1/vector_stores/{vs['id']}/files", {"file_id": f["id"]})
    g = upload(url, "other.txt", b"more words")
    out["file_batch"] = call_json(url, "POST", f"/v1/vector_stores/{vs['id']}/file_batches", {"file_ids": [g["id"]]})
    out["search_page"] = call_json(url, "POST", f"/v1/vector_stores/{vs['id']}/search", {"query": "words"})
    status, _, body = raw(url, "GET", f"/v1/threads/{thread['id']}/runs/{out['run_v2']['id']}/steps/step_123")
    out["error_404_step"] = json.loads(body)
    empty = call_json(url, "POST", "/v1/threads", {})
    plain = call_json(url, "POST", "/v1/assistants", {"model": "gpt-4"})
    status, _, body = raw(url, "POST", f"/v1/threads/{empty['id']}/runs", {"assistant_id": plain["id"]})
    out["error_400_invalid_thread"] = json.loads(body)
    return out


@pytest.mark.parametrize("name", [n for n in SHAPES if n != "stream_v2"])
def test_object_keys_follow_recorded_order(objects, name):
    recorded = SHAPES[name]["body"]
    emulated = objects[name]
    assert_keys_in_order(recorded, emulated, name)
    assert emulated.get("object") == recorded.get("object")
    if name.startswith("error_"):
        assert_keys_in_order(recorded["error"], emulated["error"], name)
        if name == "error_400_invalid_thread" or name == "error_404_step":
            assert emulated["error"] == recorded["error"]
    if name == "run_v1":
        assert "tool_resources" not in emulated and "parallel_tool_calls" not in emulated


def test_stream_follows_recorded_sequence(emulator):
    """The recorded v2 stream: a plain run cut by max_completion_tokens=16."""
    url = emulator.url
    asst = call_json(url, "POST", "/v1/assistants", {"model": "gpt-4", "instructions": "Answer."})
    thread = call_json(url, "POST", "/v1/threads", {"messages": [
        {"role": "user", "content": "Can you help me write an API library to interact with the OpenAI API please?"}]})
    status, headers, body = raw(url, "POST", f"/v1/threads/{thread['id']}/runs", {
        "assistant_id": asst["id"], "stream": True, "max_prompt_tokens": 256, "max_completion_tokens": 16})
    assert status == 200 and headers["content-type"] == "text/event-stream; charset=utf-8"
    events = sse_events(body)

    def collapsed(names):
        return [n for i, n in enumerate(names) if i == 0 or n != names[i - 1] or n != "thread.message.delta"]

    recorded = collapsed(SHAPES["stream_v2"]["event_names"])
    ours = collapsed([name for name, _ in events])
    # OpenAI sent `thread.run.completed` with status "incomplete" here; the spec has thread.run.incomplete.
    assert ours[:-2] == recorded[:-2] and recorded[-2:] == ["thread.run.completed", "done"]
    assert ours[-2:] == ["thread.run.incomplete", "done"] and events[-2][1]["status"] == "incomplete"
    assert events[-2][1]["usage"]["completion_tokens"] == 16
    by_name = {name: data for name, data in events}
    for recorded_event in SHAPES["stream_v2"]["first_of_each"]:
        name, data = recorded_event["event"], recorded_event["data"]
        if name in ("done", "thread.run.completed"):
            continue
        assert_keys_in_order(data, by_name[name], name, step=name.startswith("thread.run.step"))
