"""Responses API telemetry end to end: the unmodified openai SDK (client.responses plain, streamed,
background, with tools, in a conversation) -> the proxy -> the emulator, recorded by the real
pipeline. Every span and metric sample is checked against what the client saw (ids, usage from
the SDK's objects) and against the store."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from analytics.prices import Prices
from proxy.assistants.parse import parse
from proxy.config import Settings
from proxy.sinks.otel import OtelSink
from tests.exchanges import exchange
from tests.recording.recorded import rows
from tests.responses.test_responses_e2e import TERMINAL, WEATHER
from tests.responses.workload import run_responses_workload
from tests.sinks.pipeline import recorded_pipeline
from tests.sinks.serving import scrape, serve, stop

CLIENT_TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CLIENT_TRACE, CLIENT_SPAN = int(CLIENT_TP[3:35], 16), int(CLIENT_TP[36:52], 16)
def usage_attributes(resp) -> dict[str, int]:
    u = resp.usage
    return {"gen_ai.usage.input_tokens": u.input_tokens, "gen_ai.usage.output_tokens": u.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": u.input_tokens_details.cached_tokens,
            "gen_ai.usage.reasoning.output_tokens": u.output_tokens_details.reasoning_tokens}


def children(spans, parent):
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


@pytest.fixture
def pipeline(emulator, tmp_path):
    """pipeline(**settings): the recorded proxy in front of the emulator, the client sending CLIENT_TP."""
    return lambda **settings: recorded_pipeline(emulator.url, str(tmp_path / "store"), {"traceparent": CLIENT_TP},
                                                **settings)


def test_response_spans_and_metrics_match_what_the_client_saw(pipeline):
    with pipeline() as (client, finish):
        w = run_responses_workload(client)
        registry, spans, con = finish()

    finished = w.finished()
    plain, chained, streamed, polled, failed, incomplete, reasoning = (
        w.plain, w.chained, w.streamed, w.polled, w.failed, w.incomplete, w.reasoning)
    conv, in_conv, asked, answered, searched, web, code, cancelled = (
        w.conversation, w.in_conversation, w.asked, w.answered, w.searched, w.web, w.code, w.cancelled)
    (call,), vs_id, retrieves = asked.output, w.vector_store_id, w.retrieves
    assert {r.status for r in finished} == set(TERMINAL)
    server = [s for s in spans if s.kind == SpanKind.SERVER]
    creates = {s.attributes["gen_ai.response.id"]: s for s in server
               if s.attributes["openai.operation"] == "responses.create"}
    chats = {s.attributes["gen_ai.response.id"]: s for s in spans if s.name.startswith("chat ")}
    assert set(chats) == {r.id for r in finished}

    # -- spans --------------------------------------------------------------------------------
    for resp in finished:
        span, create = chats[resp.id], creates[resp.id]
        a = span.attributes
        assert span.name == f"chat {'o4-mini' if resp is reasoning else 'gpt-4o'}" and span.kind == SpanKind.CLIENT
        # in the client's trace, a child of the exchange span whose id the forwarder sent upstream
        assert span.context.trace_id == create.context.trace_id == CLIENT_TRACE
        assert span.parent.span_id == create.context.span_id and create.parent.span_id == CLIENT_SPAN
        assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"], a["openai.api.type"]) == (
            "chat", "openai", "responses")
        assert (a["gen_ai.request.model"], a["gen_ai.response.model"], a["openai.response.status"]) == (
            resp.model, resp.model, resp.status)
        assert a.get("gen_ai.conversation.id") == (conv.id if resp is in_conv else None)
        assert a.get("openai.response.previous_response_id") == resp.previous_response_id
        if resp.usage is not None:
            assert {k: a[k] for k in usage_attributes(resp)} == usage_attributes(resp), resp.id
        else:
            assert "gen_ai.usage.input_tokens" not in a
        assert "gen_ai.system_instructions" not in a  # content is opt-in
        if resp not in (polled, cancelled):  # plain and streamed: the span is their create exchange
            assert (span.start_time, span.end_time) == (create.start_time, create.end_time)
    assert chats[chained.id].attributes["gen_ai.usage.cache_read.input_tokens"] > 0
    assert chats[reasoning.id].attributes["gen_ai.usage.reasoning.output_tokens"] > 0
    assert creates[plain.id].attributes["gen_ai.operation.name"] == "chat"
    assert creates[plain.id].attributes["gen_ai.usage.input_tokens"] == plain.usage.input_tokens
    assert creates[in_conv.id].attributes["gen_ai.conversation.id"] == conv.id

    reasons = {rid: s.attributes["gen_ai.response.finish_reasons"] for rid, s in chats.items()}
    assert reasons[plain.id] == ("stop",) and reasons[asked.id] == ("tool_calls",)
    assert reasons[incomplete.id] == ("length",) and reasons[failed.id] == ("error",)
    assert reasons[cancelled.id] == ("cancelled",)
    bad = chats[failed.id]
    assert bad.attributes["error.type"] == failed.error.code and bad.status.status_code == StatusCode.ERROR
    assert "error.type" not in chats[incomplete.id].attributes
    assert chats[incomplete.id].attributes["openai.response.incomplete_reason"] == "max_output_tokens"

    s = chats[streamed.id]
    first = s.attributes["gen_ai.response.time_to_first_chunk"]
    assert s.attributes["gen_ai.request.stream"] is True and 0 < first <= (s.end_time - s.start_time) / 1e9
    assert "gen_ai.request.stream" not in chats[plain.id].attributes
    assert "gen_ai.response.time_to_first_chunk" not in chats[plain.id].attributes

    b = chats[polled.id]
    polls = sorted((x for x in server if x.attributes["openai.operation"] == "responses.retrieve"
                    and x.attributes["gen_ai.response.id"] == polled.id), key=lambda x: x.start_time)
    assert len(polls) == retrieves and b.attributes["openai.response.polls"] == retrieves
    assert b.attributes["openai.response.background"] is True
    assert {ln.context.span_id for ln in b.links} == {p.context.span_id for p in polls}
    assert b.start_time == creates[polled.id].start_time <= b.end_time <= polls[-1].end_time
    assert b.end_time == max(b.start_time, int(polled.completed_at * 1e9))
    c = chats[cancelled.id]
    assert c.end_time == next(x for x in server if x.attributes["openai.operation"] == "responses.cancel").end_time

    tools = {t.attributes["gen_ai.tool.call.id"]: t for t in spans if t.name.startswith("execute_tool ")}
    fs_call, ws_call, ci_call = searched.output[0], web.output[0], code.output[0]
    assert set(tools) == {call.call_id, fs_call.id, ws_call.id, ci_call.id}
    for resp, item, name, kind in ((asked, call, "get_current_weather", "function"),
                                   (searched, fs_call, "file_search", "datastore"),
                                   (web, ws_call, "web_search", "extension"),
                                   (code, ci_call, "code_interpreter", "extension")):
        t = tools[item.call_id if resp is asked else item.id]
        assert t.name == f"execute_tool {name}" and t.parent.span_id == chats[resp.id].context.span_id
        assert (t.attributes["gen_ai.tool.name"], t.attributes["gen_ai.tool.type"]) == (name, kind)
        assert (t.attributes["openai.tool.item_id"], t.attributes["openai.tool.status"]) == (item.id, item.status)
        assert chats[resp.id].start_time <= t.start_time <= t.end_time <= chats[resp.id].end_time
        assert "gen_ai.tool.call.arguments" not in t.attributes and "gen_ai.tool.call.result" not in t.attributes
    fs = tools[fs_call.id].attributes
    assert fs["openai.file_search.result_count"] == len(fs_call.results) and fs["openai.file_search.vector_store_ids"] == (
        vs_id,)
    assert tools[ci_call.id].attributes["openai.code_interpreter.container_id"] == ci_call.container_id
    assert children(spans, chats[answered.id]) == []  # the function's output was sent back: no new call

    # -- metrics ------------------------------------------------------------------------------
    get = registry.get_sample_value
    for status in TERMINAL:
        for reason in ("", "server_error", "max_output_tokens"):
            n = sum(1 for r in finished if r.status == status and reason == (
                (r.error.code if r.status == "failed" else "") or
                (r.incomplete_details.reason if r.status == "incomplete" else "")))
            assert (get("assistants_audit_responses_total", {"status": status, "status_reason": reason}) or 0) == n
    priced = [r for r in finished if r.usage is not None]
    for token_type, of in (("input", lambda u: u.input_tokens), ("output", lambda u: u.output_tokens),
                           ("cached_input", lambda u: u.input_tokens_details.cached_tokens),
                           ("reasoning", lambda u: u.output_tokens_details.reasoning_tokens)):
        assert get("assistants_audit_generation_tokens_total", {"generation": "responses", "token_type": token_type}) == sum(
            of(r.usage) for r in priced), token_type
    prices = Prices.load()
    usd = sum(prices.token_cost(r.model, r.usage.input_tokens, r.usage.output_tokens,
                                datetime.fromtimestamp(r.created_at, UTC),
                                cached_input_tokens=r.usage.input_tokens_details.cached_tokens)[0] for r in priced)
    full_price = sum(prices.token_cost(r.model, r.usage.input_tokens, r.usage.output_tokens,
                                       datetime.fromtimestamp(r.created_at, UTC))[0] for r in priced)
    assert usd < full_price  # cached input is priced as such
    assert get("assistants_audit_generation_cost_usd_total", {"generation": "responses", "kind": "tokens"}) == (
        pytest.approx(usd))
    for kind, n in (("function", 1), ("file_search", 1), ("web_search", 1), ("code_interpreter", 1)):
        assert get("assistants_audit_api_tool_calls_total", {"api": "responses", "type": kind}) == n
    for mode, n in (("sync", len(finished) - 3), ("stream", 1), ("background", 2)):
        assert get("assistants_audit_response_duration_seconds_count", {"mode": mode}) == n, mode
    assert get("assistants_audit_response_time_to_first_event_seconds_count") == 1
    assert get("assistants_audit_response_time_to_first_event_seconds_sum") == pytest.approx(first)
    chat = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai"}
    assert get("gen_ai_client_operation_duration_seconds_count",
               {**chat, "gen_ai_request_model": "gpt-4o", "error_type": "server_error"}) == 1
    assert get("gen_ai_client_token_usage_sum", {**chat, "gen_ai_request_model": "o4-mini",
                                                 "gen_ai_token_type": "output"}) == reasoning.usage.output_tokens

    # every client call by API family and generation, as the store has them
    calls = con.execute("SELECT api, count(*) FROM exchanges WHERE origin = 'client' GROUP BY api").fetchall()
    assert {a for a, _ in calls} == {"responses", "conversations", "assistants"}
    for api, n in calls:
        assert get("assistants_audit_api_requests_total", {"api": api, "status_class": "2xx"}) == n, api
        assert get("assistants_audit_api_request_duration_seconds_count", {"api": api}) == n, api
    by_api = dict(calls)
    assert get("assistants_audit_generation_calls_total", {"generation": "responses"}) == (
        by_api["responses"] + by_api["conversations"])
    assert get("assistants_audit_generation_calls_total", {"generation": "shared"}) == by_api["assistants"]
    stored = {r["response_id"]: r for r in rows(con, "SELECT * FROM responses")}
    assert set(stored) == set(chats)
    assert all(chats[rid].attributes.get("gen_ai.usage.input_tokens") == r["input_tokens"] for rid, r in stored.items())


def test_capture_content_puts_instructions_and_tool_content_on_spans(pipeline):
    with pipeline(capture_content=True) as (client, finish):
        asked = client.responses.create(model="gpt-4o", input="Weather in Paris?", tools=[WEATHER],
                                        instructions="Use the tool.")
        code = client.responses.create(model="gpt-4o", input="Sum the numbers below ten",
                                       tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
                                       include=["code_interpreter_call.outputs"])
        failed = client.responses.create(model="gpt-4o", input="Please answer [fail:server_error]")
        _, spans, _ = finish()
    chats = {s.attributes["gen_ai.response.id"]: s for s in spans if s.name.startswith("chat ")}
    assert chats[asked.id].attributes["gen_ai.system_instructions"] == "Use the tool."
    assert chats[failed.id].status.description == failed.error.message
    tools = {t.attributes["gen_ai.tool.call.id"]: t.attributes for t in spans if t.name.startswith("execute_tool ")}
    (call,), ci = asked.output, code.output[0]
    assert tools[call.call_id]["gen_ai.tool.call.arguments"] == call.arguments
    assert (tools[ci.id]["gen_ai.tool.call.arguments"], tools[ci.id]["gen_ai.tool.call.result"]) == (
        ci.code, ci.outputs[0].logs)


@pytest.mark.slow
def test_serve_exports_response_spans_over_otlp(emulator, otlp_receiver, tmp_path):
    """`assistants-audit serve` configured by OTEL_* exports the response spans to a real OTLP/HTTP
    receiver, and serves the Responses metrics of the same traffic."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url, "OTEL_SERVICE_NAME": "audit-responses",
           "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with serve(emulator.url, str(tmp_path / "store"), env=env) as served:
        client = openai.OpenAI(api_key="sk-test", base_url=f"{served.url}/v1", max_retries=0,
                               default_headers={"traceparent": CLIENT_TP})
        asked = client.responses.create(model="gpt-4o", input="What is the weather in Paris?", tools=[WEATHER])
        with client.responses.create(model="gpt-4o", input="Stream it", stream=True) as stream:
            streamed = list(stream)[-1].response
        conv = client.conversations.create()
        in_conv = client.responses.create(model="gpt-4o", input="Hi", conversation=conv.id)
        key = ("assistants_audit_responses_total", (("status", "completed"), ("status_reason", "")))
        deadline = time.monotonic() + 90
        while (done := scrape(f"{served.admin_url}/metrics").get(key)) != 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done == 3
        stop(served.proc)  # shutdown flushes the batch exporter
        assert served.proc.returncode == 0
    deadline = time.monotonic() + 30
    while sum(s.name.startswith("chat ") for s in otlp_receiver.spans) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    spans = list(otlp_receiver.spans)
    chats = {s.attributes["gen_ai.response.id"]: s for s in spans if s.name.startswith("chat ")}
    assert set(chats) == {asked.id, streamed.id, in_conv.id}
    creates = {s.attributes.get("gen_ai.response.id"): s for s in spans
               if s.kind == 2 and s.attributes.get("openai.operation") == "responses.create"}
    for resp in (asked, streamed, in_conv):
        span = chats[resp.id]
        assert span.kind == 3 and span.service_name == "audit-responses"  # CLIENT
        assert span.trace_id == CLIENT_TP[3:35] and span.parent_span_id == creates[resp.id].span_id
        assert span.attributes["gen_ai.usage.input_tokens"] == resp.usage.input_tokens
        assert span.attributes["gen_ai.usage.output_tokens"] == resp.usage.output_tokens
    assert chats[in_conv.id].attributes["gen_ai.conversation.id"] == conv.id
    assert chats[streamed.id].attributes["gen_ai.response.time_to_first_chunk"] > 0
    (call,) = asked.output
    tool = next(s for s in spans if s.name == "execute_tool get_current_weather")
    assert tool.parent_span_id == chats[asked.id].span_id and tool.trace_id == CLIENT_TP[3:35]
    assert (tool.attributes["gen_ai.tool.call.id"], tool.attributes["gen_ai.tool.type"]) == (call.call_id, "function")


