"""Costs of the Responses API and the migration views against store facts whose cost was worked
out by hand: tokens with cached input and reasoning, per-call tool fees, container sessions, the
`api` column of the cost views, impossible usage never priced, and `--prices` overrides.

Day = 2026-07-06 (a Monday, UTC). Prices in force then: gpt-4o $2.50 / $1.25 cached / $10 per
million input / cached input / output tokens, o4-mini $1.10 / $0.275 / $4.40 (genai-prices,
flat); file_search $2.50 and web_search $10 per 1k calls; a 1 GB container $0.03 per 20-minute
session (analytics/data/prices.json).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.prices import Prices, install_report_prices
from analytics.report import build_migration_report, build_report, render, MIGRATION_REPORT
from analytics.store import StoreError
from proxy.responses import facts as R
from tests.analytics.storebuild import F, connect, fact, write_store

T = datetime(2026, 7, 6, 9, tzinfo=UTC)
M = timedelta(minutes=1)
OLD, NEW, FOUNDRY = "kfp_old", "kfp_new", "kfp_foundry"
SDK = "python 2.1.0"

# response   model     input      cached     output    reasoning  usd
# resp_1     gpt-4o    1,000,000  400,000    100,000   0          600k*2.5 + 400k*1.25 + 100k*10 = 1.50+0.50+1.00 = 3.00
# resp_2     o4-mini   100,000    0          200,000   150,000    0.11 + 0.88 = 0.99
# resp_3     my-own    1,000      0          1,000     0          unpriced
# resp_bad   gpt-4o    usage refused (too_large): no token cost
RESP_1_USD, RESP_2_USD = 3.00, 0.99
# tool calls: file_search x3 (resp_1 x2, resp_2), web_search x2 (resp_2, resp_bad), so 3*0.0025 + 2*0.01
FILE_SEARCH_USD, WEB_SEARCH_USD = 3 * 0.0025, 2 * 0.01
# containers: cntr_a called at T, T+10m, T+25m -> 2 sessions (the third call is 25 min after the
# session opened at T); cntr_b at T -> 1 session: 3 * 0.03
CONTAINER_SESSIONS, CONTAINER_USD = 3, 3 * 0.03
# runs: run_v1 (v1, gpt-4o, 100k prompt + 10k completion = 0.35), run_v2 (v2, gpt-4o, same = 0.35),
# run_foundry (seen through an Azure AI Foundry project, same = 0.35)
RUN_USD = 0.35


def _exchange(n: int, api: str, key: str, *, api_version: str | None = None, provider: str = "openai",
              operation: str = "responses.create", at: datetime = T) -> object:
    return fact(F.ExchangeFact, exchange_id=f"ex_{n}", observed_at=at, worker="w0", origin="client", started_at=at,
                duration_ms=5.0, proxy_overhead_ms=0.1, method="POST", path="/v1/x", route="/x", operation=operation,
                provider=provider, status_code=200, api_version=api_version, v1_semantics=False, stream=False,
                bytes_in=0, bytes_out=1, body_truncated=False, sdk=SDK, sdk_lang="python", sdk_version="2.1.0",
                key_fingerprint=key, api=api)


def _response(rid: str, model: str, n: int, *, inp: int | None, cached: int | None = 0, out: int | None,
              reasoning: int | None = 0, invalid: str | None = None, key: str = NEW, at: datetime = T) -> object:
    total = None if inp is None or out is None else inp + out
    return fact(R.ResponseSnapshot, exchange_id=f"ex_{n}", observed_at=at, source="create", response_id=rid,
                model=model, status="completed", created_at=at, completed_at=at, input_tokens=inp,
                cached_input_tokens=cached, output_tokens=out, reasoning_tokens=reasoning, total_tokens=total,
                usage_invalid=invalid, key_fingerprint=key, sdk=SDK, provider="openai", api_version="v1")


def _call(n: int, rid: str, kind: str, call_id: str, **extra: object) -> object:
    return fact(R.ResponseToolCallFact, exchange_id=f"ex_{n}", observed_at=extra.pop("at", T), source="output",
                response_id=rid, call_id=call_id, item_id=call_id, item_type=f"{kind}_call", type=kind,
                status="completed", **extra)


def _run(n: int, run_id: str, api_version: str, key: str, *, assistant: str, thread: str) -> object:
    return fact(F.RunSnapshot, exchange_id=f"ex_{n}", observed_at=T, source="retrieve", run_id=run_id,
                thread_id=thread, assistant_id=assistant, model="gpt-4o", status="completed", api_version=api_version,
                created_at=T, prompt_tokens=100_000, completion_tokens=10_000, total_tokens=110_000,
                key_fingerprint=key)


def mixed_facts() -> list[object]:
    facts: list[object] = [
        # responses: one exchange each, plus the containers' later calls on responses of their own
        _exchange(1, "responses", NEW), _response("resp_1", "gpt-4o", 1, inp=1_000_000, cached=400_000, out=100_000),
        _exchange(2, "responses", NEW), _response("resp_2", "o4-mini", 2, inp=100_000, out=200_000, reasoning=150_000),
        _exchange(3, "responses", NEW), _response("resp_3", "my-own", 3, inp=1_000, out=1_000),
        _exchange(4, "responses", NEW), _response("resp_bad", "gpt-4o", 4, inp=None, cached=None, out=None,
                                                  reasoning=None, invalid="too_large"),
        _exchange(5, "responses", NEW), _response("resp_c2", "gpt-4o", 5, inp=None, cached=None, out=None,
                                                  reasoning=None, at=T + 10 * M),
        _exchange(6, "responses", NEW), _response("resp_c3", "gpt-4o", 6, inp=None, cached=None, out=None,
                                                  reasoning=None, at=T + 25 * M),
        _call(1, "resp_1", "file_search", "fs_1", vector_store_ids=("vs_shared",)),
        _call(1, "resp_1", "file_search", "fs_2", seq=1, vector_store_ids=("vs_shared",)),
        _call(2, "resp_2", "file_search", "fs_3", vector_store_ids=("vs_new",)),
        _call(2, "resp_2", "web_search", "ws_1", seq=1),
        _call(4, "resp_bad", "web_search", "ws_2"),
        _call(1, "resp_1", "code_interpreter", "ci_1", seq=2, container_id="cntr_a"),
        _call(5, "resp_c2", "code_interpreter", "ci_2", container_id="cntr_a", at=T + 10 * M),
        _call(6, "resp_c3", "code_interpreter", "ci_3", container_id="cntr_a", at=T + 25 * M),
        _call(2, "resp_2", "code_interpreter", "ci_4", seq=2, container_id="cntr_b"),
        _call(1, "resp_1", "function", "call_fn", seq=3, name="get_weather"),
        # Assistants: a v1 run, a v2 run, a run through a Foundry project
        _exchange(10, "assistants", OLD, api_version="v1", operation="runs.retrieve"),
        _run(10, "run_v1", "v1", OLD, assistant="asst_v1", thread="thread_v1"),
        _exchange(11, "assistants", OLD, api_version="v2", operation="runs.retrieve"),
        _run(11, "run_v2", "v2", OLD, assistant="asst_v2", thread="thread_v2"),
        _exchange(12, "assistants", FOUNDRY, api_version="v2", provider="azure.ai.agents", operation="runs.retrieve"),
        _run(12, "run_foundry", "v2", FOUNDRY, assistant="asst_foundry", thread="thread_foundry"),
        _exchange(13, "assistants", OLD, operation="vector_stores.create"),
        fact(F.AssistantObservation, exchange_id="ex_10", observed_at=T, assistant_id="asst_v1", name="legacy",
             model="gpt-4o", api_version="v1", tools=("retrieval", "code_interpreter"), file_ids=("file_1", "file_2"),
             key_fingerprint=OLD),
        fact(F.AssistantObservation, exchange_id="ex_11", observed_at=T, assistant_id="asst_v2", name="helper",
             model="gpt-4o", api_version="v2", tools=("file_search", "function", "function"),
             vector_store_ids=("vs_shared",), key_fingerprint=OLD),
        fact(F.AssistantObservation, exchange_id="ex_12", observed_at=T, assistant_id="asst_foundry", name="agent",
             model="gpt-4o", api_version="v2", tools=(), key_fingerprint=FOUNDRY),
        fact(F.ThreadObservation, exchange_id="ex_11", observed_at=T, thread_id="thread_v2",
             vector_store_ids=("vs_thread",), code_interpreter_file_ids=(), deleted=False, key_fingerprint=OLD),
    ]
    for vs in ("vs_shared", "vs_new", "vs_thread"):
        facts.append(fact(F.VectorStoreObservation, exchange_id=f"ex_{vs}", observed_at=T, source="create",
                          vector_store_id=vs, name=vs, status="completed", usage_bytes=1000, created_at=T,
                          key_fingerprint=OLD))
    return facts


@pytest.fixture
def con(tmp_path):
    con = connect(write_store(tmp_path / "audit", mixed_facts()))
    install_report_prices(con, Prices.load())
    return con


def _scalar(con, sql, *params):
    return con.execute(sql, list(params)).fetchone()[0]


def test_token_cost_per_response_prices_cached_input_as_cached_and_reasoning_as_output(con):
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT response_id, usd, cached_input_tokens, reasoning_tokens, price_source FROM response_costs").fetchall()}
    assert set(rows) == {"resp_1", "resp_2", "resp_3"}  # refused usage and no usage: no token row
    assert rows["resp_1"][:2] == (pytest.approx(RESP_1_USD), 400_000)
    assert rows["resp_2"][0] == pytest.approx(RESP_2_USD) and rows["resp_2"][2] == 150_000
    assert rows["resp_3"][0] is None and rows["resp_3"][3] == "unpriced"


def test_tool_fees_and_container_sessions(con):
    fees = dict(con.execute("SELECT kind, sum(usd) FROM costs WHERE kind LIKE '%_call' GROUP BY kind").fetchall())
    assert fees == {"file_search_call": pytest.approx(FILE_SEARCH_USD), "web_search_call": pytest.approx(WEB_SEARCH_USD)}
    sessions = con.execute("SELECT container_id, session_no, calls, response_id, usd FROM response_container_sessions "
                           "ORDER BY container_id, session_no").fetchall()
    assert sessions == [("cntr_a", 1, 2, "resp_1", 0.03), ("cntr_a", 2, 1, "resp_c3", 0.03),
                        ("cntr_b", 1, 1, "resp_2", 0.03)]
    assert _scalar(con, "SELECT count(*) FROM costs WHERE kind = 'code_interpreter_container'") == CONTAINER_SESSIONS
    # the function call costs nothing of its own; refused usage costs nothing, its web search is still a call
    assert _scalar(con, "SELECT count(*) FROM costs WHERE response_id = 'resp_bad'") == 1
    assert _scalar(con, "SELECT kind FROM costs WHERE response_id = 'resp_bad'") == "web_search_call"


def test_api_column_and_the_cost_by_views_cover_both_apis(con):
    by_api = dict(con.execute("SELECT api, sum(usd) FROM costs GROUP BY api").fetchall())
    responses_usd = RESP_1_USD + RESP_2_USD + FILE_SEARCH_USD + WEB_SEARCH_USD + CONTAINER_USD
    assert by_api == {"responses": pytest.approx(responses_usd), "assistants_v1": pytest.approx(RUN_USD),
                      "assistants_v2": pytest.approx(RUN_USD), "foundry_agents": pytest.approx(RUN_USD),
                      "shared": 0}  # 3 KB: under the free GiB
    total = _scalar(con, "SELECT sum(usd) FROM costs")
    for view in ("cost_by_day", "cost_by_key"):
        assert _scalar(con, f"SELECT sum(usd) FROM {view}") == pytest.approx(total)
        assert dict(con.execute(f"SELECT api, sum(usd) FROM {view} GROUP BY api").fetchall()) == pytest.approx(by_api)
    keys = {(r[0], r[1], r[2]): r[3:] for r in con.execute(
        "SELECT key_fingerprint, kind, api, items, usd FROM cost_by_key").fetchall()}
    assert keys[(NEW, "tokens", "responses")] == (3, pytest.approx(RESP_1_USD + RESP_2_USD))
    assert keys[(FOUNDRY, "tokens", "foundry_agents")] == (1, pytest.approx(RUN_USD))
    models = {(r[0], r[1]): r[2:] for r in con.execute(
        "SELECT api, model, runs, responses, usd, unpriced_responses, cached_input_tokens, reasoning_tokens "
        "FROM cost_by_model").fetchall()}
    assert models[("responses", "gpt-4o")] == (0, 1, pytest.approx(RESP_1_USD), 0, 400_000, 0)
    assert models[("responses", "o4-mini")] == (0, 1, pytest.approx(RESP_2_USD), 0, 0, 150_000)
    assert models[("responses", "my-own")] == (0, 1, None, 1, 0, 0)
    assert {k: v[:3] for k, v in models.items() if k[0] != "responses"} == {
        (api, "gpt-4o"): (1, 0, pytest.approx(RUN_USD)) for api in ("assistants_v1", "assistants_v2", "foundry_agents")}
    assert _scalar(con, "SELECT sum(usd) FROM cost_by_model") == pytest.approx(
        RESP_1_USD + RESP_2_USD + 3 * RUN_USD)  # tokens only


def test_report_spend_by_kind_and_api(con):
    report = build_report(con, None, None, 30)
    kinds = {r["kind"]: r for r in report["spend_by_kind"]}
    assert kinds["file_search_call"]["items"] == 3 and kinds["web_search_call"]["items"] == 2
    assert kinds["code_interpreter_container"]["usd"] == pytest.approx(CONTAINER_USD)
    assert {r["api"]: r["usd"] for r in report["spend_by_api"]}["foundry_agents"] == pytest.approx(RUN_USD)
    assert report["total_usd"] == pytest.approx(_scalar(con, "SELECT sum(usd) FROM costs"), abs=1e-6)
    assert [(m["model"], m["runs"], m["responses"]) for m in report["unpriced_models"]] == [("my-own", 0, 1)]
    assert "1 response(s) on unpriced models" in render(report, "markdown")


def test_tool_fee_overrides(tmp_path):
    override = tmp_path / "prices.yaml"
    override.write_text("file_search_usd_per_call: 0.1\n"
                        "web_search_call: {usd: 0.025, unit: call, source: 'preview, non-reasoning models'}\n"
                        "code_interpreter_usd_per_container_session: 0.12\n")
    con = connect(write_store(tmp_path / "audit", mixed_facts()))
    install_report_prices(con, Prices.load(override))
    fees = dict(con.execute("SELECT kind, sum(usd) FROM costs WHERE api = 'responses' AND kind <> 'tokens' "
                            "GROUP BY kind").fetchall())
    assert fees == {"file_search_call": pytest.approx(0.3), "web_search_call": pytest.approx(0.05),
                    "code_interpreter_container": pytest.approx(0.36)}
    assert _scalar(con, "SELECT DISTINCT price_source FROM costs WHERE kind = 'web_search_call'") == \
        "preview, non-reasoning models"


def test_migration_views(con):
    weekly = {(r[0], r[1], r[2]): r[3:] for r in con.execute(  # summed over the SDKs (storage has none)
        "SELECT iso_week, key_fingerprint, api, sum(calls), sum(tokens), sum(usd) FROM migration_weekly "
        "GROUP BY ALL").fetchall()}
    assert weekly[("2026-W28", NEW, "responses")] == (
        6, 1_100_000 + 300_000 + 2_000, pytest.approx(RESP_1_USD + RESP_2_USD + FILE_SEARCH_USD + WEB_SEARCH_USD
                                                      + CONTAINER_USD))
    assert weekly[("2026-W28", OLD, "assistants_v1")] == (1, 110_000, pytest.approx(RUN_USD))
    assert weekly[("2026-W28", OLD, "assistants_v2")] == (1, 110_000, pytest.approx(RUN_USD))
    assert weekly[("2026-W28", OLD, "shared")] == (1, 0, 0)  # the vector store call
    assert weekly[("2026-W28", FOUNDRY, "foundry_agents")] == (1, 110_000, pytest.approx(RUN_USD))
    assert _scalar(con, "SELECT DISTINCT sdk FROM migration_weekly WHERE api <> 'shared'") == SDK

    tools = {(r[0], r[1]): r[2:] for r in con.execute(
        "SELECT assistant_id, tool, api, responses_tool, responses_tool_json FROM migration_assistants").fetchall()}
    assert tools[("asst_v1", "retrieval")][:2] == ("assistants_v1", "file_search")
    assert tools[("asst_v1", "code_interpreter")][1:] == (
        "code_interpreter", '{"type":"code_interpreter","container":{"type":"auto","file_ids":["file_1","file_2"]}}')
    assert tools[("asst_v2", "file_search")][1:] == ("file_search", '{"type":"file_search","vector_store_ids":["vs_shared"]}')
    assert tools[("asst_v2", "function")][1:] == ("function", None)
    assert tools[("asst_foundry", None)] == ("foundry_agents", None, None)
    assert len(tools) == 5

    stores = {r[0]: r[1:] for r in con.execute(
        "SELECT vector_store_id, used_by, assistants, threads, runs, responses, file_search_calls "
        "FROM migration_vector_stores").fetchall()}
    assert stores == {"vs_shared": ("both", 1, 0, 1, 1, 2), "vs_new": ("responses", 0, 0, 0, 1, 1),
                      "vs_thread": ("assistants", 0, 1, 1, 0, 0)}
    # a store only the Responses API reads is in use, not idle
    assert _scalar(con, "SELECT last_used_at FROM vector_store_activity WHERE vector_store_id = 'vs_new'") == T


def test_migration_report(con):
    report = build_migration_report(con, None, None)
    assert report["responses_calls"] == 6 and report["model_api_calls"] == 9
    assert report["responses_share"] == pytest.approx(6 / 9, abs=1e-4)
    assert [r["api"] for r in report["by_api"]] == ["assistants_v1", "assistants_v2", "responses", "foundry_agents",
                                                    "shared"]
    by_key = {r["key_fingerprint"]: r for r in report["by_key"]}
    assert (by_key[NEW]["responses_share"], by_key[OLD]["responses_share"]) == (1.0, 0.0)
    assert report["assistants_still_called"] == 3 and report["vector_stores_both_sides"] == 1
    assert report["vector_stores"][0]["vector_store_id"] == "vs_shared"
    text = render(report, "table", MIGRATION_REPORT)
    assert "67% of model API calls on the Responses API (6 of 9)" in text and "code_interpreter" in text
    empty = build_migration_report(con, datetime(2030, 1, 1, tzinfo=UTC), None)
    assert empty["weekly"] == [] and empty["responses_share"] is None


def test_migration_report_refuses_a_store_without_traffic(tmp_path):
    con = connect(write_store(tmp_path / "audit", []))
    install_report_prices(con, Prices.load())
    with pytest.raises(StoreError, match="no Assistants, Responses or Foundry agents traffic"):
        build_migration_report(con, None, None)
