"""Azure AI Foundry Agent Service (classic agents) end to end: the real azure-ai-agents SDK ->
`assistants-audit serve` (workers, journal, recorder process) -> the emulator's Foundry project.

Everything the store, the cost views, the spans and /metrics say is checked against what the SDK
got back; the Entra ID bearer token is fingerprinted like an API key and found nowhere the proxy
writes (store files, logs at debug level, spans, metrics)."""

from __future__ import annotations

import http.client
import json

import azure.ai.agents
import pytest
from azure.ai.agents import models as m

from proxy.serving.fingerprint import Fingerprinter
from tests.faults.audit_serve import serving, store_files  # noqa: F401 (fixture)
from tests.faults.test_security import leaks, needles
from tests.foundry import PROJECT, TOKEN, agents_client
from tests.recording.store_helpers import rows, wait_for

FINGERPRINT_SECRET = "foundry-fingerprint-secret"
DOCUMENT = "The aurora maintenance contract renews every March for 12000 dollars.\n"
QUESTION = "When does the aurora maintenance contract renew?"


def get_weather(city: str) -> str:
    """Today's weather in a city.

    :param city: the city
    """
    return json.dumps({"city": city, "celsius": 21})


def q(store, sql: str) -> list[dict]:
    """Rows of a query on the store as dicts (column order as in the SELECT)."""
    from analytics.store import open_store

    st = open_store(store)
    try:
        columns, data = st.query(sql)
        return [dict(zip(columns, row)) for row in data]
    finally:
        st.close()


def scrape(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def foundry_workload(url: str, tmp_path) -> dict:
    """A Foundry user's day: a file in a vector store, an agent with file_search, code_interpreter
    and a function, a run polled through a function call, its steps listed; then a second run
    (no tools) whose steps nobody lists. Returns what the SDK got back."""
    client = agents_client(url)
    doc = tmp_path / "aurora.md"
    doc.write_text(DOCUMENT)
    uploaded = client.files.upload_and_poll(file_path=str(doc), purpose=m.FilePurpose.AGENTS)
    store = client.vector_stores.create_and_poll(file_ids=[uploaded.id], name="contracts")
    functions = m.FunctionTool(functions={get_weather})
    toolset = m.ToolSet()
    for tool in (m.FileSearchTool(vector_store_ids=[store.id]), m.CodeInterpreterTool(), functions):
        toolset.add(tool)
    agent = client.create_agent(model="gpt-4o", name="contracts-agent", instructions="Answer from the documents.",
                                toolset=toolset)
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content=QUESTION)
    run = client.runs.create(thread_id=thread.id, agent_id=agent.id,
                             include=[m.RunAdditionalFieldList.FILE_SEARCH_CONTENTS])
    submitted = []
    while run.status in (m.RunStatus.QUEUED, m.RunStatus.IN_PROGRESS, m.RunStatus.REQUIRES_ACTION):
        if run.status == m.RunStatus.REQUIRES_ACTION:
            calls = run.required_action.submit_tool_outputs.tool_calls
            outputs = [m.ToolOutput(tool_call_id=call.id, output=functions.execute(call)) for call in calls]
            submitted += [call.id for call in calls]
            run = client.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id, tool_outputs=outputs)
        else:
            run = client.runs.get(thread_id=thread.id, run_id=run.id)
    steps = list(client.run_steps.list(thread_id=thread.id, run_id=run.id,
                                       include=[m.RunAdditionalFieldList.FILE_SEARCH_CONTENTS]))
    client.messages.create(thread_id=thread.id, role="user", content="Thanks! [no_tools]")
    quiet = client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=0)
    threads = list(client.threads.list())
    return {"file": uploaded, "store": client.vector_stores.get(store.id), "agent": agent, "thread": thread,
            "run": run, "steps": steps, "submitted": submitted, "quiet": quiet, "threads": threads}


