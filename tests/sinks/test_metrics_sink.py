"""MetricsSink fed with hand-built facts: every value checked against the facts that produced it."""

from __future__ import annotations


import pytest
from prometheus_client import CollectorRegistry

from proxy.config import Settings
from proxy.sinks.metrics import GIB, MetricsSink, series_count
from tests.sinks import factories as f


class FakePrices:
    """Deterministic prices: $1 per million input tokens, $4 per million output tokens."""

    storage_usd_per_gib_day = 0.10
    free_storage_gib = 1.0
    code_interpreter_usd_per_session = 0.03
    code_interpreter_session_seconds = 3600.0

    def token_cost(self, model, input_tokens, output_tokens, at):
        if model != "gpt-4o":
            return None, "unpriced"
        return (input_tokens * 1 + output_tokens * 4) / 1e6, "test"


def settings(**kw):
    return Settings(vector_store_gauge_limit=3, **kw)


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def sink(registry):
    return MetricsSink(registry, settings(), prices=FakePrices(), clock=lambda: f.T0 + 1000)


def test_exchange_metrics(sink, registry):
    ex = f.exchange(duration=0.3, ttfb_s=0.1, proxy_overhead_s=0.002, status=200)
    sink.on_exchange(ex, [f.exchange_fact(ex, operation="runs.retrieve", sdk_lang="python", sdk_version="1.99.0")])
    ex2 = f.exchange(status=429, duration=0.05, extra={"upstream_s": "0.04"})
    sink.on_exchange(ex2, [f.exchange_fact(ex2, operation="runs.retrieve")])
    labels = {"operation": "runs.retrieve", "status_class": "2xx", "api_version": "v2"}
    assert registry.get_sample_value("assistants_audit_exchanges_total", labels) == 1
    assert registry.get_sample_value(
        "assistants_audit_exchanges_total", {**labels, "status_class": "4xx"}
    ) == 1
    assert registry.get_sample_value("assistants_audit_exchange_duration_seconds_sum", labels) == pytest.approx(0.3)
    # time to first byte by operation, status class and api version (issue 5), and stream
    assert registry.get_sample_value(
        "assistants_audit_exchange_ttfb_seconds_sum", {**labels, "stream": "false"}
    ) == pytest.approx(0.1)
    assert registry.get_sample_value(
        "assistants_audit_exchange_ttfb_seconds_sum", {**labels, "status_class": "4xx", "stream": "false"}
    ) == pytest.approx(0.025)
    assert registry.get_sample_value(
        "assistants_audit_proxy_overhead_seconds_sum", {"operation": "runs.retrieve"}
    ) == pytest.approx(0.003)
    assert registry.get_sample_value(
        "assistants_audit_upstream_seconds_sum", {"operation": "runs.retrieve"}
    ) == pytest.approx(0.3 - 0.002 + 0.04)
    assert registry.get_sample_value(
        "assistants_audit_upstream_errors_total", {"kind": "http_429", "operation": "runs.retrieve"}
    ) == 1
    assert registry.get_sample_value(
        "assistants_audit_requests_by_version_total",
        {"beta_header": "assistants=v2", "api_version": "v2", "sdk_lang": "python", "sdk_version": "1.99.0"},
    ) == 1


def test_proxy_failures_and_enrichment(sink, registry):
    ex = f.exchange(status=502, error_type="upstream_unreachable")
    sink.on_exchange(ex, [f.exchange_fact(ex)])
    ex = f.exchange(status=200, origin="enrichment")
    sink.on_exchange(ex, [f.exchange_fact(ex, operation="runs.steps.list")])
    ex = f.exchange(status=500, origin="enrichment")
    sink.on_exchange(ex, [f.exchange_fact(ex, operation="runs.steps.list")])
    assert registry.get_sample_value(
        "assistants_audit_upstream_errors_total", {"kind": "unreachable", "operation": "runs.retrieve"}
    ) == 1
    assert registry.get_sample_value(
        "assistants_audit_upstream_errors_total", {"kind": "http_5xx", "operation": "runs.steps.list"}
    ) == 1
    assert registry.get_sample_value("assistants_audit_enrichment_calls_total", {"outcome": "ok"}) == 1
    assert registry.get_sample_value("assistants_audit_enrichment_calls_total", {"outcome": "error"}) == 1
    # the proxy's own calls are not client exchanges
    assert registry.get_sample_value(
        "assistants_audit_exchanges_total", {"operation": "runs.steps.list", "status_class": "2xx", "api_version": "v2"}
    ) is None


