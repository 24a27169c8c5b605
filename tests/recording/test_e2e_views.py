"""The real thing for the recorded meaning: openai SDK -> proxy -> emulator, through the real
pipeline into the store, then every public view checked row by row against what the SDK saw."""

from __future__ import annotations

import io

import pytest

from tests.recording.recorded import rows as q

V1 = {"OpenAI-Beta": "assistants=v1"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
INCLUDE = ["step_details.tool_calls[*].file_search.results[*].content"]


def poll_v1(client, thread_id: str, run_id: str):
    for _ in range(200):
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id, extra_headers=V1)
        if run.status in ("completed", "failed", "cancelled", "expired", "incomplete", "requires_action"):
            return run
    raise AssertionError("v1 run did not finish")


def test_workload_lands_row_by_row_in_the_views(recorded):
    client, finish = recorded
    beta = client.beta

    # vector store growing: two files added one after the other
    vs = client.vector_stores.create(name="docs")
    f1 = client.files.create(file=("guide.md", io.BytesIO(b"Ruby blocks use yield. " * 40)), purpose="assistants")
    client.vector_stores.files.create_and_poll(vector_store_id=vs.id, file_id=f1.id, poll_interval_ms=1)
    client.vector_stores.retrieve(vs.id)
    f2 = client.files.create(file=("faq.md", io.BytesIO(b"Blocks and procs and lambdas. " * 80)), purpose="assistants")
    client.vector_stores.files.create_and_poll(vector_store_id=vs.id, file_id=f2.id, poll_interval_ms=1)
    grown = client.vector_stores.retrieve(vs.id)

    tools_asst = beta.assistants.create(model="gpt-4o", name="Tools", tools=[{"type": "code_interpreter"}, {"type": "file_search"}],
                                        tool_resources={"file_search": {"vector_store_ids": [vs.id]}})
    plain = beta.assistants.create(model="gpt-4o", name="Plain")
    weather = beta.assistants.create(model="gpt-4o", name="Weather", tools=[WEATHER])

    # polled run with code_interpreter and file_search, then steps with the file_search include
    t1 = beta.threads.create(messages=[{"role": "user", "content": "How do Ruby blocks work?"}])
    polled = beta.threads.runs.create_and_poll(thread_id=t1.id, assistant_id=tools_asst.id, poll_interval_ms=1)
    assert polled.status == "completed"
    steps = beta.threads.runs.steps.list(run_id=polled.id, thread_id=t1.id, include=INCLUDE)
    sdk_calls = {c.id: c for s in steps.data if s.type == "tool_calls" for c in s.step_details.tool_calls}
    fs_call = next(c for c in sdk_calls.values() if c.type == "file_search")
    assert fs_call.file_search.results

    # streamed run with a function call, outputs submitted on a stream
    t2 = beta.threads.create(messages=[{"role": "user", "content": "weather in Paris?"}])
    required = None
    for event in beta.threads.runs.create(thread_id=t2.id, assistant_id=weather.id, stream=True):
        if event.event == "thread.run.requires_action":
            required = event.data
    assert required is not None
    fn_calls = required.required_action.submit_tool_outputs.tool_calls
    for event in beta.threads.runs.submit_tool_outputs(thread_id=t2.id, run_id=required.id, stream=True,
                                                      tool_outputs=[{"tool_call_id": c.id, "output": "sunny"} for c in fn_calls]):
        pass

    # failed, incomplete, expired, cancelled
    outcomes = {}
    for trigger in ("[fail:server_error]", "[incomplete:max_completion_tokens]", "[expire]"):
        t = beta.threads.create(messages=[{"role": "user", "content": f"go {trigger}"}])
        outcomes[trigger] = beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=plain.id, poll_interval_ms=1)
    t_cancel = beta.threads.create(messages=[{"role": "user", "content": "slowly [slow]"}])
    to_cancel = beta.threads.runs.create(thread_id=t_cancel.id, assistant_id=plain.id)
    beta.threads.runs.cancel(run_id=to_cancel.id, thread_id=t_cancel.id)
    cancelled = beta.threads.runs.poll(run_id=to_cancel.id, thread_id=t_cancel.id, poll_interval_ms=1)

    # v1 traffic: retrieval tool and file_ids (only v1 has them)
    v1_asst = beta.assistants.create(model="gpt-4-turbo", name="Retriever", tools=[{"type": "retrieval"}],
                                     extra_body={"file_ids": [f1.id]}, extra_headers=V1)
    v1_thread = beta.threads.create(messages=[{"role": "user", "content": "find yield"}], extra_headers=V1)
    v1_run = beta.threads.runs.create(thread_id=v1_thread.id, assistant_id=v1_asst.id, extra_headers=V1)
    v1_run = poll_v1(client, v1_thread.id, v1_run.id)
    beta.threads.runs.steps.list(run_id=v1_run.id, thread_id=v1_thread.id, extra_headers=V1)

    con = finish()

    # -- runs --------------------------------------------------------------------------------
    runs = {r["run_id"]: r for r in q(con, "SELECT *, epoch(created_at) AS c, epoch(started_at) AS s, "
                                           "epoch(completed_at) AS e FROM runs")}
    p = runs[polled.id]
    assert (p["status"], p["model"], p["thread_id"], p["assistant_id"], p["api_version"], p["streamed"]) == (
        "completed", "gpt-4o", t1.id, tools_asst.id, "v2", False)
    assert (p["c"], p["s"], p["e"]) == (polled.created_at, polled.started_at, polled.completed_at)
    assert p["queue_seconds"] == polled.started_at - polled.created_at
    assert p["run_seconds"] == polled.completed_at - polled.started_at
    assert (p["prompt_tokens"], p["completion_tokens"], p["total_tokens"]) == (
        polled.usage.prompt_tokens, polled.usage.completion_tokens, polled.usage.total_tokens)
    assert p["poll_count"] >= 1 and 0 <= p["polls_unchanged"] < p["poll_count"]
    s = runs[required.id]
    assert (s["status"], s["streamed"], s["required_action"], s["poll_count"]) == ("completed", True, True, 0)
    assert s["total_tokens"] and s["total_tokens"] > 0
    failed = runs[outcomes["[fail:server_error]"].id]
    assert (failed["status"], failed["last_error_code"]) == ("failed", "server_error") and failed["failed_at"] is not None
    inc = runs[outcomes["[incomplete:max_completion_tokens]"].id]
    assert (inc["status"], inc["incomplete_reason"]) == ("incomplete", "max_completion_tokens")
    assert runs[outcomes["[expire]"].id]["status"] == "expired"
    assert cancelled.status == "cancelled"
    c = runs[cancelled.id]
    assert c["status"] == "cancelled" and c["cancelled_at"] is not None
    v1 = runs[v1_run.id]
    assert (v1["api_version"], v1["status"]) == ("v1", v1_run.status)

    # -- run steps, tool calls, file_search results ------------------------------------------
    db_steps = {r["step_id"]: r for r in q(con, f"SELECT * FROM run_steps WHERE run_id = '{polled.id}'")}
    assert set(db_steps) == {st.id for st in steps.data}
    for st in steps.data:
        row = db_steps[st.id]
        assert (row["type"], row["status"], row["thread_id"]) == (st.type, st.status, t1.id)
        if st.usage:
            assert (row["prompt_tokens"], row["completion_tokens"]) == (st.usage.prompt_tokens, st.usage.completion_tokens)
    calls = {r["tool_call_id"]: r for r in q(con, "SELECT * FROM tool_calls")}
    for call_id, call in sdk_calls.items():
        assert (calls[call_id]["type"], calls[call_id]["run_id"]) == (call.type, polled.id)
    ci = next(c for c in sdk_calls.values() if c.type == "code_interpreter")
    assert calls[ci.id]["code_outputs"] == len(ci.code_interpreter.outputs)
    assert calls[fs_call.id]["result_count"] == len(fs_call.file_search.results)
    results = q(con, f"SELECT * FROM file_search_results WHERE tool_call_id = '{fs_call.id}' ORDER BY rank")
    assert [(r["rank"], r["file_id"], r["file_name"], r["run_id"]) for r in results] == [
        (i, x.file_id, x.file_name, polled.id) for i, x in enumerate(fs_call.file_search.results, start=1)]
    assert [r["score"] for r in results] == pytest.approx([x.score for x in fs_call.file_search.results])
    assert all(r["content_chars"] > 0 and r["content"] is None for r in results)  # capture_content is off
    for fc in fn_calls:
        row = calls[fc.id]
        assert (row["type"], row["function_name"], row["run_id"], row["required_action"], row["output_submitted"]) == (
            "function", "get_weather", required.id, True, True)
        assert row["output_chars"] == len("sunny") and row["output"] is None and row["arguments_chars"] == len(fc.function.arguments)
    v1_calls = q(con, f"SELECT type FROM tool_calls WHERE run_id = '{v1_run.id}'")
    assert {"type": "retrieval"} in v1_calls

    # -- vector stores -----------------------------------------------------------------------
    (row,) = q(con, f"SELECT *, epoch(created_at) AS c FROM vector_stores WHERE vector_store_id = '{vs.id}'")
    assert (row["name"], row["usage_bytes"], row["files_total"], row["deleted"], row["c"]) == (
        "docs", grown.usage_bytes, grown.file_counts.total, False, vs.created_at)
    usage = [r["usage_bytes"] for r in q(con, f"SELECT usage_bytes FROM vector_store_usage WHERE vector_store_id = '{vs.id}' "
                                               "ORDER BY observed_at")]
    assert usage[0] == 0 and usage[-1] == grown.usage_bytes and len(set(usage)) >= 3 and usage == sorted(usage)
    vs_files = {r["file_id"]: r for r in q(con, f"SELECT * FROM vector_store_files WHERE vector_store_id = '{vs.id}'")}
    assert set(vs_files) == {f1.id, f2.id} and {r["status"] for r in vs_files.values()} == {"completed"}

    # -- exchanges, assistants, files --------------------------------------------------------
    ex = q(con, "SELECT operation, api_version, v1_semantics, key_fingerprint, sdk, stream FROM exchanges WHERE origin = 'client'")
    assert all(e["key_fingerprint"] and "sk-e2e-secret" not in e["key_fingerprint"] for e in ex)
    assert all(e["sdk"] and e["sdk"].startswith("python ") for e in ex)
    assert any(e["operation"] == "runs.submit_tool_outputs" and e["stream"] for e in ex)
    v1_ex = [e for e in ex if e["api_version"] == "v1"]
    assert v1_ex and any(e["v1_semantics"] for e in v1_ex)
    assert not any(e["v1_semantics"] for e in ex if e["api_version"] == "v2")
    asst = {r["assistant_id"]: r for r in q(con, "SELECT * FROM assistants")}
    assert asst[v1_asst.id]["api_version"] == "v1" and asst[v1_asst.id]["file_ids"] == [f1.id]
    assert asst[tools_asst.id]["vector_store_ids"] == [vs.id] and asst[tools_asst.id]["tools"] == ["code_interpreter", "file_search"]
    files = {r["file_id"]: r for r in q(con, "SELECT * FROM files")}
    assert files[f1.id]["purpose"] == "assistants" and files[f1.id]["bytes"] == f1.bytes


