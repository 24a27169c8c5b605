"""The metric names and labels the proxy exposes (the shared contract the dashboards are built on).

`exposition()` renders one sample per metric in the Prometheus text format, so the panel queries
can be checked against a real Prometheus even before (and independently of) the metrics sink.
"""

from __future__ import annotations

# name -> (type, label names)
CONTRACT_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "assistants_audit_exchanges_total": ("counter", ("operation", "status_class", "api_version")),
    "assistants_audit_exchange_duration_seconds": ("histogram", ("operation", "status_class", "api_version")),
    "assistants_audit_exchange_ttfb_seconds": ("histogram", ("operation", "status_class", "api_version", "stream")),
    "assistants_audit_proxy_overhead_seconds": ("histogram", ("operation",)),
    "assistants_audit_upstream_seconds": ("histogram", ("operation",)),
    "gen_ai_client_operation_duration_seconds": (
        "histogram",
        ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"),
    ),
    "gen_ai_client_token_usage": (
        "histogram",
        ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"),
    ),
    "assistants_audit_runs_total": ("counter", ("status", "model", "last_error_code")),
    "assistants_audit_run_queue_seconds": ("histogram", ("model",)),
    "assistants_audit_run_execution_seconds": ("histogram", ("model",)),
    "assistants_audit_run_polls": ("histogram", ("model",)),
    "assistants_audit_tool_calls_total": ("counter", ("type",)),
    "assistants_audit_file_search_results": ("histogram", ()),
    "assistants_audit_tokens_total": ("counter", ("model", "assistant", "token_type")),
    "assistants_audit_cost_usd_total": ("counter", ("model", "assistant", "kind")),
    "assistants_audit_code_interpreter_sessions_total": ("counter", ()),
    "assistants_audit_vector_store_usage_bytes": ("gauge", ("vector_store_id",)),
    "assistants_audit_vector_store_files": ("gauge", ("vector_store_id", "status")),
    "assistants_audit_vector_store_expires_at_seconds": ("gauge", ("vector_store_id",)),
    "assistants_audit_vector_store_idle_seconds": ("gauge", ("vector_store_id",)),
    "assistants_audit_vector_stores": ("gauge", ()),
    "assistants_audit_vector_store_total_usage_bytes": ("gauge", ()),
    "assistants_audit_vector_store_storage_cost_usd_per_day": ("gauge", ()),
    "assistants_audit_requests_by_version_total": ("counter", ("beta_header", "api_version", "sdk_lang", "sdk_version")),
    "assistants_audit_upstream_errors_total": ("counter", ("kind", "operation")),
    "assistants_audit_enrichment_calls_total": ("counter", ("outcome",)),
    "assistants_audit_store_queue_depth": ("gauge", ()),
    "assistants_audit_store_flush_seconds": ("histogram", ()),
    "assistants_audit_store_spooled_records": ("gauge", ()),
    "assistants_audit_store_lost_records_total": ("counter", ()),
    "assistants_audit_store_errors_total": ("counter", ("kind",)),
    "assistants_audit_invalid_usage_total": ("counter", ("object", "reason")),
    "assistants_audit_recorder_lag_bytes": ("gauge", ()),
    "assistants_audit_bodies_dropped_total": ("counter", ()),
    "assistants_audit_api_requests_total": ("counter", ("api", "status_class")),
    "assistants_audit_api_request_duration_seconds": ("histogram", ("api",)),
    "assistants_audit_generation_calls_total": ("counter", ("generation",)),
    "assistants_audit_generation_tokens_total": ("counter", ("generation", "token_type")),
    "assistants_audit_generation_cost_usd_total": ("counter", ("generation", "kind")),
    "assistants_audit_api_tool_calls_total": ("counter", ("api", "type")),
    "assistants_audit_responses_total": ("counter", ("status", "status_reason")),
    "assistants_audit_response_duration_seconds": ("histogram", ("mode",)),
    "assistants_audit_response_time_to_first_event_seconds": ("histogram", ()),
}

# Plausible values so label filters in the panels (status_class=~"4xx|5xx", stream="true", ...) match.
_VALUES = {
    "operation": "runs.create",
    "status_class": "4xx",
    "api_version": "v1",
    "stream": "true",
    "status": "failed",
    "model": "gpt-4o",
    "assistant": "asst_abc",
    "last_error_code": "server_error",
    "type": "file_search",
    "token_type": "input",
    "kind": "tokens",
    "vector_store_id": "vs_abc",
    "beta_header": "assistants=v1",
    "sdk_lang": "python",
    "sdk_version": "1.0.0",
    "outcome": "ok",
    "gen_ai_operation_name": "invoke_agent",
    "gen_ai_provider_name": "openai",
    "gen_ai_request_model": "gpt-4o",
    "error_type": "",
    "gen_ai_token_type": "input",
    "object": "run",
    "reason": "negative",
    "api": "responses",
    "generation": "responses",
    "status_reason": "server_error",
    "mode": "sync",
}

# Where one metric's panels filter on another value than _VALUES has.
_METRIC_VALUES = {"assistants_audit_upstream_errors_total": {"kind": "http_429"},
                  "gen_ai_client_operation_duration_seconds": {"gen_ai_operation_name": "chat"}}


def exposition(tick: int) -> str:
    """Text exposition where every counter and histogram grows with `tick` (so rates are non-zero)."""
    lines = []
    for name, (kind, labels) in CONTRACT_METRICS.items():
        base = name[: -len("_total")] if kind == "counter" else name
        lines.append(f"# TYPE {base} {kind}")
        values = {**_VALUES, **_METRIC_VALUES.get(name, {})}
        pairs = [f'{label}="{values[label]}"' for label in labels]
        if kind == "histogram":
            for le in ("0.1", "1", "+Inf"):
                bucket_labels = ",".join([*pairs, 'le="%s"' % le])
                lines.append(f"{name}_bucket{{{bucket_labels}}} {tick}")
            lines.append(f"{name}_sum{{{','.join(pairs)}}} {tick * 0.5}")
            lines.append(f"{name}_count{{{','.join(pairs)}}} {tick}")
        else:
            value = tick if kind == "counter" else 1.0 + tick
            lines.append(f"{name}{{{','.join(pairs)}}} {value}")
    return "\n".join(lines) + "\n"