def test_genai_duration_for_mapped_operations(sink, registry):
    ex = f.exchange(method="POST", path="/v1/threads/thread_1/runs", duration=0.5)
    sink.on_exchange(ex, [f.exchange_fact(ex, operation="runs.create", model="gpt-4o")])
    labels = {"gen_ai_operation_name": "invoke_agent", "gen_ai_provider_name": "openai",
              "gen_ai_request_model": "gpt-4o", "error_type": ""}
    assert registry.get_sample_value("gen_ai_client_operation_duration_seconds_count", labels) == 1
    # semconv bucket boundaries
    assert registry.get_sample_value("gen_ai_client_operation_duration_seconds_bucket", {**labels, "le": "0.64"}) == 1
    assert registry.get_sample_value("gen_ai_client_operation_duration_seconds_bucket", {**labels, "le": "0.32"}) == 0


def test_run_counted_once_at_terminal(sink, registry):
    sink.on_exchange(f.exchange(), [f.run(status="queued", source="create")])
    for t in (1, 2, 3):
        sink.on_exchange(f.exchange(t=t), [f.run(status="in_progress", t=t, started_at=f.at(0.5))])
    done = f.run(status="completed", t=4, started_at=f.at(0.5), completed_at=f.at(3.5),
                 prompt_tokens=1000, completion_tokens=250, total_tokens=1250)
    sink.on_exchange(f.exchange(t=4), [done])
    sink.on_exchange(f.exchange(t=5), [done])  # polled again after the end: no second count
    assert registry.get_sample_value(
        "assistants_audit_runs_total", {"status": "completed", "model": "gpt-4o", "last_error_code": ""}
    ) == 1
    assert registry.get_sample_value("assistants_audit_run_queue_seconds_sum", {"model": "gpt-4o"}) == pytest.approx(0.5)
    assert registry.get_sample_value("assistants_audit_run_execution_seconds_sum", {"model": "gpt-4o"}) == pytest.approx(3.0)
    assert registry.get_sample_value("assistants_audit_run_polls_sum", {"model": "gpt-4o"}) == 4
    # in_progress three times: the 2nd and 3rd poll saw nothing new
    assert registry.get_sample_value("assistants_audit_run_unchanged_polls_sum", {"model": "gpt-4o"}) == 2
    mine = {"model": "gpt-4o", "assistant": "asst_1"}
    assert registry.get_sample_value("assistants_audit_tokens_total", {**mine, "token_type": "input"}) == 1000
    assert registry.get_sample_value("assistants_audit_tokens_total", {**mine, "token_type": "output"}) == 250
    assert registry.get_sample_value(
        "assistants_audit_cost_usd_total", {**mine, "kind": "tokens"}
    ) == pytest.approx((1000 + 250 * 4) / 1e6)
    tok = {"gen_ai_operation_name": "invoke_agent", "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o"}
    assert registry.get_sample_value("gen_ai_client_token_usage_sum", {**tok, "gen_ai_token_type": "input"}) == 1000
    assert registry.get_sample_value(
        "gen_ai_client_token_usage_bucket", {**tok, "gen_ai_token_type": "output", "le": "256.0"}
    ) == 1