@pytest.mark.parametrize("capture", [True, False], ids=["capture_content", "no_content"])
def test_a_tool_call_error_marks_its_span_without_its_text(capture):
    """An MCP call that reports an error is a failed `execute_tool` span, with the error's type
    and code, whether or not content is captured; the error's text (it can echo the user's data)
    is never an attribute. The emulator has no MCP server, so the answer is a recorded shape."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = OtelSink(provider, Settings(upstream="http://upstream", admin_listen=None, capture_content=capture))
    error = {"type": "http_error", "code": 503, "message": "order 1234 of jane@example.com: upstream down"}
    body = {"id": "resp_1", "object": "response", "created_at": 1741965097, "completed_at": 1741965099,
            "status": "completed", "model": "gpt-4o", "tools": [{"type": "mcp", "server_label": "orders"}],
            "usage": {"input_tokens": 30, "output_tokens": 12, "total_tokens": 42},
            "output": [{"type": "mcp_call", "id": "mcp_1", "server_label": "orders", "name": "lookup",
                        "arguments": "{}", "output": None, "error": error, "status": "completed"}]}
    ex = exchange(method="POST", path="/v1/responses", body=json.dumps(body).encode(),
                  request_body=b'{"model":"gpt-4o","input":"Where is my order?"}',
                  request_headers=(("content-type", "application/json"),))
    sink.on_exchange(ex, parse(ex, capture_content=capture))
    spans = exporter.get_finished_spans()
    (tool,) = [s for s in spans if s.name.startswith("execute_tool")]
    assert tool.status.status_code == StatusCode.ERROR and tool.attributes["error.type"] == "tool_error"
    assert (tool.attributes["openai.tool.error.type"], tool.attributes["openai.tool.error.code"]) == ("http_error",
                                                                                                     "503")
    assert not any("jane@example.com" in str(v) for s in spans for v in s.attributes.values())
