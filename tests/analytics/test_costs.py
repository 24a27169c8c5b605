"""Cost views and the report against a scripted workload whose cost was worked out by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from analytics.prices import Prices, install_report_prices
from analytics.report import build_report, render
from tests.analytics import workload as W
from tests.analytics.storebuild import F, connect, fact, write_store


@pytest.fixture
def store(tmp_path):
    return write_store(tmp_path / "audit", W.workload_facts() + W.exchange_facts())


def _con(store, prices=None):
    con = connect(store)
    install_report_prices(con, prices or Prices.load())
    return con


def _scalar(con, sql, *params):
    return con.execute(sql, list(params)).fetchone()[0]


def test_token_costs_per_run_to_the_cent(store):
    con = _con(store)
    rows = dict(con.execute("SELECT run_id, usd FROM run_costs").fetchall())
    assert rows["run_1"] == pytest.approx(1.00, abs=0.005)
    assert rows["run_2"] == pytest.approx(0.35, abs=0.005)
    assert rows["run_3"] == pytest.approx(0.45, abs=0.005)
    assert rows["run_4"] == pytest.approx(0.10, abs=0.005)
    assert rows["run_5"] is None
    by_model = {r[0]: r[1:] for r in con.execute("SELECT model, usd, unpriced_runs FROM cost_by_model").fetchall()}
    assert by_model["gpt-4o"][0] == pytest.approx(W.GPT4O_USD, abs=0.005)
    assert by_model["gpt-4o-mini"][0] == pytest.approx(W.MINI_USD, abs=0.005)
    assert by_model["my-finetune-x"] == (None, 1)
    assert _scalar(con, "SELECT price_source FROM run_costs WHERE run_id = 'run_5'") == "unpriced"


def test_code_interpreter_sessions_per_thread_and_hour(store):
    con = _con(store)
    sessions = con.execute(
        "SELECT thread_id, calls, usd FROM code_interpreter_sessions ORDER BY thread_id").fetchall()
    assert sessions == [("thread_1", 2, 0.03), ("thread_2", 1, 0.03)]
    assert _scalar(con, "SELECT sum(usd) FROM costs WHERE kind = 'code_interpreter_session'") == pytest.approx(W.CI_USD)


def test_vector_store_storage_time_weighted_with_org_free_gib(store):
    con = _con(store)
    daily = con.execute("""
        SELECT vector_store_id, CAST(day AS VARCHAR), gib_days, org_billable_gib_days, usd
        FROM vector_store_storage_daily ORDER BY day, vector_store_id""").fetchall()
    assert [(r[0], r[1]) for r in daily] == [("vs_1", "2025-03-10"), ("vs_2", "2025-03-10"), ("vs_1", "2025-03-11")]
    assert daily[0][2] == pytest.approx(2.5)
    assert daily[1][2] == pytest.approx(0.25)
    assert daily[2][2] == pytest.approx(1.5)  # stops at the deletion (T+36h)
    assert daily[0][3] == pytest.approx(1.75)
    assert daily[2][3] == pytest.approx(1.0)
    assert daily[1][4] == pytest.approx(W.VS2_USD)
    assert daily[0][4] + daily[2][4] == pytest.approx(W.VS1_USD)
    by_day = dict(con.execute(
        "SELECT CAST(day AS VARCHAR), usd FROM cost_by_day WHERE kind = 'vector_store_storage'").fetchall())
    assert by_day == {"2025-03-10": pytest.approx(W.STORAGE_DAY1_USD), "2025-03-11": pytest.approx(W.STORAGE_DAY2_USD)}


def test_retrieval_storage_per_assistant_day(store):
    con = _con(store)
    rows = con.execute("SELECT assistant_id, gib_days, usd FROM retrieval_storage_daily").fetchall()
    assert rows == [("asst_v1", pytest.approx(2.0), pytest.approx(W.RETRIEVAL_USD))]


def test_report_json_matches_hand_computed_costs(store):
    con = _con(store)
    report = json.loads(render(build_report(con, None, None, idle_days=30), "json"))
    assert not report["empty"]
    kinds = {r["kind"]: r for r in report["spend_by_kind"]}
    assert round(kinds["tokens"]["usd"], 2) == round(W.TOKENS_USD, 2)
    assert round(kinds["code_interpreter_session"]["usd"], 2) == round(W.CI_USD, 2)
    assert kinds["code_interpreter_session"]["items"] == W.CI_SESSIONS
    assert round(kinds["vector_store_storage"]["usd"], 3) == round(W.STORAGE_USD, 3)
    assert round(kinds["retrieval_storage"]["usd"], 2) == round(W.RETRIEVAL_USD, 2)
    assert report["total_usd"] == pytest.approx(W.TOTAL_USD, abs=0.005)  # to the cent
    assert [m["model"] for m in report["unpriced_models"]] == ["my-finetune-x"]
    assert report["top_models"][0]["model"] == "gpt-4o"
    assert round(report["top_models"][0]["usd"], 2) == W.GPT4O_USD
    assert report["top_assistants"][0]["assistant_id"] == "asst_1"
    assert report["top_assistants"][0]["name"] == "helper"
    assert round(report["top_assistants"][0]["usd"], 2) == round(W.GPT4O_USD + W.CI_USD, 2)
    stores = {s["vector_store_id"]: s for s in report["top_vector_stores"]}
    assert round(stores["vs_1"]["usd"], 4) == round(W.VS1_USD, 4)
    assert stores["vs_1"]["projected_30d_usd"] == 0  # deleted: no future cost
    assert report["failures"] == [
        {"status": "failed", "code": "server_error", "runs": 1, "tokens": 40_000, "usd": pytest.approx(W.FAILED_USD)}
    ]
    v1 = report["v1_traffic"]
    assert {(r["key_fingerprint"], r["sdk"], r["api_version"]) for r in v1} == {
        (W.KEY_B, "python 1.3.0", "v1"), (W.KEY_A, "node 4.50.0", "v2")}
    assert sum(r["exchanges"] for r in v1) == 3  # the sampler's own v1 call is not client traffic


def test_report_window_filters_by_time(store):
    con = _con(store)
    day2 = build_report(con, datetime(2025, 3, 11, tzinfo=UTC), datetime(2025, 3, 12, tzinfo=UTC), 30)
    kinds = {r["kind"]: r["usd"] for r in day2["spend_by_kind"]}
    assert kinds == {"tokens": 0, "code_interpreter_session": 0,
                     "vector_store_storage": pytest.approx(W.STORAGE_DAY2_USD), "retrieval_storage": 0}


def test_price_override_file_changes_the_figures(store, tmp_path):
    override = tmp_path / "prices.yaml"
    override.write_text(
        "models:\n"
        "  gpt-4o: {input_usd_per_mtok: 5, output_usd_per_mtok: 20}\n"
        "  my-finetune-x: {input_usd_per_mtok: 1000, output_usd_per_mtok: 1000}\n"
        "storage_usd_per_gib_day: 0.2\n"
        "free_storage_gib: 0\n"
        "code_interpreter_usd_per_session: 0.05\n"
    )
    con = _con(store, Prices.load(override))
    report = build_report(con, None, None, 30)
    kinds = {r["kind"]: r["usd"] for r in report["spend_by_kind"]}
    # gpt-4o doubles (1.45 -> 2.90), mini unchanged 0.45, finetune 2,000 tokens * $1000/M = 2.00
    assert round(kinds["tokens"], 2) == round(2.90 + 0.45 + 2.00, 2)
    assert round(kinds["code_interpreter_session"], 2) == 0.10
    # no free GiB: all GiB-days billed: day 1 2.75, day 2 1.5 -> 4.25 * 0.2
    assert round(kinds["vector_store_storage"], 3) == round(4.25 * 0.2, 3)
    assert report["unpriced_models"] == []


def test_price_in_force_at_the_runs_time(tmp_path):
    # o3 went from $10 to $2 per million input tokens on 2025-06-10 (genai-prices history)
    before = datetime(2025, 6, 1, tzinfo=UTC)
    after = datetime(2025, 6, 20, tzinfo=UTC)
    facts = [
        fact(F.RunSnapshot, exchange_id=f"e{i}", observed_at=at, source="create", run_id=f"run_{i}", model="o3",
             status="completed", created_at=at, prompt_tokens=1_000_000, completion_tokens=0, total_tokens=1_000_000)
        for i, at in enumerate((before, after))
    ]
    con = _con(write_store(tmp_path / "audit", facts))
    assert dict(con.execute("SELECT run_id, usd FROM run_costs").fetchall()) == {"run_0": 10.0, "run_1": 2.0}
    prices = Prices.load()
    assert prices.token_cost("o3", 1_000_000, 0, before)[0] == 10.0
    assert prices.token_cost("o3", 1_000_000, 0, after)[0] == 2.0
    assert prices.token_cost("never-heard-of-it", 10, 10, after) == (None, "unpriced")


def test_idle_live_store_reported_with_monthly_cost(tmp_path):
    now = datetime.now(UTC)
    old = now - timedelta(days=40)
    facts = [
        fact(F.VectorStoreObservation, exchange_id="x1", observed_at=old, source="create", vector_store_id="vs_idle",
             name="forgotten", status="completed", usage_bytes=2 * W.GIB, created_at=old, last_active_at=old),
        fact(F.VectorStoreObservation, exchange_id="x2", observed_at=now - timedelta(days=1), source="list",
             vector_store_id="vs_idle", name="forgotten", status="completed", usage_bytes=2 * W.GIB,
             created_at=old, last_active_at=old),
    ]
    con = _con(write_store(tmp_path / "audit", facts))
    report = build_report(con, None, None, idle_days=30)
    (idle,) = report["idle_vector_stores"]
    assert idle["vector_store_id"] == "vs_idle" and idle["idle_days"] >= 39
    # only live store: 2 GiB, 1 GiB free -> $0.10 a day -> $3.00 for 30 days
    assert round(idle["monthly_usd"], 2) == 3.00
    assert round(report["top_vector_stores"][0]["projected_30d_usd"], 2) == 3.00
    assert build_report(con, None, None, idle_days=60)["idle_vector_stores"] == []


def test_report_fold_of_runs_equals_the_runs_view(tmp_path):
    from analytics.report import REPORT_RUNS_COLUMNS, REPORT_RUNS_SQL

    facts = W.workload_facts()
    # a streamed run: several events of one exchange share observed_at and differ by seq
    at = W.T + 2 * W.H
    for seq, status in enumerate(["queued", "in_progress", "completed"]):
        facts.append(fact(F.RunSnapshot, exchange_id="ex_stream", seq=seq, observed_at=at, source="stream",
                          run_id="run_streamed", model="gpt-4o", status=status, created_at=at, streamed=True,
                          prompt_tokens=10 if status == "completed" else None,
                          completion_tokens=5 if status == "completed" else None,
                          total_tokens=15 if status == "completed" else None, key_fingerprint=W.KEY_A))
    # polls, one replayed twice, and a late poll that must not move the finished run back
    for i, status in enumerate(["in_progress", "in_progress", "completed", "in_progress"]):
        facts.append(fact(F.RunSnapshot, exchange_id=f"ex_poll_{i}", observed_at=W.T + i * W.H / 60,
                          source="retrieve", run_id="run_polled", model="gpt-4o-mini", status=status,
                          created_at=W.T, api_version="v1" if i == 0 else "v2"))
    facts.append(facts[-2])
    con = connect(write_store(tmp_path / "audit", facts))
    cols = ", ".join(f"CAST({c} AS VARCHAR)" for c in REPORT_RUNS_COLUMNS)  # TIMESTAMPTZ -> text
    view = con.execute(f"SELECT {cols} FROM runs ORDER BY run_id").fetchall()
    con.execute(REPORT_RUNS_SQL)
    lean = con.execute(f"SELECT {cols} FROM temp.runs ORDER BY run_id").fetchall()
    assert lean == view
    assert dict((r[0], r[4]) for r in lean)["run_polled"] == "completed"


def test_override_aliases_and_price_history(tmp_path):
    override = tmp_path / "prices.json"
    override.write_text(json.dumps({"models": {
        "my-deployment": "gpt-4o-mini",
        "my-finetune-x": [
            {"effective_from": "2025-01-01", "input_usd_per_mtok": 3, "output_usd_per_mtok": 12},
            {"effective_from": "2025-03-10", "input_usd_per_mtok": 2, "output_usd_per_mtok": 8},
        ],
    }}))
    prices = Prices.load(override)
    at = datetime(2025, 3, 9, tzinfo=UTC)
    assert prices.token_cost("my-deployment", 1_000_000, 1_000_000, at)[0] == pytest.approx(0.75)
    assert "alias of gpt-4o-mini" in prices.token_cost("my-deployment", 1, 1, at)[1]
    assert prices.token_cost("my-finetune-x", 1_000_000, 0, at)[0] == 3.0
    assert prices.token_cost("my-finetune-x", 1_000_000, 0, at + timedelta(days=1))[0] == 2.0
    assert prices.token_cost("my-finetune-x", 1_000_000, 0, datetime(2024, 12, 31, tzinfo=UTC)) == (None, "unpriced")


def test_cost_by_key_attributes_every_kind_including_v1_retrieval(store):
    con = _con(store)
    rows = {(r[0], r[1]): r[2:] for r in con.execute(
        "SELECT key_fingerprint, kind, items, usd, unpriced_items FROM cost_by_key").fetchall()}
    assert rows == {
        (W.KEY_A, "tokens"): (4, pytest.approx(W.KEY_A_TOKENS_USD), 1),  # run_5 is unpriced
        (W.KEY_B, "tokens"): (1, pytest.approx(W.KEY_B_TOKENS_USD), 0),
        (W.KEY_A, "code_interpreter_session"): (W.CI_SESSIONS, pytest.approx(W.CI_USD), 0),
        (W.KEY_A, "vector_store_storage"): (3, pytest.approx(W.STORAGE_USD), 0),
        # the v1 assistant's retrieval files are billed to the key it was seen with, not to NULL
        (W.KEY_B, "retrieval_storage"): (1, pytest.approx(W.RETRIEVAL_USD), 0),
    }
    assert _scalar(con, "SELECT sum(usd) FROM cost_by_key") == pytest.approx(W.TOTAL_USD)


def test_cost_by_assistant_splits_tokens_sessions_and_retrieval(store):
    con = _con(store)
    rows = {r[0]: r[1:] for r in con.execute("""
        SELECT assistant_id, name, runs, token_usd, code_interpreter_usd, retrieval_usd, usd, unpriced_items
        FROM cost_by_assistant""").fetchall()}
    approx = pytest.approx
    assert rows == {
        "asst_1": ("helper", 3, approx(W.GPT4O_USD), approx(W.CI_USD), None, approx(W.GPT4O_USD + W.CI_USD), 0),
        "asst_2": (None, 2, approx(W.MINI_USD), None, None, approx(W.MINI_USD), 1),  # run_5 unpriced
        "asst_v1": ("legacy", 0, None, None, approx(W.RETRIEVAL_USD), approx(W.RETRIEVAL_USD), 0),
    }


def test_api_version_usage_by_key_and_sdk_client_traffic_only(store):
    con = _con(store)
    rows = con.execute("""
        SELECT api_version, beta_header, key_fingerprint, sdk, sdk_lang, sdk_version, exchanges,
               v1_semantics_exchanges, epoch(first_seen), epoch(last_seen)
        FROM api_version_usage ORDER BY api_version, key_fingerprint, sdk""").fetchall()
    assert [r[:8] for r in rows] == [
        ("absent", None, W.KEY_A, "python 1.40.0", "python", "1.40.0", 1, 0),
        ("v1", "assistants=v1", W.KEY_B, "python 1.3.0", "python", "1.3.0", 2, 0),
        ("v2", "assistants=v2", W.KEY_A, "node 4.50.0", "node", "4.50.0", 1, 1),
        ("v2", "assistants=v2", W.KEY_A, "python 1.40.0", "python", "1.40.0", 1, 0),
    ]
    assert rows[1][8:] == ((W.T + W.H).timestamp(), (W.T + 2 * W.H).timestamp())


IMPOSSIBLE_USAGE = {
    "negative": {"prompt_tokens": -1_000_000, "completion_tokens": 5, "total_tokens": -999_995},
    "too_large": {"prompt_tokens": 2**63 - 1, "completion_tokens": 0, "total_tokens": 2**63 - 1},
    "malformed": {"prompt_tokens": 12.5, "completion_tokens": "3", "total_tokens": True},
    "inconsistent": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 10**6},
}


def test_impossible_usage_is_kept_as_a_run_never_priced_and_counted(tmp_path):
    """Runs whose upstream reported impossible usage, through the real parser, store views and
    metrics sink: the run rows stay, no cost is negative or astronomic, and each is counted."""
    from prometheus_client import CollectorRegistry

    from proxy.assistants.parse import parse
    from proxy.config import Settings
    from proxy.sinks.metrics import MetricsSink
    from tests.recording.recorded import exchange, load

    template = json.loads(load("synthetic_runs_retrieve_completed")["response_body"])
    usages = {**IMPOSSIBLE_USAGE, "sane": {"prompt_tokens": 1_000_000, "completion_tokens": 0, "total_tokens": 1_000_000}}
    facts = []
    for reason, usage in usages.items():
        body = {**template, "id": f"run_{reason}", "usage": usage}
        facts += parse(exchange("synthetic_runs_retrieve_completed", exchange_id=f"ex_{reason}",
                                response_body=json.dumps(body).encode()), capture_content=False)
    prices = Prices.load()
    registry = CollectorRegistry()
    sink = MetricsSink(registry, Settings(), prices=prices)
    for reason in usages:
        mine = [f for f in facts if getattr(f, "exchange_id", None) == f"ex_{reason}"]
        sink.on_exchange(exchange("synthetic_runs_retrieve_completed", exchange_id=f"ex_{reason}"), mine)

    con = _con(write_store(tmp_path / "audit", facts), prices)
    runs = dict(con.execute("SELECT run_id, usage_invalid FROM runs").fetchall())
    assert runs == {f"run_{r}": (None if r == "sane" else r) for r in usages}
    priced = dict(con.execute("SELECT run_id, usd FROM run_costs").fetchall())
    assert priced == {"run_sane": pytest.approx(2.50)}  # gpt-4o input: $2.50 per million
    costs = con.execute("SELECT min(usd), max(usd), sum(usd), count(*) FROM costs WHERE kind = 'tokens'").fetchone()
    assert costs == (pytest.approx(2.50), pytest.approx(2.50), pytest.approx(2.50), 1)
    report = build_report(con, None, None, idle_days=30)
    assert report["total_usd"] == pytest.approx(2.50)

    get = registry.get_sample_value
    for reason in IMPOSSIBLE_USAGE:
        assert get("assistants_audit_invalid_usage_total", {"object": "run", "reason": reason}) == 1
    cost = {s.labels["kind"]: s.value for m in registry.collect() for s in m.samples
            if s.name == "assistants_audit_cost_usd_total"}
    assert cost == {"tokens": pytest.approx(2.50)}
    tokens = sum(s.value for m in registry.collect() for s in m.samples if s.name == "assistants_audit_tokens_total")
    assert tokens == 1_000_000
