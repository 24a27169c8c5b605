"""The Responses parser on its own: odd or hostile upstream answers (unknown events and items,
missing or impossible usage, bodies cut by the cap) are recorded as far as they parse, never
raise and never carry tokens; a long stream is read in bounded memory."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from proxy.assistants.facts import MAX_USAGE_TOKENS, ExchangeFact
from proxy.assistants.parse import parse
from proxy.responses.facts import (
    RESPONSE_USAGE_INVALID_REASONS,
    TOOL_CALL_TYPE_NAMES,
    ResponseFileSearchResultFact,
    ResponseSnapshot,
    ResponseToolCallFact,
)
from tests.exchanges import exchange

JSON = (("content-type", "application/json"),)
SSE = (("content-type", "text/event-stream; charset=utf-8"),)
USAGE = {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 10}, "output_tokens": 12,
         "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 42}


def response(**over) -> dict:
    body = {"id": "resp_1", "object": "response", "created_at": 1741965097, "status": "completed", "model": "gpt-4o",
            "output": [], "tools": [], "usage": USAGE, "store": True, "background": False}
    body.update(over)
    return body


def create(body: bytes | dict, *, request: dict | None = None, sse: bool = False, capture: bool = False,
           path: str = "/v1/responses", method: str = "POST", **fields) -> list:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ex = exchange(method=method, path=path, body=raw, request_body=json.dumps(request or {"model": "gpt-4o"}).encode(),
                  request_headers=JSON, response_headers=SSE if sse else JSON, **fields)
    return parse(ex, capture_content=capture)


def of(facts: list, cls: type) -> list:
    return [f for f in facts if isinstance(f, cls)]


def sse(*events: tuple[str | None, object]) -> bytes:
    out = b""
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        payload = data if isinstance(data, str) else json.dumps(data)
        out += f"{head}data: {payload}\n\n".encode()
    return out


def test_usage_with_its_details():
    (snap,) = of(create(response()), ResponseSnapshot)
    assert (snap.input_tokens, snap.cached_input_tokens, snap.output_tokens, snap.reasoning_tokens,
            snap.total_tokens, snap.usage_invalid) == (30, 10, 12, 4, 42, None)


IMPOSSIBLE = [
    pytest.param({**USAGE, "input_tokens": MAX_USAGE_TOKENS + 1, "total_tokens": MAX_USAGE_TOKENS + 13}, "too_large",
                 id="absurd"),
    pytest.param({**USAGE, "output_tokens": -1, "total_tokens": 29}, "negative", id="negative"),
    pytest.param({**USAGE, "input_tokens": "30"}, "malformed", id="string_count"),
    pytest.param({**USAGE, "input_tokens": 30.5}, "malformed", id="float_count"),
    pytest.param({**USAGE, "input_tokens_details": [10]}, "malformed", id="details_not_object"),
    pytest.param({"total_tokens": 42}, "malformed", id="no_counts"),
    pytest.param([1, 2], "malformed", id="not_object"),
    pytest.param({**USAGE, "total_tokens": 41}, "inconsistent", id="total_mismatch"),
    pytest.param({**USAGE, "input_tokens_details": {"cached_tokens": 31}}, "inconsistent", id="cached_above_input"),
    pytest.param({**USAGE, "output_tokens_details": {"reasoning_tokens": 13}}, "inconsistent",
                 id="reasoning_above_output"),
    pytest.param(None, "missing", id="completed_without_usage"),
]


@pytest.mark.parametrize("usage, reason", IMPOSSIBLE)
def test_impossible_or_missing_usage_keeps_no_tokens(usage, reason):
    (snap,) = of(create(response(usage=usage)), ResponseSnapshot)
    assert snap.usage_invalid == reason
    assert (snap.input_tokens, snap.cached_input_tokens, snap.output_tokens, snap.reasoning_tokens,
            snap.total_tokens) == (None,) * 5
    assert snap.status == "completed" and snap.response_id == "resp_1"


def test_every_refusal_reason_is_exercised():
    assert {p.values[1] for p in IMPOSSIBLE} == set(RESPONSE_USAGE_INVALID_REASONS)


@pytest.mark.parametrize("status", ["queued", "in_progress", "failed", "cancelled"])
def test_no_usage_yet_is_not_missing(status):
    (snap,) = of(create(response(status=status, usage=None)), ResponseSnapshot)
    assert snap.usage_invalid is None and snap.input_tokens is None


def test_unknown_output_items_and_tool_calls():
    output = [{"type": "hologram", "id": "h_1"}, {"type": "teleport_call", "id": "tp_1", "status": "completed"},
              {"type": "mcp_call", "id": "mcp_1", "name": "lookup", "server_label": "docs", "arguments": "{}",
               "output": "ok", "error": None, "status": "completed"},
              {"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "QUJD" * 1000},
              {"type": "custom_tool_call", "id": "ct_1", "call_id": "call_ct", "name": "grammar", "input": "x=1"},
              "not an item", {"no": "type"}]
    facts = create(response(output=output), capture=True)
    (snap,) = of(facts, ResponseSnapshot)
    assert snap.output_types == ("hologram", "teleport_call", "mcp_call", "image_generation_call", "custom_tool_call")
    calls = {c.call_id: c for c in of(facts, ResponseToolCallFact)}
    assert set(calls) == {"tp_1", "mcp_1", "ig_1", "call_ct"}
    assert (calls["tp_1"].type, calls["tp_1"].item_type) == ("other", "teleport_call")
    assert (calls["mcp_1"].type, calls["mcp_1"].name, calls["mcp_1"].server_label, calls["mcp_1"].output) == (
        "mcp", "lookup", "docs", "ok")
    assert calls["ig_1"].output is None and calls["ig_1"].arguments is None  # the image is not an output to keep
    assert (calls["call_ct"].type, calls["call_ct"].item_id, calls["call_ct"].arguments) == ("custom", "ct_1", "x=1")
    assert {c.type for c in calls.values()} <= set(TOOL_CALL_TYPE_NAMES)


MCP_ERRORS = [
    {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": "no order 1234 for jane@example.com"}]},
    {"type": "http_error", "code": 503, "message": "upstream said: jane@example.com not found"},
    {"type": "mcp_protocol_error", "code": -32602, "message": "bad params {\"email\": \"jane@example.com\"}"},
    "tool crashed on input jane@example.com",
    {"type": "Jane Doe <jane@example.com>", "code": {"nested": "jane@example.com"}},
]


@pytest.mark.parametrize("capture", [True, False], ids=["capture_content", "no_content"])
def test_tool_call_error_text_is_content_its_type_and_code_are_not(capture):
    """An MCP server's error can echo what the user sent: its text is kept only with
    --capture-content; whether the call failed, and how, is always kept."""
    output = [{"type": "mcp_call", "id": f"mcp_{i}", "name": "lookup", "server_label": "orders", "arguments": "{}",
               "output": None, "error": error, "status": "failed"} for i, error in enumerate(MCP_ERRORS)]
    output.append({"type": "mcp_call", "id": "mcp_ok", "name": "lookup", "server_label": "orders",
                   "arguments": "{}", "output": "ok", "error": None, "status": "completed"})
    facts = of(create(response(output=output), capture=capture), ResponseToolCallFact)
    calls = {c.call_id: c for c in facts}
    sent = {f"mcp_{i}": error for i, error in enumerate(MCP_ERRORS)}
    for call_id, error in sent.items():
        text = error if isinstance(error, str) else json.dumps(error, separators=(",", ":"))
        assert calls[call_id].error == (text[:500] if capture else None), call_id
    assert [(calls[c].error_type, calls[c].error_code) for c in sent] == [
        ("mcp_tool_execution_error", None), ("http_error", "503"), ("mcp_protocol_error", "-32602"),
        ("error", None), ("other", None)]
    assert (calls["mcp_ok"].error, calls["mcp_ok"].error_type, calls["mcp_ok"].error_code) == (None, None, None)
    if not capture:  # the user's data is nowhere in what is kept
        assert "jane@example.com" not in repr(facts)


def test_a_long_tool_call_error_is_cut_to_500_characters():
    output = [{"type": "mcp_call", "id": "mcp_1", "name": "lookup", "server_label": "orders", "arguments": "{}",
               "error": "x" * 2000, "status": "failed"}]
    (call,) = of(create(response(output=output), capture=True), ResponseToolCallFact)
    assert call.error == "x" * 500 and call.error_type == "error"


def test_stream_with_unknown_events_bad_json_and_no_names():
    body = sse(
        ("response.created", {"type": "response.created", "response": response(status="in_progress", usage=None)}),
        ("response.teleported", {"type": "response.teleported", "where": "mars"}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                        "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1",
                                                 "name": "f", "arguments": "", "status": "in_progress"}}),
        ("response.function_call_arguments.delta", "{not json"),  # a delta is never parsed
        ("response.mystery", "{not json either"),
        (None, {"type": "response.output_item.done", "output_index": 0,
                "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
                         "arguments": "{}", "status": "completed"}}),
        (None, {"type": "response.completed", "response": response(
            output=[{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}",
                     "status": "completed"}])}),
        ("done", "[DONE]"),
    )
    facts = create(body, sse=True, request={"model": "gpt-4o", "stream": True})
    ex = facts[0]
    assert isinstance(ex, ExchangeFact) and ex.parse_error == "response:invalid_json_event"
    assert [(s.event, s.status) for s in of(facts, ResponseSnapshot)] == [
        ("response.created", "in_progress"), ("response.completed", "completed")]
    (call,) = of(facts, ResponseToolCallFact)  # once, though the completed response repeats it
    assert (call.call_id, call.status, call.source, call.response_id) == ("call_1", "completed", "stream", "resp_1")
    assert ex.response_id == "resp_1" and ex.error_type is None


def test_stream_error_event_and_an_item_left_open():
    body = sse(
        ("response.created", {"type": "response.created", "response": response(status="in_progress", usage=None)}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                        "item": {"type": "web_search_call", "id": "ws_1", "status": "in_progress"}}),
        ("error", {"type": "error", "code": "server_error", "message": "boom", "param": None}),
    )
    facts = create(body, sse=True, request={"model": "gpt-4o", "stream": True})
    assert (facts[0].error_type, facts[0].error_code) == ("stream_error", "server_error")
    (call,) = of(facts, ResponseToolCallFact)
    assert (call.call_id, call.type, call.status) == ("ws_1", "web_search", "in_progress")


def test_a_response_cut_by_the_body_cap_keeps_what_came_before_the_cut():
    whole = json.dumps(response(output=[{"type": "message", "id": "msg_1", "content": [
        {"type": "output_text", "text": "y" * 5000}]}])).encode()
    cut = whole[: whole.index(b'"output"') + 200]
    facts = create(cut, response_body_size=len(whole), response_body_truncated=True)
    (snap,) = of(facts, ResponseSnapshot)
    assert (snap.response_id, snap.status, snap.model, snap.truncated) == ("resp_1", "completed", "gpt-4o", True)
    # usage lies past the cut: unknown, not missing
    assert (snap.input_tokens, snap.usage_invalid) == (None, None)
    assert (facts[0].parse_error, facts[0].body_truncated) == ("response:truncated", True)


def test_failed_response_is_not_an_exchange_error():
    facts = create(response(status="failed", usage=None, error={"code": "server_error", "message": "The model failed"}))
    (snap,) = of(facts, ResponseSnapshot)
    assert (snap.error_code, snap.error_message, snap.usage_invalid) == ("server_error", "The model failed", None)
    assert facts[0].error_type is None and facts[0].error_code is None


def test_refused_requests_record_no_call_outputs():
    request = {"model": "gpt-4o", "input": [{"type": "function_call_output", "call_id": "call_1", "output": "x"}]}
    error = {"error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}}
    facts = create(error, request=request, status=400)
    assert facts[1:] == [] and facts[0].error_type == "invalid_request_error"
    accepted = create(response(id="resp_2"), request=request)
    (out,) = of(accepted, ResponseToolCallFact)
    assert (out.source, out.call_id, out.response_id, out.type, out.output_chars, out.output) == (
        "function_call_output", "call_1", "resp_2", "function", 1, None)


def test_file_search_results_only_when_included():
    item = {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["q"], "results": None}
    request = {"model": "gpt-4o", "tools": [{"type": "file_search", "vector_store_ids": ["vs_1", "vs_2"]}]}
    facts = create(response(output=[item]), request=request)
    (call,) = of(facts, ResponseToolCallFact)
    assert (call.vector_store_ids, call.results_count, call.queries_count, call.queries) == (("vs_1", "vs_2"), None,
                                                                                            1, None)
    assert of(facts, ResponseFileSearchResultFact) == []
    hits = [{"file_id": "file-a", "filename": "a.txt", "score": 0.9, "text": "alpha"}, {"file_id": "file-b"}]
    facts = create(response(output=[dict(item, results=hits)]), request=request, capture=True)
    assert [(r.rank, r.file_id, r.filename, r.score, r.text_chars, r.text) for r in
            of(facts, ResponseFileSearchResultFact)] == [(1, "file-a", "a.txt", 0.9, 5, "alpha"),
                                                        (2, "file-b", None, None, None, None)]


def long_stream(events: int, delta: int) -> bytes:
    parts = [sse(("response.created", {"type": "response.created",
                                       "response": response(id="resp_big", status="in_progress", usage=None)}))]
    text = "x" * delta
    for n in range(events):
        parts.append(sse(("response.output_text.delta", {"type": "response.output_text.delta", "item_id": "msg_1",
                                                         "output_index": 0, "content_index": 0, "delta": text,
                                                         "sequence_number": n + 1})))
    return b"".join(parts)


def test_a_long_stream_cut_by_the_cap_is_parsed_in_bounded_memory():
    cap = 8 * 1024 * 1024
    whole = long_stream(100_000, 480)
    assert len(whole) > 6 * cap
    ex = exchange(method="POST", path="/v1/responses", body=whole[:cap], response_body_size=len(whole),
                  response_body_truncated=True, response_headers=SSE, request_headers=JSON,
                  request_body=b'{"model":"gpt-4o","stream":true}')
    tracemalloc.start()
    try:
        facts = parse(ex, capture_content=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the capped copy is the input; reading it must not hold its events (or their parsed JSON)
    assert peak < cap // 2, peak
    (snap,) = of(facts, ResponseSnapshot)
    assert (snap.response_id, snap.status, snap.truncated, snap.input_tokens, snap.usage_invalid) == (
        "resp_big", "in_progress", True, None, None)
    assert facts[0].body_truncated and facts[0].bytes_out == len(whole)