def test_a_direct_vector_store_search_lands_in_file_search_results(recorded):
    client, finish = recorded
    doc = client.files.create(file=("policy.txt", io.BytesIO(b"Refunds are due within 30 days of purchase. " * 40)),
                              purpose="assistants")
    vs = client.vector_stores.create(name="search-e2e")
    client.vector_stores.files.create_and_poll(vector_store_id=vs.id, file_id=doc.id, poll_interval_ms=1)
    hits = list(client.vector_stores.search(vs.id, query="refunds due after purchase").data)
    assert hits, "the emulator found nothing to search"

    con = finish()
    exchange_id = q(con, "SELECT exchange_id FROM exchanges WHERE operation = 'vector_stores.search'")[0]["exchange_id"]
    rows = q(con, "SELECT tool_call_id, rank, file_id, file_name, score, content_chars, content, run_id "
                  "FROM file_search_results WHERE exchange_id = ? ORDER BY rank", exchange_id)
    assert rows == [dict(tool_call_id=f"search_{exchange_id}", rank=rank, file_id=hit.file_id, file_name=hit.filename,
                         score=pytest.approx(hit.score), content_chars=len("".join(p.text for p in hit.content)),
                         content=None, run_id=None)
                    for rank, hit in enumerate(hits, start=1)]
