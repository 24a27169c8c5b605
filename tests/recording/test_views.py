"""The public views over raw fact tables built with analytics.schema, fed by parse() of fixtures."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from analytics.schema import TABLES, column_type, ddl, to_row
from proxy.assistants.parse import parse
from proxy.assistants.facts import RunSnapshot
from proxy.facts import FACT_TYPES
from tests.recording.recorded import T0, exchange, rows

VIEWS = Path(__file__).resolve().parents[2] / "analytics" / "views.sql"
PUBLIC = ["exchanges", "runs", "run_steps", "tool_calls", "file_search_results", "vector_stores", "vector_store_usage",
          "vector_store_files", "assistants", "threads", "messages", "files", "responses", "response_tool_calls",
          "response_file_search_results", "conversations", "conversation_items"]
CONTRACT = {
    "exchanges": "exchange_id, started_at, duration_ms, ttfb_ms, method, path, route, operation, status_code, beta_header, api_version, stream, upstream_request_id, key_fingerprint, sdk, error_type",
    "runs": "run_id, thread_id, assistant_id, model, status, api_version, created_at, started_at, completed_at, failed_at, cancelled_at, expires_at, queue_seconds, run_seconds, last_error_code, incomplete_reason, prompt_tokens, completion_tokens, total_tokens, streamed, poll_count",
    "run_steps": "step_id, run_id, thread_id, type, status, created_at, completed_at, prompt_tokens, completion_tokens",
    "tool_calls": "tool_call_id, step_id, run_id, thread_id, type, function_name",
    "file_search_results": "tool_call_id, run_id, rank, file_id, file_name, score, content_chars",
    "vector_stores": "vector_store_id, name, status, usage_bytes, files_total, created_at, last_active_at, expires_at, deleted, last_seen_at",
    "vector_store_usage": "vector_store_id, observed_at, usage_bytes",
    "responses": "id, model, status, conversation_id, previous_response_id, background, streamed, polls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, created_at, completed_at, error_code, error_message, incomplete_reason, store, deleted, key_fingerprint, sdk, provider, api_version, instructions, usage_invalid, truncated",
    "response_tool_calls": "response_id, call_id, type, status, name, vector_store_ids, container_id, results_count, arguments, output, queries, error, error_type, error_code, output_submitted, output_response_id",
    "response_file_search_results": "response_id, call_id, rank, file_id, filename, score, text",
    "conversations": "id, created_at, deleted, items_created, key_fingerprint, provider, metadata_keys, responses",
}


def make_db() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone='UTC'")
    for table, cls in TABLES.items():
        con.execute(ddl(cls, table))
    con.execute(VIEWS.read_text())
    return con


def insert(con: duckdb.DuckDBPyConnection, facts) -> None:
    for fact in facts:
        cols = len(dataclasses.fields(fact))
        con.execute(f'INSERT INTO "{fact.TABLE}" VALUES ({", ".join("?" * cols)})', list(to_row(fact)))


def record(con, name: str, *, at: float, capture: bool = False, **kw) -> list:
    kw.setdefault("exchange_id", f"{name}@{at}")
    facts = parse(exchange(name, started_at=at, **kw), capture_content=capture)
    insert(con, facts)
    return facts


def utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def test_schema_types():
    assert column_type(str | None) == "VARCHAR" and column_type(tuple[str, ...]) == "VARCHAR[]"
    assert column_type(datetime) == "TIMESTAMPTZ" and column_type(bool) == "BOOLEAN" and column_type("int | None") == "BIGINT"
    assert set(TABLES.values()) == set(FACT_TYPES)
    with pytest.raises(TypeError):
        column_type(dict)
    fact = parse(exchange("runs_retrieve_v2"), capture_content=False)[1]
    row = to_row(fact)
    assert isinstance(row[2], datetime) and isinstance(row[[f.name for f in dataclasses.fields(RunSnapshot)].index("tools")], list)


def test_views_exist_with_contract_columns_on_empty_tables():
    con = make_db()
    for view in PUBLIC:
        assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
    for view, cols in CONTRACT.items():
        have = [d[0] for d in con.execute(f"SELECT * FROM {view} LIMIT 0").description]
        missing = [c for c in cols.split(", ") if c not in have]
        assert not missing, (view, missing)


def test_polled_run_lifecycle_folds_to_latest_state():
    con = make_db()
    record(con, "synthetic_runs_retrieve_requires_action", at=T0 + 1)
    record(con, "synthetic_runs_retrieve_requires_action", at=T0 + 2)  # unchanged poll
    record(con, "synthetic_runs_submit_tool_outputs", at=T0 + 3)
    record(con, "synthetic_runs_retrieve_completed", at=T0 + 5)
    record(con, "synthetic_runs_retrieve_requires_action", at=T0 + 4.9, exchange_id="late-poll")  # arrives late, earlier state
    record(con, "synthetic_steps_list_tools", at=T0 + 6)
    (run,) = rows(con, "SELECT * FROM runs WHERE run_id = 'run_synth1'")
    assert (run["status"], run["model"], run["thread_id"], run["assistant_id"]) == ("completed", "gpt-4o", "thread_synth1", "asst_synth1")
    assert run["created_at"] == utc(1714433700) and run["started_at"] == utc(1714433702) and run["completed_at"] == utc(1714433712)
    assert (run["queue_seconds"], run["run_seconds"]) == (2.0, 10.0)
    assert (run["prompt_tokens"], run["completion_tokens"], run["total_tokens"]) == (300, 60, 360)
    assert run["poll_count"] == 4 and run["polls_unchanged"] == 2  # 3x requires_action, then completed
    assert run["streamed"] is False and run["api_version"] == "v2" and run["terminal"] is True
    assert run["required_action"] is True and run["max_required_action_count"] == 2


def test_streamed_and_failed_and_cancelled_runs():
    con = make_db()
    record(con, "runs_streamed_create_v2", at=T0)
    record(con, "synthetic_runs_retrieve_failed", at=T0 + 1)
    record(con, "runs_cancel_v2", at=T0 + 2)
    record(con, "runs_streamed_create_v1", at=T0 + 3)
    by_id = {r["run_id"]: r for r in rows(con, "SELECT * FROM runs")}
    s = by_id["run_B5f5IVSEP7Sa7tif3hCrtSbo"]
    assert (s["status"], s["streamed"], s["incomplete_reason"], s["total_tokens"], s["poll_count"]) == ("incomplete", True, "max_prompt_tokens", 43, 0)
    assert s["expires_at"] == utc(1714434328)  # first non-null: the terminal event carries null
    assert s["queue_seconds"] == 1.0 and s["run_seconds"] == 3.0
    f = by_id["run_synth2"]
    assert (f["status"], f["last_error_code"], f["failed_at"], f["run_seconds"]) == ("failed", "rate_limit_exceeded", utc(1714433710), 8.0)
    c = by_id["run_e7bGDaCl3StbnlUIIitEejpy"]
    assert (c["status"], c["cancelled_at"], c["run_seconds"]) == ("cancelling", None, None)
    assert by_id["run_JfK0BhNia1HnH28fIxropXLn"]["api_version"] == "v1"
    steps = rows(con, "SELECT * FROM run_steps WHERE step_id = 'step_csJRFWmiJNLv3ElBrh4wnWlo'")
    assert [(x["status"], x["type"], x["prompt_tokens"], x["completion_tokens"], x["run_id"]) for x in steps] == [
        ("completed", "message_creation", 27, 16, "run_B5f5IVSEP7Sa7tif3hCrtSbo")]
    (msg,) = rows(con, "SELECT * FROM messages WHERE message_id = 'msg_X9MPWjYNmdhcJd8fdiPFxhRR'")
    assert (msg["status"], msg["content_chars"], msg["content"], msg["run_id"]) == ("incomplete", 58, None, "run_B5f5IVSEP7Sa7tif3hCrtSbo")


def test_tool_calls_merge_sources_and_file_search_results():
    con = make_db()
    record(con, "synthetic_runs_retrieve_requires_action", at=T0 + 1)
    record(con, "synthetic_runs_submit_tool_outputs", at=T0 + 2, capture=True)
    record(con, "synthetic_steps_list_tools", at=T0 + 3)
    calls = {r["tool_call_id"]: r for r in rows(con, "SELECT * FROM tool_calls")}
    assert set(calls) == {"call_ci1", "call_fs1", "call_fn1", "call_fn2"}
    fn1 = calls["call_fn1"]
    assert (fn1["type"], fn1["function_name"], fn1["step_id"], fn1["run_id"], fn1["thread_id"]) == (
        "function", "get_weather", "step_fn", "run_synth1", "thread_synth1")
    assert (fn1["required_action"], fn1["output_submitted"], fn1["seen_in_step"], fn1["output"], fn1["output_chars"]) == (
        True, True, True, '{"temp":21}', 11)
    fn2 = calls["call_fn2"]
    assert (fn2["function_name"], fn2["step_id"], fn2["output"], fn2["seen_in_step"]) == ("get_time", None, "12:00", False)
    assert (calls["call_ci1"]["type"], calls["call_ci1"]["code_outputs"]) == ("code_interpreter", 2)
    fs = calls["call_fs1"]
    assert (fs["type"], fs["ranker"], fs["score_threshold"], fs["result_count"]) == ("file_search", "default_2024_08_21", 0.5, 2)
    results = rows(con, "SELECT * FROM file_search_results ORDER BY rank")
    assert [(r["tool_call_id"], r["run_id"], r["rank"], r["file_id"], r["file_name"], r["score"], r["content_chars"]) for r in results] == [
        ("call_fs1", "run_synth1", 1, "file-a", "guide.md", 0.91, len("Ruby blocks \u2014 yield")),
        ("call_fs1", "run_synth1", 2, "file-b", "faq.txt", 0.62, 6),
    ]


def test_replayed_exchanges_are_not_double_counted():
    con = make_db()
    for _ in range(2):  # the journal replays an exchange the store already had
        record(con, "synthetic_runs_retrieve_requires_action", at=T0 + 1)
        record(con, "synthetic_steps_list_tools", at=T0 + 2)
        record(con, "vector_stores_create", at=T0 + 3)
    assert con.execute("SELECT count(*) FROM exchanges").fetchone() == (3,)
    assert rows(con, "SELECT poll_count, snapshot_count FROM runs") == [{"poll_count": 1, "snapshot_count": 1}]
    assert con.execute("SELECT count(*) FROM file_search_results").fetchone() == (2,)
    assert con.execute("SELECT count(*) FROM vector_store_usage").fetchone() == (1,)


def test_exchanges_view():
    con = make_db()
    record(con, "runs_create_v2_error", at=T0)
    record(con, "runs_streamed_create_v2", at=T0 + 1, request_headers=[("x-stainless-lang", "python"), ("x-stainless-package-version", "1.2.3")])
    got = rows(con, "SELECT status_code, error_type, stream, sdk, api_version, route FROM exchanges ORDER BY started_at")
    assert got == [
        {"status_code": 400, "error_type": "invalid_request_error", "stream": False, "sdk": None, "api_version": "v2", "route": "/threads/{thread_id}/runs"},
        {"status_code": 200, "error_type": None, "stream": True, "sdk": "python 1.2.3", "api_version": "v2", "route": "/threads/{thread_id}/runs"},
    ]
    (first,) = rows(con, "SELECT started_at FROM exchanges ORDER BY started_at LIMIT 1")
    assert first["started_at"] == datetime.fromtimestamp(T0, tz=timezone.utc)


def test_vector_stores_growth_and_deletion():
    con = make_db()
    record(con, "vector_stores_create", at=T0)
    grown = exchange("vector_stores_create").response_body.replace(b'"usage_bytes": 0', b'"usage_bytes": 5000').replace(
        b'"total": 0', b'"total": 3')
    record(con, "vector_stores_create", at=T0 + 10, response_body=grown, origin="sampler")
    record(con, "synthetic_vector_store_early_bytes", at=T0 + 20)
    record(con, "vector_stores_delete", at=T0 + 30)
    record(con, "vector_stores_retrieve", at=T0 + 40)
    usage = rows(con, "SELECT vector_store_id, usage_bytes, source FROM vector_store_usage WHERE vector_store_id = 'vs_kWaCiN8Ii4e1hefIou5skq9g' ORDER BY observed_at")
    assert [(u["usage_bytes"], u["source"]) for u in usage] == [(0, "create"), (5000, "sampler")]
    stores = {r["vector_store_id"]: r for r in rows(con, "SELECT * FROM vector_stores")}
    vs = stores["vs_kWaCiN8Ii4e1hefIou5skq9g"]
    assert (vs["usage_bytes"], vs["files_total"], vs["deleted"], vs["status"]) == (5000, 3, False, "completed")
    assert vs["created_at"] == utc(1714495294) and vs["last_seen_at"] == datetime.fromtimestamp(T0 + 10.2, tz=timezone.utc)
    assert (stores["vs_early"]["usage_bytes"], stores["vs_early"]["expires_at"]) == (4096, utc(1713604800))
    assert stores["vs_DBrde7MywMBEdxmzXaeO76Ky"]["deleted"] is True
    assert stores["vs_hpLLcdz2Mvm3bKsGnN4hEsv2"]["deleted"] is False


def test_assistants_threads_messages_files_vector_store_files():
    con = make_db()
    for i, name in enumerate(["assistants_create_v2", "synthetic_assistant_v1_retrieval", "threads_create_v2", "messages_create_v1",
                              "files_upload", "vector_store_files_create", "vector_store_files_list", "vector_store_files_delete",
                              "vector_store_file_batches_create"]):
        record(con, name, at=T0 + i)
    a = {r["assistant_id"]: r for r in rows(con, "SELECT * FROM assistants")}
    assert a["asst_v1retr"]["api_version"] == "v1" and a["asst_v1retr"]["file_ids"] == ["file-v1a", "file-v1b"]
    assert a["asst_YtQVeagEqOFyKfHxKLM7p0s1"]["model"] == "gpt-4"
    assert con.execute("SELECT count(*) FROM threads WHERE thread_id = 'thread_yzrpkZBj4yzm6ljmalTNTiKl' AND NOT deleted").fetchone() == (1,)
    assert rows(con, "SELECT role, content_chars FROM messages") == [{"role": "user", "content_chars": 76}]
    assert rows(con, "SELECT file_id, purpose, bytes FROM files") == [{"file_id": "file-EmSHokq3yMo32RJUyt1wttIj", "purpose": "fine-tune", "bytes": 159}]
    vsf = {(r["vector_store_id"], r["file_id"]): r for r in rows(con, "SELECT * FROM vector_store_files")}
    assert vsf[("vs_8dzN747pTzY2MtyDQoxfwmod", "file-cQkOwz3aospk6aTNL78LAztA")]["deleted"] is True
    assert vsf[("vs_8HxymfYr9b09lsN1tvtMItOe", "file-hN8c8cMN7IhVulUyYHN3AKQW")]["usage_bytes"] == 1036
    assert ("vs_yrC4Y143ue4kRkSxu1VW8ece", "file-0cXHcvZknvN0EVU5JpYm5S0U") in vsf