@pytest.mark.slow
def test_foundry_agents_are_recorded_like_assistants(emulator, serving, otlp_receiver, tmp_path):
    store = tmp_path / "store"
    proxy = serving(emulator.url, store, "--log-level", "debug", env={
        "ASSISTANTS_AUDIT_FINGERPRINT_SECRET": FINGERPRINT_SECRET,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200"})
    seen = foundry_workload(proxy.url, tmp_path)
    run, quiet, steps = seen["run"], seen["quiet"], seen["steps"]
    assert run.status == quiet.status == "completed" and seen["submitted"]
    assert [t.id for t in seen["threads"]] == [seen["thread"].id]
    # nobody listed the second run's steps: the proxy fetches them itself, with the same token
    assert wait_for(lambda: rows(store, f"SELECT 1 FROM run_steps WHERE run_id = '{quiet.id}'"))
    metrics = scrape(proxy.admin_port)
    while_running = store_files(store)
    assert proxy.stop() == 0, proxy.output()

    # -- exchanges: every call is Foundry's, under the project, with the token's fingerprint ------
    fingerprint = Fingerprinter(FINGERPRINT_SECRET)(TOKEN)
    by_origin = q(store, "SELECT origin, api, provider, project, azure_api_version, api_version, key_fingerprint, "
                         "count(*) AS n, count(*) FILTER (WHERE operation = 'other') AS unknown, "
                         "count(*) FILTER (WHERE status_code <> 200) AS failed "
                         "FROM exchanges GROUP BY ALL ORDER BY origin")
    assert by_origin == [
        {"origin": origin, "api": "foundry_agents", "provider": "azure.ai.agents", "project": PROJECT,
         "azure_api_version": "v1",
         "api_version": "v2", "key_fingerprint": fingerprint, "n": n, "unknown": 0, "failed": 0}
        for origin, n in (("client", by_origin[0]["n"]), ("enrichment", 1))
    ]
    operations = {r["operation"] for r in q(store, "SELECT DISTINCT operation FROM exchanges")}
    assert {"files.create", "vector_stores.create", "assistants.create", "threads.create", "messages.create",
            "runs.create", "runs.retrieve", "runs.submit_tool_outputs", "runs.steps.list", "threads.list"} <= operations
    sdks = q(store, "SELECT DISTINCT sdk FROM exchanges WHERE origin = 'client'")
    assert sdks == [{"sdk": f"python azure-ai-agents {azure.ai.agents.__version__}"}]
    enrichment = q(store, "SELECT path, route, run_id FROM exchanges WHERE origin = 'enrichment'")
    assert enrichment == [{"path": f"/api/projects/{PROJECT}/threads/{quiet.thread_id}/runs/{quiet.id}/steps",
                           "route": "/threads/{thread_id}/runs/{run_id}/steps", "run_id": quiet.id}]

    # -- runs: status and tokens as the SDK got them, the project, the polls -----------------------
    assert q(store, "SELECT run_id, assistant_id, thread_id, model, status, api_version, project, "
                    "prompt_tokens, completion_tokens, total_tokens, poll_count > 0 AS polled, required_action "
                    "FROM runs ORDER BY created_at") == [
        {"run_id": r.id, "assistant_id": seen["agent"].id, "thread_id": seen["thread"].id, "model": r.model,
         "status": "completed", "api_version": "v2", "project": PROJECT, "prompt_tokens": r.usage.prompt_tokens,
         "completion_tokens": r.usage.completion_tokens, "total_tokens": r.usage.total_tokens, "polled": True,
         "required_action": r is run}
        for r in (run, quiet)
    ]

    # -- run steps and tool calls: the ones the SDK listed -------------------------------------------
    assert q(store, f"SELECT step_id, type, status, prompt_tokens, completion_tokens FROM run_steps "
                    f"WHERE run_id = '{run.id}' ORDER BY step_id") == sorted(
        ({"step_id": s.id, "type": s.type, "status": s.status, "prompt_tokens": s.usage.prompt_tokens,
          "completion_tokens": s.usage.completion_tokens} for s in steps), key=lambda r: r["step_id"])
    sdk_calls = [c for s in steps if s.type == "tool_calls" for c in s.step_details.tool_calls]
    assert sorted(c.type for c in sdk_calls) == ["code_interpreter", "file_search", "function"]
    recorded_calls = q(store, f"SELECT tool_call_id, step_id, type, function_name FROM tool_calls "
                              f"WHERE run_id = '{run.id}' ORDER BY tool_call_id")
    step_of = {c.id: s.id for s in steps if s.type == "tool_calls" for c in s.step_details.tool_calls}
    assert recorded_calls == sorted(
        ({"tool_call_id": c.id, "step_id": step_of[c.id], "type": c.type,
          "function_name": c.function.name if c.type == "function" else None} for c in sdk_calls),
        key=lambda r: r["tool_call_id"])
    assert [c.id for c in sdk_calls if c.type == "function"] == seen["submitted"]

    # -- file_search results: file, score and size as returned; the text only under --capture-content
    search = next(c for c in sdk_calls if c.type == "file_search")
    assert q(store, "SELECT tool_call_id, rank, file_id, file_name, score, content_chars, content "
                    "FROM file_search_results ORDER BY rank") == [
        {"tool_call_id": search.id, "rank": rank, "file_id": r.file_id, "file_name": r.file_name,
         "score": pytest.approx(r.score), "content_chars": len(r.content[0].text), "content": None}
        for rank, r in enumerate(search.file_search.results, 1)
    ]
    assert search.file_search.results[0].content[0].text == DOCUMENT.strip()

    # -- the vector store and the file ------------------------------------------------------------------
    vs = seen["store"]
    assert q(store, "SELECT vector_store_id, name, status, usage_bytes, files_total, deleted FROM vector_stores") == [
        {"vector_store_id": vs.id, "name": "contracts", "status": "completed", "usage_bytes": vs.usage_bytes,
         "files_total": vs.file_counts.total, "deleted": False}]
    assert q(store, "SELECT file_id, filename, purpose, bytes FROM files WHERE purpose = 'assistants'") == [
        {"file_id": seen["file"].id, "filename": "aurora.md", "purpose": "assistants", "bytes": seen["file"].bytes}]

    # -- costs: the runs' tokens at the model's price, the code_interpreter session, the storage -----
    priced = q(store, "SELECT r.run_id, r.usd, r.prompt_tokens * p.input_usd_per_mtok / 1e6 "
                      "+ r.completion_tokens * p.output_usd_per_mtok / 1e6 AS expected "
                      "FROM run_costs r JOIN model_prices p ON lower(p.model) = lower(r.model) "
                      "AND r.input_usd_per_mtok = p.input_usd_per_mtok ORDER BY r.priced_at")
    assert [r["run_id"] for r in priced] == [run.id, quiet.id]
    assert all(r["usd"] > 0 and r["usd"] == pytest.approx(r["expected"]) for r in priced)
    costs = q(store, "SELECT kind, run_id, vector_store_id, key_fingerprint, usd FROM costs ORDER BY kind, run_id")
    assert {(c["kind"], c["run_id"]) for c in costs if c["kind"] != "vector_store_storage"} == {
        ("tokens", run.id), ("tokens", quiet.id), ("code_interpreter_session", run.id)}
    assert {c["vector_store_id"] for c in costs if c["kind"] == "vector_store_storage"} == {vs.id}
    assert {c["key_fingerprint"] for c in costs} == {fingerprint}
    session = next(c for c in costs if c["kind"] == "code_interpreter_session")
    assert session["usd"] > 0
    by_key = q(store, "SELECT key_fingerprint, round(sum(usd), 9) AS usd FROM cost_by_key GROUP BY ALL")
    assert by_key == [{"key_fingerprint": fingerprint, "usd": round(sum(c["usd"] or 0 for c in costs), 9)}]

    # -- telemetry names the provider; the project is no label -------------------------------------
    spans = otlp_receiver.wait_for(1)
    providers = {s.attributes.get("gen_ai.provider.name") for s in spans} - {None}
    assert providers == {"azure.ai.agents"}
    assert 'gen_ai_provider_name="azure.ai.agents"' in metrics
    assert PROJECT not in metrics

    # -- the token: nowhere the proxy writes --------------------------------------------------------
    looking_for = needles(TOKEN)
    files = store_files(store)
    assert any(p.suffix == ".parquet" for p in files) and any(p.name == "audit.duckdb" for p in files)
    for path, data in [*while_running.items(), *files.items()]:
        assert not leaks(data, looking_for), f"{leaks(data, looking_for)} in {path}"
    log = proxy.output()
    assert " DEBUG " in log and "recorder stopped" in log
    assert not leaks(log.encode(), looking_for)
    assert not leaks(metrics.encode(), looking_for)
    assert not any(leaks(json.dumps(s.attributes, default=str).encode(), looking_for) for s in spans)
