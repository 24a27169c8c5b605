"""Object facts from recorded and spec-shaped payloads: runs, steps, tool calls, vector stores, ..."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

from proxy.assistants.parse import parse
from proxy.assistants.facts import (
    AssistantObservation,
    FileObservation,
    FileSearchResultFact,
    MessageObservation,
    RunSnapshot,
    StepSnapshot,
    ThreadObservation,
    ToolCallFact,
    VectorStoreFileObservation,
    VectorStoreObservation,
)
from tests.recording.recorded import exchange


def facts_of(name: str, cls: type, *, capture: bool = False, **kw) -> list:
    return [f for f in parse(exchange(name, **kw), capture_content=capture) if isinstance(f, cls)]


def utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def test_recorded_run_create_v2():
    (run,) = facts_of("runs_create_v2", RunSnapshot)
    assert (run.source, run.status, run.model, run.api_version, run.streamed) == ("create", "queued", "gpt-4", "v2", False)
    assert run.created_at == utc(1714433727)
    assert run.started_at is None and run.expires_at.tzinfo is timezone.utc
    assert run.instructions is None and run.instructions_chars == len(
        "You are a Ruby dev bot. When asked a question, write and run Ruby code to answer the question")
    (captured,) = facts_of("runs_create_v2", RunSnapshot, capture=True)
    assert captured.instructions.startswith("You are a Ruby dev bot")


def test_recorded_run_sources():
    assert facts_of("runs_retrieve_v2", RunSnapshot)[0].source == "retrieve"
    assert facts_of("runs_list_v2", RunSnapshot)[0].source == "list"
    assert facts_of("runs_create_thread_and_run_v2", RunSnapshot)[0].source == "create_thread_and_run"
    cancel = facts_of("runs_cancel_v2", RunSnapshot)[0]
    assert (cancel.source, cancel.status) == ("cancel", "cancelling")
    v1 = facts_of("runs_retrieve_v1", RunSnapshot)[0]
    assert (v1.api_version, v1.status, v1.started_at) == ("v1", "in_progress", utc(1699998568))


def test_recorded_stream_v2_events():
    facts = parse(exchange("runs_streamed_create_v2"), capture_content=False)
    runs = [f for f in facts if isinstance(f, RunSnapshot)]
    assert [(r.event, r.status) for r in runs] == [
        ("thread.run.created", "queued"), ("thread.run.queued", "queued"),
        ("thread.run.in_progress", "in_progress"), ("thread.run.completed", "incomplete"),
    ]
    assert all(r.source == "stream" and r.streamed for r in runs)
    assert [r.seq for r in runs] == sorted(r.seq for r in runs) and len({f.seq for f in facts[1:] if hasattr(f, "seq")}) == len(
        [f for f in facts[1:] if hasattr(f, "seq")])
    last = runs[-1]
    assert (last.incomplete_reason, last.prompt_tokens, last.completion_tokens, last.total_tokens) == ("max_prompt_tokens", 27, 16, 43)
    assert last.completed_at == utc(1714433732) and last.expires_at is None
    steps = [f for f in facts if isinstance(f, StepSnapshot)]
    assert [s.status for s in steps] == ["in_progress", "in_progress", "completed"]
    assert steps[-1].message_id == "msg_X9MPWjYNmdhcJd8fdiPFxhRR" and steps[-1].prompt_tokens == 27
    messages = [f for f in facts if isinstance(f, MessageObservation)]
    assert [m.status for m in messages] == ["in_progress", "incomplete"]  # created + final; deltas skipped
    text = "Sure, I can help with writing Ruby code. However, as an AI"
    assert (messages[-1].content_chars, messages[-1].content, messages[-1].role) == (len(text), None, "assistant")
    captured = [f for f in parse(exchange("runs_streamed_create_v2"), capture_content=True) if isinstance(f, MessageObservation)]
    assert captured[-1].content == text


def test_recorded_stream_v1_is_v1():
    runs = facts_of("runs_streamed_create_v1", RunSnapshot)
    assert {r.api_version for r in runs} == {"v1"}


def test_step_tool_calls_without_capture():
    facts = parse(exchange("synthetic_steps_list_tools"), capture_content=False)
    steps = [f for f in facts if isinstance(f, StepSnapshot)]
    assert [s.step_id for s in steps] == ["step_ci", "step_fs", "step_fn", "step_msg"]
    assert (steps[0].type, steps[0].status, steps[0].prompt_tokens, steps[0].completion_tokens) == ("tool_calls", "completed", 120, 30)
    calls = {c.tool_call_id: c for c in facts if isinstance(c, ToolCallFact)}
    ci, fs, fn = calls["call_ci1"], calls["call_fs1"], calls["call_fn1"]
    assert (ci.type, ci.source, ci.step_id, ci.run_id, ci.thread_id) == ("code_interpreter", "step", "step_ci", "run_synth1", "thread_synth1")
    assert (ci.code_input_chars, ci.code_input, ci.code_outputs, ci.output_chars, ci.output) == (len("print(6*7)"), None, 2, 3, None)
    assert (fs.type, fs.ranker, fs.score_threshold, fs.result_count) == ("file_search", "default_2024_08_21", 0.5, 2)
    assert (fn.type, fn.function_name, fn.arguments_chars, fn.arguments, fn.output_chars, fn.output) == (
        "function", "get_weather", len('{"city":"Paris"}'), None, len('{"temp":21}'), None)
    results = [f for f in facts if isinstance(f, FileSearchResultFact)]
    assert [(r.rank, r.file_id, r.file_name, r.score, r.content_chars, r.content) for r in results] == [
        (1, "file-a", "guide.md", 0.91, len("Ruby blocks \u2014 yield"), None),
        (2, "file-b", "faq.txt", 0.62, len("Short."), None),
    ]
    assert all(r.tool_call_id == "call_fs1" and r.step_id == "step_fs" for r in results)


def test_step_tool_calls_with_capture():
    facts = parse(exchange("synthetic_steps_list_tools"), capture_content=True)
    calls = {c.tool_call_id: c for c in facts if isinstance(c, ToolCallFact)}
    assert (calls["call_ci1"].code_input, calls["call_ci1"].output) == ("print(6*7)", "42\n")
    assert (calls["call_fn1"].arguments, calls["call_fn1"].output) == ('{"city":"Paris"}', '{"temp":21}')
    assert [r.content for r in facts if isinstance(r, FileSearchResultFact)] == ["Ruby blocks \u2014 yield", "Short."]


def test_v1_retrieval_step():
    facts = parse(exchange("synthetic_steps_list_v1_retrieval"), capture_content=False)
    (call,) = [f for f in facts if isinstance(f, ToolCallFact)]
    assert (call.type, call.tool_call_id) == ("retrieval", "call_r1")
    assert facts[0].v1_semantics is True


def test_required_action_and_submitted_outputs_tie_by_call_id():
    facts = parse(exchange("synthetic_runs_retrieve_requires_action"), capture_content=False)
    (run,) = [f for f in facts if isinstance(f, RunSnapshot)]
    assert (run.status, run.required_action_count, run.tools) == ("requires_action", 2, ("code_interpreter", "file_search", "function"))
    required = [f for f in facts if isinstance(f, ToolCallFact)]
    assert [(c.tool_call_id, c.source, c.function_name, c.arguments_chars, c.run_id) for c in required] == [
        ("call_fn1", "required_action", "get_weather", 16, "run_synth1"),
        ("call_fn2", "required_action", "get_time", 2, "run_synth1"),
    ]
    facts = parse(exchange("synthetic_runs_submit_tool_outputs"), capture_content=True)
    outputs = [f for f in facts if isinstance(f, ToolCallFact)]
    assert [(c.tool_call_id, c.source, c.output, c.output_chars, c.run_id, c.thread_id) for c in outputs] == [
        ("call_fn1", "tool_output", '{"temp":21}', 11, "run_synth1", "thread_synth1"),
        ("call_fn2", "tool_output", "12:00", 5, "run_synth1", "thread_synth1"),
    ]
    assert [f.source for f in facts if isinstance(f, RunSnapshot)] == ["submit_tool_outputs"]


def test_rejected_requests_record_nothing_they_asked_for():
    # recorded: "Runs in status "in_progress" do not accept tool outputs." (400)
    facts = parse(exchange("runs_submit_tool_outputs_v2"), capture_content=False)
    assert facts[0].error_type == "invalid_request_error" and facts[1:] == []
    assert parse(exchange("vector_store_file_batches_create", status=400), capture_content=False)[1:] == []


def test_streamed_requires_action():
    facts = parse(exchange("synthetic_stream_requires_action"), capture_content=False)
    runs = [f for f in facts if isinstance(f, RunSnapshot)]
    assert [r.status for r in runs] == ["queued", "in_progress", "requires_action"]
    calls = [(c.tool_call_id, c.source) for c in facts if isinstance(c, ToolCallFact)]
    assert calls == [("call_fn1", "step"), ("call_fn1", "required_action"), ("call_fn2", "required_action")]


def test_failed_run():
    (run,) = facts_of("synthetic_runs_retrieve_failed", RunSnapshot)
    assert (run.status, run.last_error_code, run.last_error_message, run.failed_at) == (
        "failed", "rate_limit_exceeded", "Rate limit reached", utc(1714433710))


def test_vector_stores():
    (vs,) = facts_of("vector_stores_create", VectorStoreObservation)
    assert (vs.vector_store_id, vs.source, vs.status, vs.usage_bytes, vs.files_total, vs.deleted) == (
        "vs_kWaCiN8Ii4e1hefIou5skq9g", "create", "completed", 0, 0, False)
    assert vs.last_active_at == utc(1714495294)
    (early,) = facts_of("synthetic_vector_store_early_bytes", VectorStoreObservation)
    assert (early.usage_bytes, early.files_completed, early.expires_after_anchor, early.expires_after_days) == (4096, 2, "last_active_at", 7)
    (sparse,) = facts_of("vector_stores_create_sparse", VectorStoreObservation)
    assert (sparse.usage_bytes, sparse.status, sparse.files_in_progress) == (None, None, 0)
    (gone,) = facts_of("vector_stores_delete", VectorStoreObservation)
    assert (gone.vector_store_id, gone.deleted, gone.source) == ("vs_DBrde7MywMBEdxmzXaeO76Ky", True, "delete")
    listed = facts_of("vector_stores_list", VectorStoreObservation)
    assert len(listed) > 3 and [v.seq for v in listed] == list(range(1, len(listed) + 1))
    assert {v.source for v in listed} == {"list"}


def test_sampler_origin_marks_source():
    (vs,) = facts_of("vector_stores_retrieve", VectorStoreObservation, origin="sampler")
    assert vs.source == "sampler"


def test_vector_store_files():
    (f,) = facts_of("vector_store_files_list", VectorStoreFileObservation)
    assert (f.file_id, f.vector_store_id, f.status, f.usage_bytes, f.deleted) == (
        "file-hN8c8cMN7IhVulUyYHN3AKQW", "vs_8HxymfYr9b09lsN1tvtMItOe", "completed", 1036, False)
    (d,) = facts_of("vector_store_files_delete", VectorStoreFileObservation)
    assert (d.file_id, d.vector_store_id, d.deleted) == ("file-cQkOwz3aospk6aTNL78LAztA", "vs_8dzN747pTzY2MtyDQoxfwmod", True)
    (b,) = facts_of("vector_store_file_batches_create", VectorStoreFileObservation)
    assert (b.file_id, b.vector_store_id, b.status) == ("file-0cXHcvZknvN0EVU5JpYm5S0U", "vs_yrC4Y143ue4kRkSxu1VW8ece", None)


def test_assistants_threads_messages_files():
    (a,) = facts_of("synthetic_assistant_v1_retrieval", AssistantObservation)
    assert (a.api_version, a.tools, a.file_ids, a.instructions, a.instructions_chars) == ("v1", ("retrieval",), ("file-v1a", "file-v1b"), None, 14)
    (a2,) = facts_of("assistants_create_v2", AssistantObservation)
    assert (a2.api_version, a2.model, a2.file_ids, a2.deleted) == ("v2", "gpt-4", (), False)
    (t,) = facts_of("threads_create_v2", ThreadObservation)
    assert t.thread_id.startswith("thread_") and t.created_at.tzinfo is timezone.utc
    (m,) = facts_of("messages_create_v1", MessageObservation)
    text = "Can you help me write an API library to interact with the OpenAI API please?"
    assert (m.role, m.content_chars, m.content, m.attachments, m.file_ids) == ("user", len(text), None, None, ())
    (m2,) = facts_of("messages_create_v2", MessageObservation, capture=True)
    assert (m2.content, m2.attachments) == (text, 0)
    (f,) = facts_of("files_upload", FileObservation)
    assert (f.file_id, f.filename, f.purpose, f.bytes, f.status, f.deleted) == (
        "file-EmSHokq3yMo32RJUyt1wttIj", "sentiment.jsonl", "fine-tune", 159, "processed", False)


def test_error_responses_produce_no_object_facts():
    assert parse(exchange("runs_create_v2_error"), capture_content=False)[1:] == []


def test_enrichment_retrieves_are_not_client_polls():
    (run,) = facts_of("runs_retrieve_v2", RunSnapshot, origin="enrichment")
    assert run.source == "enrichment"
    assert parse(exchange("runs_retrieve_v2", origin="enrichment"), capture_content=False)[0].origin == "enrichment"


def test_completed_upload_records_its_file():
    upload = {"id": "upload_1", "object": "upload", "status": "completed", "bytes": 2048, "purpose": "assistants",
              "file": {"id": "file-up1", "object": "file", "bytes": 2048, "filename": "big.pdf", "purpose": "assistants",
                       "created_at": 1714433700, "status": "processed"}}
    base = exchange("files_upload")
    ex = dataclasses.replace(base, path="/v1/uploads/upload_1/complete", request_body=b'{"part_ids":["part_1"]}',
                             request_headers=(("content-type", "application/json"),),
                             response_body=json.dumps(upload).encode())
    facts = parse(ex, capture_content=False)
    assert facts[0].operation == "uploads.complete"
    (f,) = [x for x in facts if isinstance(x, FileObservation)]
    assert (f.file_id, f.bytes, f.filename) == ("file-up1", 2048, "big.pdf")