def test_failed_run_and_unpriced_model(sink, registry):
    failed = f.run("run_2", status="failed", model="mystery-1", failed_at=f.at(2), started_at=f.at(1),
                   last_error_code="rate_limit_exceeded", prompt_tokens=10, completion_tokens=0)
    sink.on_exchange(f.exchange(), [failed])
    assert registry.get_sample_value(
        "assistants_audit_runs_total", {"status": "failed", "model": "mystery-1", "last_error_code": "rate_limit_exceeded"}
    ) == 1
    assert registry.get_sample_value(
        "assistants_audit_cost_usd_total", {"model": "mystery-1", "assistant": "asst_1", "kind": "tokens"}
    ) is None
    assert registry.get_sample_value("assistants_audit_unpriced_tokens_total", {"model": "mystery-1"}) == 10


def test_tool_calls_once_each_and_code_interpreter_sessions(sink, registry):
    calls = [
        f.tool_call("call_a", type="function", source="required_action"),
        f.tool_call("call_a", type="function", source="step"),
        f.tool_call("call_a", type=None, source="tool_output"),
        f.tool_call("call_fs", type="file_search", result_count=None),
        f.tool_call("call_fs", type="file_search", result_count=4),
        f.tool_call("call_fs", type="file_search", result_count=4),
        f.tool_call("call_ci1", type="code_interpreter", t=0),
        f.tool_call("call_ci2", type="code_interpreter", t=600),  # same thread, same hour
        f.tool_call("call_ci3", type="code_interpreter", t=4000),  # a new hour: a new session
    ]
    sink.on_exchange(f.exchange(), [f.run(), *calls])
    assert registry.get_sample_value("assistants_audit_tool_calls_total", {"type": "function"}) == 1
    assert registry.get_sample_value("assistants_audit_tool_calls_total", {"type": "file_search"}) == 1
    assert registry.get_sample_value("assistants_audit_tool_calls_total", {"type": "code_interpreter"}) == 3
    assert registry.get_sample_value("assistants_audit_file_search_results_count") == 1
    assert registry.get_sample_value("assistants_audit_file_search_results_sum") == 4
    assert registry.get_sample_value("assistants_audit_code_interpreter_sessions_total") == 2
    assert registry.get_sample_value(
        "assistants_audit_cost_usd_total", {"model": "gpt-4o", "assistant": "asst_1", "kind": "code_interpreter_session"}
    ) == pytest.approx(0.06)


def test_tokens_and_cost_by_assistant_are_capped(sink, registry):
    """Per-assistant spend (issue 7): each assistant its own series, up to ASSISTANT_LABEL_LIMIT;
    later newcomers share "other", so an org with thousands of assistants stays bounded."""
    from proxy.sinks.metrics import ASSISTANT_LABEL_LIMIT

    n = ASSISTANT_LABEL_LIMIT + 5
    for i in range(n):
        sink.on_exchange(f.exchange(), [f.run(f"run_a{i}", status="completed", assistant_id=f"asst_{i:03d}",
                                               prompt_tokens=100, completion_tokens=10)])
    get = registry.get_sample_value
    assert get("assistants_audit_tokens_total", {"model": "gpt-4o", "assistant": "asst_000", "token_type": "input"}) == 100
    assert get("assistants_audit_cost_usd_total", {"model": "gpt-4o", "assistant": "asst_000", "kind": "tokens"}) == (
        pytest.approx((100 + 40) / 1e6)
    )
    last = f"asst_{ASSISTANT_LABEL_LIMIT - 1:03d}"
    assert get("assistants_audit_tokens_total", {"model": "gpt-4o", "assistant": last, "token_type": "output"}) == 10
    assert get("assistants_audit_tokens_total", {"model": "gpt-4o", "assistant": "other", "token_type": "input"}) == 500
    assert get("assistants_audit_tokens_total",
               {"model": "gpt-4o", "assistant": f"asst_{n - 1:03d}", "token_type": "input"}) is None
    assistants = {s.labels["assistant"] for m in registry.collect() for s in m.samples if "assistant" in s.labels}
    assert len(assistants) == ASSISTANT_LABEL_LIMIT + 1


