"""Streamed responses: the SDK iterates the emulator's events; the raw events are validated against
the spec's ResponseStreamEvent schemas and follow the recorded sequence."""

from __future__ import annotations

import pytest

from tests.emulator.rawhttp import raw, sse_events
from tests.emulator.responses_support import RECORDED, check_body, check_event

TEXT_EVENTS = ["response.output_item.added", "response.content_part.added", "response.output_text.delta",
               "response.output_text.done", "response.content_part.done", "response.output_item.done"]


def collapse(names: list[str]) -> list[str]:
    """The event names with runs of deltas folded into one."""
    out: list[str] = []
    for name in names:
        if not (out and out[-1] == name and name.endswith(".delta")):
            out.append(name)
    return out


def test_sdk_stream_follows_the_recorded_sequence(emulator):
    client = emulator.client()
    events = list(client.responses.create(model="gpt-4o", input="Hello!", stream=True))
    names = [e.type for e in events]
    assert collapse(names) == collapse(RECORDED["stream"]["event_names"])
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert final.status == "completed" and final.output_text == deltas
    assert client.responses.retrieve(final.id).output_text == deltas
    for event in events:
        check_event(event.model_dump(mode="json", exclude_unset=True))


def test_stream_helper_accumulates_the_final_response(emulator):
    client = emulator.client()
    with client.responses.stream(model="gpt-4o", input="Hi stream helper") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(texts) == "This is the emulated assistant answering: Hi stream helper."


def stream_raw(url: str, body: dict) -> list[dict]:
    status, headers, data = raw(url, "POST", "/v1/responses", dict(body, stream=True))
    assert status == 200 and headers["content-type"].startswith("text/event-stream"), data[:300]
    events = []
    for name, payload in sse_events(data):
        assert payload["type"] == name
        events.append(check_event(payload))
    return events


@pytest.mark.parametrize("tools, include, expected", [
    ([{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}], [],
     ["response.function_call_arguments.delta", "response.function_call_arguments.done"]),
    ([{"type": "web_search"}], [],
     ["response.web_search_call.in_progress", "response.web_search_call.searching",
      "response.web_search_call.completed", "response.output_item.done"] + TEXT_EVENTS[:3]),
    ([{"type": "code_interpreter", "container": {"type": "auto"}}], ["code_interpreter_call.outputs"],
     ["response.code_interpreter_call.in_progress", "response.code_interpreter_call_code.delta",
      "response.code_interpreter_call_code.done", "response.code_interpreter_call.interpreting",
      "response.code_interpreter_call.completed"]),
])
def test_tool_streams_conform(emulator, tools, include, expected):
    events = stream_raw(emulator.url, {"model": "gpt-4o", "input": "Use the tool", "tools": tools,
                                       "include": include})
    names = collapse([e["type"] for e in events])
    start = names.index(expected[0])
    assert names[start:start + len(expected)] == expected
    assert names[0] == "response.created" and names[-1] == "response.completed"
    final = events[-1]["response"]
    check_body("GET /responses/{response_id}", final)
    done_items = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done_items == final["output"]


@pytest.mark.parametrize("trigger, terminal", [
    ("[fail:server_error]", "response.failed"),
    ("[incomplete:max_output_tokens]", "response.incomplete"),
])
def test_failures_end_the_stream_with_their_event(emulator, trigger, terminal):
    events = stream_raw(emulator.url, {"model": "gpt-4o", "input": f"Go {trigger}"})
    assert events[-1]["type"] == terminal
    assert events[-1]["response"]["status"] == terminal.split(".")[1]


def test_background_stream_starts_queued(emulator):
    events = stream_raw(emulator.url, {"model": "gpt-4o", "input": "later", "background": True})
    names = [e["type"] for e in events]
    assert names[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert events[0]["response"]["status"] == "queued" and names[-1] == "response.completed"
