"""The real thing: openai SDK -> proxy -> emulator, recorded by the real pipeline into the store,
the metrics sink and the tracing sink. Metric samples are checked against the store; spans
against the traffic (client traceparent honoured, run traces with steps and links)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from analytics.prices import Prices
from proxy.sinks.metrics import series_count
from tests.sinks.pipeline import recorded_pipeline

CLIENT_TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def recorded(emulator, tmp_path):
    """A proxy in front of the emulator with the full pipeline; yields (client, finish) where
    finish() stops recording and returns (registry, spans, store connection)."""
    with recorded_pipeline(emulator.url, str(tmp_path / "store"), {"traceparent": CLIENT_TP}) as pipeline:
        yield pipeline


def test_runs_metrics_and_traces_match_the_store(recorded):
    client, finish = recorded
    plain = client.beta.assistants.create(model="gpt-4o", name="Plain")
    tools = client.beta.assistants.create(model="gpt-4o", name="Weather", tools=[WEATHER])

    # a polled run
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello there"}])
    polled = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=plain.id, poll_interval_ms=1)
    assert polled.status == "completed"
    client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=polled.id)

    # a streamed run with a function call
    thread2 = client.beta.threads.create(messages=[{"role": "user", "content": "weather in Paris?"}])
    required = None
    for event in client.beta.threads.runs.create(thread_id=thread2.id, assistant_id=tools.id, stream=True):
        if event.event == "thread.run.requires_action":
            required = event.data
    assert required is not None
    outputs = [{"tool_call_id": c.id, "output": "sunny"} for c in required.required_action.submit_tool_outputs.tool_calls]
    final = None
    for event in client.beta.threads.runs.submit_tool_outputs(
        thread_id=thread2.id, run_id=required.id, tool_outputs=outputs, stream=True
    ):
        if event.event == "thread.run.completed":
            final = event.data
    assert final is not None

    # a failed run
    thread3 = client.beta.threads.create(messages=[{"role": "user", "content": "break [fail:server_error]"}])
    failed = client.beta.threads.runs.create_and_poll(thread_id=thread3.id, assistant_id=plain.id, poll_interval_ms=1)
    assert failed.status == "failed"

    registry, spans, con = finish()
    get = registry.get_sample_value

    # -- metrics against the store ---------------------------------------------------------
    runs = con.execute(
        "SELECT run_id, status, model, coalesce(last_error_code, ''), prompt_tokens, completion_tokens, epoch(created_at), "
        "assistant_id FROM runs ORDER BY run_id"
    ).fetchall()
    assert {r[0] for r in runs} == {polled.id, required.id, failed.id}
    for _, status, model, code, *_ in runs:
        n = sum(1 for r in runs if r[1:4] == (status, model, code))
        assert get("assistants_audit_runs_total", {"status": status, "model": model, "last_error_code": code}) == n
    assert get("assistants_audit_runs_total", {"status": "failed", "model": "gpt-4o", "last_error_code": "server_error"}) == 1
    # tokens and cost per model and assistant (the Cost dashboard's "by assistant" panel)
    prices = Prices.load()
    assistants = {r[7] for r in runs}
    assert assistants == {plain.id, tools.id}
    for assistant in assistants:
        mine = [r for r in runs if r[7] == assistant]
        labels = {"model": "gpt-4o", "assistant": assistant}
        for token_type, col in (("input", 4), ("output", 5)):
            assert get("assistants_audit_tokens_total", {**labels, "token_type": token_type}) == sum(
                r[col] or 0 for r in mine
            )
        expected_usd = sum(
            prices.token_cost(r[2], r[4] or 0, r[5] or 0, datetime.fromtimestamp(r[6], UTC))[0] or 0 for r in mine
        )
        assert expected_usd > 0
        assert get("assistants_audit_cost_usd_total", {**labels, "kind": "tokens"}) == pytest.approx(expected_usd)

    client_exchanges = con.execute(
        "SELECT operation, count(*) FROM exchanges WHERE origin = 'client' GROUP BY operation"
    ).fetchall()
    for operation, n in client_exchanges:
        assert get("assistants_audit_exchanges_total",
                   {"operation": operation, "status_class": "2xx", "api_version": "v2"}) == n, operation
    tool_calls = con.execute("SELECT type, count(*) FROM tool_calls GROUP BY type").fetchall()
    assert tool_calls and all(get("assistants_audit_tool_calls_total", {"type": t}) == n for t, n in tool_calls)
    polls = con.execute(
        "SELECT count(*) FROM run_snapshots s JOIN exchanges e USING (exchange_id) "
        "WHERE s.source = 'retrieve' AND e.origin = 'client'"
    ).fetchone()[0]
    assert polls > 0 and get("assistants_audit_run_polls_sum", {"model": "gpt-4o"}) == polls
    assert get("assistants_audit_store_lost_records_total") == 0
    assert get("assistants_audit_store_flush_seconds_count") >= 1
    assert series_count(registry) < 2000

    # -- spans ------------------------------------------------------------------------------
    server = [s for s in spans if s.kind == SpanKind.SERVER]
    assert len(server) == sum(n for _, n in client_exchanges)
    client_trace, client_span = int(CLIENT_TP[3:35], 16), int(CLIENT_TP[36:52], 16)
    assert all(s.context.trace_id == client_trace and s.parent.span_id == client_span for s in server)
    roots = {s.attributes["openai.run.id"]: s for s in spans if s.name.startswith("invoke_agent ")}
    assert set(roots) == {polled.id, required.id, failed.id}

    def children(root):
        return sorted((s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id),
                      key=lambda s: s.start_time)

    def linked(root):
        ids = {ln.context.span_id for ln in root.links}
        return [s for s in server if s.context.span_id in ids]

    p = roots[polled.id]
    assert p.name == "invoke_agent Plain" and p.parent is None
    assert p.start_time == int(polled.created_at * 1e9) and p.end_time == int(polled.completed_at * 1e9)
    assert p.attributes["openai.run.polls"] >= 1 and p.attributes["gen_ai.usage.input_tokens"] == polled.usage.prompt_tokens
    assert [c.name for c in children(p)] == ["chat gpt-4o"]
    ops = {s.attributes["openai.operation"] for s in linked(p)}
    assert {"runs.create", "runs.retrieve", "runs.steps.list"} <= ops

    s = roots[required.id]
    assert s.name == "invoke_agent Weather" and s.attributes["openai.run.streamed"] is True
    names = [c.name for c in children(s)]
    assert "execute_tool get_weather" in names and names[-1] == "chat gpt-4o"
    assert {"runs.create", "runs.submit_tool_outputs"} <= {x.attributes["openai.operation"] for x in linked(s)}

    f = roots[failed.id]
    assert f.attributes["error.type"] == "server_error" and f.status.status_code == StatusCode.ERROR
    assert f.end_time == int(failed.failed_at * 1e9)


def test_file_search_run_and_vector_store_gauges_match_the_store(recorded):
    client, finish = recorded
    file = client.files.create(file=("notes.txt", b"The capital of France is Paris. " * 50, "text/plain"),
                               purpose="assistants")
    kb = client.vector_stores.create(name="kb", file_ids=[file.id])
    other = client.vector_stores.create(name="empty", expires_after={"anchor": "last_active_at", "days": 2})
    for _ in range(20):
        kb = client.vector_stores.retrieve(kb.id)
        if kb.status == "completed":
            break
    assert kb.status == "completed" and kb.usage_bytes > 0
    gone = client.vector_stores.create(name="gone")
    client.vector_stores.delete(gone.id)
    assistant = client.beta.assistants.create(model="gpt-4o", name="KB", tools=[{"type": "file_search"}],
                                              tool_resources={"file_search": {"vector_store_ids": [kb.id]}})
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "capital of France?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=1)
    assert run.status == "completed"
    client.beta.threads.runs.steps.list(
        thread_id=thread.id, run_id=run.id, include=["step_details.tool_calls[*].file_search.results[*].content"]
    )
    registry, spans, con = finish()
    get = registry.get_sample_value

    stores = con.execute(
        "SELECT vector_store_id, usage_bytes, epoch(expires_at) FROM vector_stores WHERE NOT deleted"
    ).fetchall()
    assert {s[0] for s in stores} == {kb.id, other.id}
    assert get("assistants_audit_vector_stores") == 2
    assert get("assistants_audit_vector_store_total_usage_bytes") == sum(s[1] or 0 for s in stores)
    for vs_id, usage, expires in stores:
        assert get("assistants_audit_vector_store_usage_bytes", {"vector_store_id": vs_id}) == (usage or 0)
        if expires is not None:
            assert get("assistants_audit_vector_store_expires_at_seconds", {"vector_store_id": vs_id}) == expires
    assert get("assistants_audit_vector_store_usage_bytes", {"vector_store_id": gone.id}) is None
    assert get("assistants_audit_vector_store_storage_cost_usd_per_day") == 0  # under the free GiB

    results = con.execute("SELECT tool_call_id, count(*), max(score) FROM file_search_results GROUP BY 1").fetchall()
    assert len(results) == 1
    call_id, n_results, top = results[0]
    assert get("assistants_audit_tool_calls_total", {"type": "file_search"}) == 1
    assert get("assistants_audit_file_search_results_count") == 1
    assert get("assistants_audit_file_search_results_sum") == n_results

    root = next(s for s in spans if s.name == "invoke_agent KB")
    kids = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
    retrieval = next(s for s in kids if s.name == "retrieval")
    assert retrieval.attributes["gen_ai.tool.call.id"] == call_id
    assert retrieval.attributes["openai.file_search.result_count"] == n_results
    assert retrieval.attributes["openai.file_search.top_score"] == pytest.approx(top)
    assert root.start_time <= retrieval.start_time <= retrieval.end_time <= root.end_time