def test_vector_store_gauges_top_n_and_storage_cost(sink, registry):
    obs = [
        f.vector_store("vs_a", 2 * GIB, files_completed=3, last_active_at=f.at(400)),
        f.vector_store("vs_b", GIB // 2, expires_at=f.at(86400)),
        f.vector_store("vs_c", 100),
        f.vector_store("vs_d", 10),
        f.vector_store("vs_e", 5 * GIB),
        f.vector_store("vs_e", None, t=1, deleted=True),  # deleted: gone from every gauge
        f.vector_store("vs_c", 3000, t=2),  # a newer observation replaces the older one
        f.vector_store("vs_c", 1, t=1),  # an older observation arriving late does not
    ]
    sink.on_exchange(f.exchange(), obs)
    get = registry.get_sample_value
    assert get("assistants_audit_vector_stores") == 4
    assert get("assistants_audit_vector_store_total_usage_bytes") == 2 * GIB + GIB // 2 + 3000 + 10
    assert get("assistants_audit_vector_store_storage_cost_usd_per_day") == pytest.approx(
        ((2 * GIB + GIB // 2 + 3010) / GIB - 1) * 0.10
    )
    # limit 3: the smallest store has no per-store series
    assert get("assistants_audit_vector_store_usage_bytes", {"vector_store_id": "vs_a"}) == 2 * GIB
    assert get("assistants_audit_vector_store_usage_bytes", {"vector_store_id": "vs_c"}) == 3000
    assert get("assistants_audit_vector_store_usage_bytes", {"vector_store_id": "vs_d"}) is None
    assert get("assistants_audit_vector_store_usage_bytes", {"vector_store_id": "vs_e"}) is None
    assert get("assistants_audit_vector_store_files", {"vector_store_id": "vs_a", "status": "completed"}) == 3
    assert get("assistants_audit_vector_store_idle_seconds", {"vector_store_id": "vs_a"}) == pytest.approx(600)
    assert get("assistants_audit_vector_store_expires_at_seconds", {"vector_store_id": "vs_b"}) == f.T0 + 86400
    assert get("assistants_audit_vector_store_expires_at_seconds", {"vector_store_id": "vs_a"}) is None


def test_store_health(sink, registry):
    sink.store.set_queue(depth=7, spooled=2)
    sink.store.observe_flush(0.02)
    sink.store.error("disk_full")
    sink.store.error("a message the store library made up")
    assert registry.get_sample_value("assistants_audit_store_queue_depth") == 7
    assert registry.get_sample_value("assistants_audit_store_spooled_records") == 2
    assert registry.get_sample_value("assistants_audit_store_flush_seconds_count") == 1
    assert registry.get_sample_value("assistants_audit_store_lost_records_total") == 0
    assert registry.get_sample_value("assistants_audit_store_errors_total", {"kind": "disk_full"}) == 1
    assert registry.get_sample_value("assistants_audit_store_errors_total", {"kind": "other"}) == 1


STATUSES = ["completed", "failed", "cancelled", "expired", "incomplete"]


def _runs(sink: MetricsSink, first: int, last: int, assistants: int) -> None:
    """Runs first..last-1, each with its own run, thread, call, key and vector store ids, by
    `assistants` distinct assistants."""
    for i in range(first, last):
        run_id, thread_id = f"run_{i:04d}", f"thread_{i:04d}"
        ex = f.exchange(path=f"/v1/threads/{thread_id}/runs/{run_id}", t=i)
        facts = [
            f.exchange_fact(ex, run_id=run_id, thread_id=thread_id, model="gpt-4o", key_fingerprint=f"k{i}"),
            f.run(run_id, status=STATUSES[i % 5], thread_id=thread_id, assistant_id=f"asst_{i % assistants:04d}", t=i,
                  started_at=f.at(i), completed_at=f.at(i + 1),
                  last_error_code="server_error" if i % 5 == 1 else None, prompt_tokens=i, completion_tokens=i),
            f.tool_call(f"call_{i}", type=("function", "file_search", "code_interpreter")[i % 3], run_id=run_id,
                        thread_id=thread_id, result_count=i % 7),
            f.vector_store(f"vs_{i:04d}", i * 1000),
        ]
        sink.on_exchange(ex, facts)


def test_cardinality_bounded_over_1000_runs(registry):
    sink = MetricsSink(registry, settings(), prices=FakePrices(), clock=lambda: f.T0, max_runs=100)
    _runs(sink, 0, 1000, assistants=10)
    n = series_count(registry)
    assert n < 400, n
    text = "\n".join(s.name + str(s.labels) for m in registry.collect() for s in m.samples)
    assert "run_0" not in text and "thread_0" not in text and "call_" not in text and "k1" not in text
    # only the 3 largest stores carry their id
    assert sum(1 for m in registry.collect() for s in m.samples if s.labels.get("vector_store_id")) <= 3 * 7
    assert registry.get_sample_value("assistants_audit_vector_stores") == 1000
    runs_total = sum(
        registry.get_sample_value("assistants_audit_runs_total", {"status": s, "model": "gpt-4o",
                                  "last_error_code": "server_error" if s == "failed" else ""})
        for s in STATUSES
    )
    assert runs_total == 1000
    _runs(sink, 1000, 2000, assistants=10)  # twice the runs, the same series
    assert series_count(registry) == n


def test_cardinality_bounded_with_a_new_assistant_per_run(registry):
    """The worst case for the `assistant` label: every run by another assistant. Only the first
    ASSISTANT_LABEL_LIMIT get a series; each costs at most 8 samples (input/output tokens and
    tokens/code-interpreter cost, each with its _created sample), so the total stays bounded."""
    from proxy.sinks.metrics import ASSISTANT_LABEL_LIMIT

    sink = MetricsSink(registry, settings(), prices=FakePrices(), clock=lambda: f.T0, max_runs=100)
    _runs(sink, 0, 1000, assistants=1000)
    n = series_count(registry)
    assert n < 400 + 8 * ASSISTANT_LABEL_LIMIT, n
    text = "\n".join(s.name + str(s.labels) for m in registry.collect() for s in m.samples)
    last = f"asst_{ASSISTANT_LABEL_LIMIT - 1:04d}"
    assert last in text and f"asst_{ASSISTANT_LABEL_LIMIT:04d}" not in text and "asst_0999" not in text
    _runs(sink, 1000, 2000, assistants=2000)  # a thousand more assistants: no new series
    assert series_count(registry) == n


@pytest.mark.parametrize("reason", ["negative", "too_large", "malformed", "inconsistent"])
def test_invalid_usage_is_counted_once_and_never_priced(sink, registry, reason):
    done = f.run(status="completed", usage_invalid=reason)
    sink.on_exchange(f.exchange(), [done])
    sink.on_exchange(f.exchange(t=1), [done])  # polled again: still one run
    step = f.step("step_1", usage_invalid=reason)
    sink.on_exchange(f.exchange(), [step, step])  # a step listed twice: one step
    assert registry.get_sample_value("assistants_audit_invalid_usage_total", {"object": "step", "reason": reason}) == 1
    assert registry.get_sample_value("assistants_audit_invalid_usage_total", {"object": "run", "reason": reason}) == 1
    assert registry.get_sample_value(
        "assistants_audit_runs_total", {"status": "completed", "model": "gpt-4o", "last_error_code": ""}
    ) == 1
    assert not [s for m in registry.collect() for s in m.samples
                if s.name in ("assistants_audit_cost_usd_total", "assistants_audit_tokens_total")]


@pytest.mark.parametrize("tokens", [(-5, 10), (2**63 - 1, 0), (10, 10**8)])
def test_out_of_range_tokens_are_never_priced_even_without_a_reason(sink, registry, tokens):
    """Facts built elsewhere than the parser get the same rule."""
    sink.on_exchange(f.exchange(), [f.run(status="completed", prompt_tokens=tokens[0], completion_tokens=tokens[1])])
    assert registry.get_sample_value("assistants_audit_invalid_usage_total", {"object": "run", "reason": "malformed"}) == 1
    assert registry.get_sample_value(
        "assistants_audit_cost_usd_total", {"model": "gpt-4o", "assistant": "asst_1", "kind": "tokens"}) is None
