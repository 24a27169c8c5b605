"""OtelSink fed with hand-built facts; spans read back from an InMemorySpanExporter and from a
real OTLP/HTTP receiver on loopback (protobuf decoded)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from proxy.config import Settings
from proxy.assistants.facts import AssistantObservation
from proxy.sinks.otel import OtelSink
from proxy.serving.tracecontext import TraceParent, outgoing_traceparent
from proxy.sinks.telemetry import (
    TelemetryConfig,
    TelemetryConfigError,
    tracer_provider,
    tracer_provider_from_env,
)
from tests.sinks import factories as f

CLIENT_TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def ns(seconds: float) -> int:
    return int((f.T0 + seconds) * 1e9)


@pytest.fixture
def exporter():
    return InMemorySpanExporter()


def make_sink(exporter, capture_content=False, step_wait_s=5.0):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    clock = SimpleNamespace(now=0.0)
    sink = OtelSink(provider, Settings(capture_content=capture_content), step_wait_s=step_wait_s,
                    clock=lambda: clock.now)
    return sink, clock


def by_name(spans, name):
    found = [s for s in spans if s.name == name]
    assert found, (name, [s.name for s in spans])
    return found


def polled_run(sink, clock):
    """create -> 2 polls -> completed; the client lists steps afterwards."""
    sent = outgoing_traceparent(CLIENT_TP)
    ex = f.exchange(method="POST", path="/v1/threads/thread_1/runs", t=0, duration=0.25, traceparent=sent,
                    upstream="http://127.0.0.1:8080", extra={"client_traceparent": CLIENT_TP},
                    request_headers=(("host", "127.0.0.1:8080"), ("traceparent", sent)))
    sink.on_exchange(ex, [
        f.exchange_fact(ex, operation="runs.create", route="/threads/{thread_id}/runs", thread_id="thread_1",
                        assistant_id="asst_1", model="gpt-4o", upstream_request_id="req_123"),
        f.run(status="queued", source="create", instructions="be brief"),
        AssistantObservation(**{**{k: None for k in AssistantObservation.__slots__},
                                "exchange_id": ex.exchange_id, "seq": 0, "observed_at": f.at(0), "assistant_id": "asst_1",
                                "name": "Math Tutor", "tools": (), "vector_store_ids": (), "code_interpreter_file_ids": (),
                                "file_ids": (), "deleted": False}),
    ])
    for t, status in ((1, "in_progress"), (2, "completed")):
        ex = f.exchange(t=t)
        sink.on_exchange(ex, [
            f.exchange_fact(ex, run_id="run_1", thread_id="thread_1"),
            f.run(status=status, t=t, started_at=f.at(0.5), completed_at=f.at(1.8) if status == "completed" else None,
                  prompt_tokens=100 if status == "completed" else None, completion_tokens=20 if status == "completed" else None,
                  instructions="be brief"),
        ])
    return sent


def test_polled_run_trace(exporter):
    sink, clock = make_sink(exporter)
    sent = TraceParent.parse(polled_run(sink, clock))
    spans = exporter.get_finished_spans()
    assert len(spans) == 3 and all(s.kind == SpanKind.SERVER for s in spans)  # run trace waits for steps
    create = by_name(spans, "POST /threads/{thread_id}/runs")[0]
    # exactly the ids the forwarder sent upstream, child of the client's span
    assert create.context.trace_id == sent.trace_id == int(CLIENT_TP[3:35], 16)
    assert create.context.span_id == sent.span_id
    assert create.parent.span_id == int(CLIENT_TP[36:52], 16)
    assert create.start_time == ns(0) and create.end_time == ns(0.25)
    a = create.attributes
    assert a["http.request.method"] == "POST" and a["http.route"] == "/threads/{thread_id}/runs"
    assert a["url.path"] == "/v1/threads/thread_1/runs" and a["http.response.status_code"] == 200
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == 8080
    assert a["gen_ai.operation.name"] == "invoke_agent" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.agent.id"] == "asst_1" and a["gen_ai.conversation.id"] == "thread_1"
    assert a["gen_ai.request.model"] == "gpt-4o" and a["openai.request_id"] == "req_123"
    assert a["openai.beta_header"] == "assistants=v2" and a["openai.api_version"] == "v2"
    assert a["openai.run.id"] == "run_1" and a["openai.run.status"] == "queued"
    last_poll = spans[-1]
    assert last_poll.attributes["gen_ai.usage.input_tokens"] == 100
    assert last_poll.attributes["openai.run.status"] == "completed"

    # the client lists the steps: now the run trace goes out
    ex = f.exchange(t=3, path="/v1/threads/thread_1/runs/run_1/steps")
    sink.on_exchange(ex, [
        f.exchange_fact(ex, operation="runs.steps.list", run_id="run_1", thread_id="thread_1"),
        f.step("step_1", type="message_creation", created_at=f.at(0.6), completed_at=f.at(1.7), status="completed",
               prompt_tokens=100, completion_tokens=20),
    ])
    spans = exporter.get_finished_spans()
    root = by_name(spans, "invoke_agent Math Tutor")[0]
    assert root.parent is None and root.kind == SpanKind.INTERNAL
    assert root.start_time == ns(0) and root.end_time == ns(1.8)
    assert root.attributes["openai.run.polls"] == 2 and root.attributes["openai.run.status"] == "completed"
    assert root.attributes["gen_ai.usage.output_tokens"] == 20
    assert "gen_ai.system_instructions" not in root.attributes  # content capture is off
    server_spans = [s for s in spans if s.kind == SpanKind.SERVER]
    assert {(ln.context.trace_id, ln.context.span_id) for ln in root.links} == {
        (s.context.trace_id, s.context.span_id) for s in server_spans
    }
    chat = by_name(spans, "chat gpt-4o")[0]
    assert chat.parent.span_id == root.context.span_id and chat.context.trace_id == root.context.trace_id
    assert chat.start_time == ns(0.6) and chat.end_time == ns(1.7)
    # emitted once
    sink.on_exchange(ex, [f.exchange_fact(ex, operation="runs.steps.list", run_id="run_1")])
    sink.close()
    assert len(by_name(exporter.get_finished_spans(), "invoke_agent Math Tutor")) == 1


def test_polled_run_without_steps_is_emitted_after_wait(exporter):
    sink, clock = make_sink(exporter, capture_content=True)
    polled_run(sink, clock)
    sink.flush()
    assert not [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent")]
    clock.now = 5.0
    sink.flush()
    root = by_name(exporter.get_finished_spans(), "invoke_agent Math Tutor")[0]
    assert root.attributes["gen_ai.system_instructions"] == "be brief"


def streamed_run_facts(ex_id="ex"):
    """create_and_run streamed: a function call, its outputs submitted, a file_search, then a message."""
    stream1 = [
        f.run(status="queued", source="stream", streamed=True, t=0),
        f.run(status="in_progress", source="stream", streamed=True, t=0.1, started_at=f.at(0.1)),
        f.step("step_fn", created_at=f.at(0.2), status="in_progress"),
        f.tool_call("call_fn", type="function", step_id="step_fn", function_name="get_weather",
                    arguments='{"city": "Paris"}', arguments_chars=16),
        f.run(status="requires_action", source="stream", streamed=True, t=0.3),
    ]
    stream2 = [
        f.tool_call("call_fn", type=None, source="tool_output", output="sunny", output_chars=5),
        f.step("step_fn", completed_at=f.at(1.2), status="completed"),
        f.step("step_fs", created_at=f.at(1.3), completed_at=f.at(1.6), status="completed"),
        f.tool_call("call_fs", type="file_search", step_id="step_fs", result_count=3),
        f.file_search_result("call_fs", 1, 0.91, step_id="step_fs"),
        f.file_search_result("call_fs", 2, 0.55, step_id="step_fs"),
        f.file_search_result("call_fs", 3, 0.12, step_id="step_fs"),
        f.step("step_msg", type="message_creation", created_at=f.at(1.7), completed_at=f.at(2.4), status="completed"),
        f.run(status="completed", source="stream", streamed=True, t=2.5, started_at=f.at(0.1), completed_at=f.at(2.5),
              prompt_tokens=300, completion_tokens=40),
    ]
    return stream1, stream2


def feed_streamed(sink, run_id="run_1"):
    stream1, stream2 = ([dataclasses.replace(x, run_id=run_id) for x in part] for part in streamed_run_facts())
    ex1 = f.exchange(method="POST", path="/v1/threads/runs", t=0, duration=0.3)
    sink.on_exchange(ex1, [f.exchange_fact(ex1, operation="threads.create_and_run", route="/threads/runs", stream=True,
                                           run_id=None), *stream1])
    ex2 = f.exchange(method="POST", path="/v1/threads/thread_1/runs/run_1/submit_tool_outputs", t=1.0, duration=1.5)
    sink.on_exchange(ex2, [f.exchange_fact(ex2, operation="runs.submit_tool_outputs",
                                           route="/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
                                           run_id=run_id, stream=True), *stream2])
    return ex1, ex2


def test_streamed_run_with_tool_calls(exporter):
    sink, _ = make_sink(exporter)
    feed_streamed(sink)
    spans = exporter.get_finished_spans()  # streamed: the run trace is out without waiting
    root = by_name(spans, "invoke_agent asst_1")[0]  # assistant name unknown: its id
    assert root.start_time == ns(0) and root.end_time == ns(2.5)
    assert root.attributes["openai.run.streamed"] is True
    assert len(root.links) == 2
    kids = sorted((s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id),
                  key=lambda s: s.start_time)
    assert [s.name for s in kids] == ["execute_tool get_weather", "retrieval", "chat gpt-4o"]
    tool, retrieval, chat = kids
    assert tool.start_time == ns(0.2) and tool.end_time == ns(1.2)
    assert tool.attributes["gen_ai.tool.call.id"] == "call_fn" and tool.attributes["gen_ai.tool.type"] == "function"
    assert "gen_ai.tool.call.arguments" not in tool.attributes and "gen_ai.tool.call.result" not in tool.attributes
    assert retrieval.attributes["openai.file_search.result_count"] == 3
    assert retrieval.attributes["openai.file_search.top_score"] == pytest.approx(0.91)
    assert retrieval.attributes["gen_ai.operation.name"] == "retrieval"
    submit = by_name(spans, "POST /threads/{thread_id}/runs/{run_id}/submit_tool_outputs")[0]
    assert submit.attributes["gen_ai.operation.name"] == "execute_tool"


def test_content_attributes_only_with_capture(exporter):
    sink, _ = make_sink(exporter, capture_content=True)
    feed_streamed(sink)
    tool = by_name(exporter.get_finished_spans(), "execute_tool get_weather")[0]
    assert tool.attributes["gen_ai.tool.call.arguments"] == '{"city": "Paris"}'
    assert tool.attributes["gen_ai.tool.call.result"] == "sunny"


def test_failed_run(exporter):
    sink, _ = make_sink(exporter, step_wait_s=0)
    ex = f.exchange(t=3, status=200)
    failed = f.run(status="failed", t=3, started_at=f.at(1), failed_at=f.at(2.75), last_error_code="rate_limit_exceeded",
                   last_error_message="slow down")
    sink.on_exchange(ex, [f.exchange_fact(ex, run_id="run_1"), failed])
    root = by_name(exporter.get_finished_spans(), "invoke_agent asst_1")[0]
    assert root.attributes["error.type"] == "rate_limit_exceeded"
    assert root.status.status_code == StatusCode.ERROR and root.status.description is None  # message is content
    assert root.end_time == ns(2.75)


def test_upstream_failure_span(exporter):
    sink, _ = make_sink(exporter)
    ex = f.exchange(status=504, error_type="upstream_timeout")
    sink.on_exchange(ex, [f.exchange_fact(ex, status_code=504, error_type="upstream_timeout")])
    span = exporter.get_finished_spans()[0]
    assert span.attributes["error.type"] == "upstream_timeout" and span.status.status_code == StatusCode.ERROR
    assert span.parent is None


def test_run_state_is_bounded(exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = OtelSink(provider, Settings(), max_runs=50)
    for i in range(500):
        ex = f.exchange()
        sink.on_exchange(ex, [f.exchange_fact(ex, run_id=f"run_{i}"), f.run(f"run_{i}", status="in_progress")])
    assert len(sink._runs) == 50


def test_env_config():
    assert tracer_provider_from_env({}) is None
    assert tracer_provider_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}) is None
    assert tracer_provider_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"}) is None
    cfg = TelemetryConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/", "OTEL_SERVICE_NAME": "gw"})
    assert cfg.traces_endpoint == "http://127.0.0.1:4318/v1/traces" and cfg.service_name == "gw"
    cfg = TelemetryConfig.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/custom"})
    assert cfg.traces_endpoint == "http://127.0.0.1:9/custom"
    for bad in ({"OTEL_TRACES_SAMPLER": "sometimes"}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
                {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}):
        with pytest.raises(TelemetryConfigError, match="OTEL_"):
            TelemetryConfig.from_env(bad)


def test_sampler_from_env(exporter):
    from opentelemetry.sdk.trace.sampling import ParentBased

    def spans_with(env):
        provider = tracer_provider(TelemetryConfig.from_env(env))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        exporter.clear()
        sink = OtelSink(provider, Settings())
        ex = f.exchange()
        sink.on_exchange(ex, [f.exchange_fact(ex)])
        return provider, len(exporter.get_finished_spans())

    provider, n = spans_with({})
    assert n == 1 and isinstance(provider.sampler, ParentBased)
    assert spans_with({"OTEL_TRACES_SAMPLER": "always_off"})[1] == 0
    assert spans_with({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"})[1] == 0
    assert spans_with({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"})[1] == 1


def test_outgoing_traceparent():
    out = TraceParent.parse(outgoing_traceparent(CLIENT_TP))
    assert out.trace_id == int(CLIENT_TP[3:35], 16) and out.span_id != int(CLIENT_TP[36:52], 16) and out.flags == 1
    fresh = TraceParent.parse(outgoing_traceparent("garbage"))
    assert fresh is not None and fresh.trace_id != out.trace_id


def test_otlp_http_export_to_loopback_receiver(otlp_receiver):
    provider = tracer_provider_from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url, "OTEL_SERVICE_NAME": "audit-test"}
    )
    sink = OtelSink(provider, Settings())
    polled_run(sink, SimpleNamespace(now=0.0))
    ex = f.exchange(t=3, path="/v1/threads/thread_1/runs/run_1/steps")
    sink.on_exchange(ex, [
        f.exchange_fact(ex, operation="runs.steps.list", run_id="run_1", thread_id="thread_1"),
        f.step("step_1", type="message_creation", created_at=f.at(0.6), completed_at=f.at(1.7), status="completed"),
    ])
    polled_spans = 3 + 1 + 2  # create + 2 polls, steps list, run + chat
    feed_streamed(sink, run_id="run_s")
    ex = f.exchange(t=3, status=200, traceparent=outgoing_traceparent(CLIENT_TP),
                    extra={"client_traceparent": CLIENT_TP})
    failed = f.run("run_9", status="failed", t=3, started_at=f.at(1), failed_at=f.at(2.75), last_error_code="server_error")
    sink.on_exchange(ex, [f.exchange_fact(ex, run_id="run_9"), failed])
    sink.close()
    provider.shutdown()  # flushes the batch processor
    spans = otlp_receiver.wait_for(polled_spans + 2 + 4 + 1 + 1)
    assert {s.service_name for s in spans} == {"audit-test"}
    names = [s.name for s in spans]
    assert names.count("invoke_agent Math Tutor") == 3  # the assistant's name, once its object was seen

    polled = next(s for s in spans if s.name == "invoke_agent Math Tutor" and s.attributes["openai.run.id"] == "run_1")
    assert polled.parent_span_id == "" and polled.start_ns == ns(0) and polled.end_ns == ns(1.8)
    assert polled.attributes["openai.run.polls"] == 2 and polled.attributes["gen_ai.usage.input_tokens"] == 100
    create = next(s for s in spans if s.name == "POST /threads/{thread_id}/runs")
    assert create.kind == 2 and create.trace_id == CLIENT_TP[3:35] and create.parent_span_id == CLIENT_TP[36:52]
    assert create.attributes["gen_ai.operation.name"] == "invoke_agent" and create.start_ns == ns(0)
    assert (create.trace_id, create.span_id) in {(t, sp) for t, sp, _ in polled.links}
    assert len(polled.links) == 4
    [chat] = [s for s in spans if s.parent_span_id == polled.span_id]
    assert chat.name == "chat gpt-4o" and (chat.start_ns, chat.end_ns) == (ns(0.6), ns(1.7))

    root = next(s for s in spans if s.name == "invoke_agent Math Tutor" and s.attributes["openai.run.id"] == "run_s")
    kids = sorted((s for s in spans if s.parent_span_id == root.span_id), key=lambda s: s.start_ns)
    assert [k.name for k in kids] == ["execute_tool get_weather", "retrieval", "chat gpt-4o"]
    assert all(k.trace_id == root.trace_id for k in kids)
    assert kids[1].attributes["openai.file_search.result_count"] == 3
    assert root.start_ns == ns(0) and root.end_ns == ns(2.5) and root.parent_span_id == ""
    server = [s for s in spans if s.kind == 2]
    assert {(t, sp) for t, sp, _ in root.links} <= {(s.trace_id, s.span_id) for s in server}
    assert len(root.links) == 2
    failed_root = next(s for s in spans if s.attributes.get("openai.run.id") == "run_9" and s.name.startswith("invoke_agent"))
    assert failed_root.attributes["error.type"] == "server_error" and failed_root.status_code == 2
    poll = next(s for s in server if s.attributes.get("openai.run.id") == "run_9")
    assert poll.trace_id == CLIENT_TP[3:35] and poll.parent_span_id == CLIENT_TP[36:52]
    assert failed_root.links[0][:2] == (poll.trace_id, poll.span_id)
