"""The five dashboards, one function each. Every query uses only the metric names the proxy
exposes (proxy/sinks/metrics.py); tests/dashboards runs every expression against a real
Prometheus scraping a real proxy."""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from dashboards.panels import (
    ABSENT_IS_ZERO,
    MODEL,
    OP,
    RATE,
    Q,
    assistant_spend_table,
    bar_gauge_panel,
    base_dashboard,
    link,
    mean,
    quantile,
    run_traces,
    stat_panel,
    table_panel,
    tempo_explore_url,
    timeseries_panel,
)
from analytics.prices import Prices
from proxy.sinks.common import GENERATIONS
from proxy.sinks.metrics import ASSISTANT_LABEL_LIMIT

GIB = 1024**3
# Vector-store storage as priced in analytics/data/prices.json (the one place prices live): billed
# per GiB-day past a free allowance per organisation.
_STORAGE = Prices.load().tool_price("vector_store_storage")
STORAGE_USD_PER_GIB_DAY = _STORAGE.usd
FREE_GIB = _STORAGE.free_quantity or 0.0
EXPIRY_WINDOW_S = 7 * 86400  # stores expiring sooner than this are flagged
IDLE_DAYS = 30  # a store idle this long counts as idle, as in the alert rules and `assistants-audit report`
IDLE_WINDOW_S = IDLE_DAYS * 86400

# Terminal run statuses other than completed (the run-failure panel and its trace links).
RUN_FAILURES = "failed|expired|cancelled|incomplete"
# Responses that did not complete, and the generations a migration moves between (not `shared`,
# the vector stores and files both sides use, nor `other`).
RESPONSE_FAILURES = "failed|incomplete|cancelled"
MIGRATING = "|".join(g for g in GENERATIONS if g not in ("shared", "other"))


def latency() -> Dashboard:
    d = base_dashboard(
        "assistants-audit-latency",
        "Assistants API / Latency",
        "Where time goes: per-operation exchange latency, the proxy's own overhead, run queueing "
        "and execution, streaming time to first event, and how hard clients poll.",
    )
    d = d.with_row(Row("Exchanges"))
    d = d.with_panel(
        timeseries_panel(
            "Exchange latency by operation (p50 / p95 / p99)",
            "Time from the request head reaching the proxy to the last response byte forwarded, per "
            "Assistants operation. Streamed runs are long by design (they last as long as the run); "
            "compare them with the time-to-first-event panel instead. If p99 climbs for one operation "
            "only, look at the upstream time panel: the upstream is slow; if it climbs for all, check "
            "proxy overhead and the host.",
            "s",
            *(quantile(q, "assistants_audit_exchange_duration_seconds", ["operation"], OP) for q in (0.5, 0.95, 0.99)),
            width=24,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Proxy overhead vs upstream time (p95)",
            "Proxy overhead is time spent in the proxy's own code; upstream time is time spent waiting "
            "on the upstream. Overhead should stay in the low milliseconds and flat under load. If it "
            "grows with traffic, the proxy host is CPU-bound: add workers (--workers) or turn off "
            "--capture-content; if upstream time grows, the problem is upstream.",
            "s",
            quantile(0.95, "assistants_audit_proxy_overhead_seconds", [], OP, legend="proxy overhead p95"),
            quantile(0.95, "assistants_audit_upstream_seconds", [], OP, legend="upstream p95"),
            mean("assistants_audit_proxy_overhead_seconds", selector=OP, legend="proxy overhead mean"),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Requests by operation",
            "Exchanges per second through the proxy, per operation. A spike in runs.retrieve or "
            "runs.steps.list usually means clients poll aggressively (see polls per run).",
            "reqps",
            Q(f"sum by (operation) (rate(assistants_audit_exchanges_total{{{OP}}}[{RATE}]))", "{{operation}}"),
            stacked=True,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Streamed time to first event (p50 / p95)",
            "For streamed calls (stream=true), time until the first server-sent event reached the "
            "client; this is what a user waits before text starts to appear. If it rises while "
            "non-streamed latency does not, the upstream is queueing runs.",
            "s",
            *(
                quantile(q, "assistants_audit_exchange_ttfb_seconds", ["operation"], f'stream="true", {OP}')
                for q in (0.5, 0.95)
            ),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "GenAI operation duration by model (p95)",
            "OpenTelemetry GenAI semantic-convention view of the same exchanges, per model and error "
            "type. A non-empty error_type series means calls for that model are failing; open the "
            "Failures dashboard.",
            "s",
            Q(
                "histogram_quantile(0.95, sum by (le, gen_ai_request_model, error_type) "
                f'(rate(gen_ai_client_operation_duration_seconds_bucket{{gen_ai_request_model=~"$model"}}[{RATE}])))',
                "p95 {{gen_ai_request_model}} {{error_type}}",
            ),
        )
    )
    d = d.with_row(Row("Runs"))
    d = d.with_panel(
        timeseries_panel(
            "Run queue time by model (p50 / p95)",
            "Seconds a run spent queued (created_at to started_at) before the upstream began working "
            "on it. Growing queue time with flat execution time means the upstream is saturated or "
            "rate-limiting you: check the 429 panels on the Failures dashboard.",
            "s",
            *(quantile(q, "assistants_audit_run_queue_seconds", ["model"], MODEL) for q in (0.5, 0.95)),
            width=8,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Run execution time by model (p50 / p95)",
            "Seconds from started_at to the terminal state. Long tails usually come from tool calls: "
            "function calls waiting on your own code to submit outputs, or large file_search and "
            "code_interpreter steps.",
            "s",
            *(quantile(q, "assistants_audit_run_execution_seconds", ["model"], MODEL) for q in (0.5, 0.95)),
            width=8,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Polls per run",
            "How many times clients retrieved a run before it reached a terminal state. Tens of polls "
            "per run waste requests and rate-limit budget: switch those clients to streaming or add "
            "back-off to their polling loop.",
            "short",
            quantile(0.95, "assistants_audit_run_polls", ["model"], MODEL),
            mean("assistants_audit_run_polls", ["model"], MODEL, legend="mean {{model}}"),
            width=8,
        )
    )
    return d


def failures() -> Dashboard:
    d = base_dashboard(
        "assistants-audit-failures",
        "Assistants API / Failures",
        "What is failing and where: HTTP errors per operation, rate limiting, run outcomes by "
        "error code, the upstream connection, and the proxy's own recording pipeline.",
    )
    d = d.with_row(Row("HTTP"))
    d = d.with_panel(
        stat_panel(
            "Failure ratio",
            "Share of exchanges that ended in an upstream 5xx or a proxy-level error (upstream "
            "unreachable, timeout, reset), as in the AssistantsAuditHighFailureRatio alert (fires "
            "above 5%). Client errors (4xx) are in the panel on the right. If it is high, see "
            "\"Upstream connection errors\" below to tell a broken upstream from a broken network."
            + ABSENT_IS_ZERO,
            "percentunit",
            Q(
                f'(sum(rate(assistants_audit_exchanges_total{{status_class=~"5xx|error", {OP}}}[{RATE}])) or vector(0))'
                f" / sum(rate(assistants_audit_exchanges_total{{{OP}}}[{RATE}]))",
                "failure ratio",
            ),
            thresholds=((None, "green"), (0.01, "orange"), (0.05, "red")),
        )
    )
    d = d.with_panel(
        stat_panel(
            "429 ratio",
            "Share of exchanges answered 429 (rate limited) by the upstream. Sustained values mean "
            "you hit the org's rate or token limit: slow polling loops, spread batch work, or ask for "
            "a higher limit." + ABSENT_IS_ZERO,
            "percentunit",
            Q(
                f'(sum(rate(assistants_audit_upstream_errors_total{{kind="http_429"}}[{RATE}])) or vector(0))'
                f" / sum(rate(assistants_audit_exchanges_total[{RATE}]))",
                "429 ratio",
            ),
            thresholds=((None, "green"), (0.01, "orange"), (0.05, "red")),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "4xx / 5xx by operation",
            "Error responses per second per operation and status class. 4xx on one operation "
            "usually points at one client sending bad requests (the store has the exchange rows: "
            "`assistants-audit sql`); 5xx across operations means the upstream is unhealthy."
            + ABSENT_IS_ZERO,
            "reqps",
            Q(
                "sum by (operation, status_class) (rate(assistants_audit_exchanges_total"
                f'{{status_class=~"4xx|5xx", {OP}}}[{RATE}])) or vector(0)',
                "{{operation}} {{status_class}}",
            ),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "429 rate by operation",
            "Requests per second the upstream answered 429 (rate limited), per operation; the 4xx "
            "panel folds them in with every other client error. 429s on runs.retrieve or "
            "runs.steps.list mean clients poll too hard (switch them to streaming or back off); on "
            "runs.create or messages.create the org's request or token quota is exhausted: spread "
            "the work or ask for a higher limit." + ABSENT_IS_ZERO,
            "reqps",
            Q(
                "sum by (operation) (rate(assistants_audit_upstream_errors_total"
                f'{{kind="http_429", {OP}}}[{RATE}])) or vector(0)',
                "{{operation}}",
            ),
            width=24,
        )
    )
    d = d.with_row(Row("Runs"))
    d = d.with_panel(
        timeseries_panel(
            "Run failures by last_error code and model",
            "Runs that ended failed, expired, cancelled or incomplete, per minute, split by the run's "
            "last_error code (e.g. rate_limit_exceeded, server_error) and model. rate_limit_exceeded "
            "means the org's token quota ran out during the run; expired means the client did not "
            "submit tool outputs within 10 minutes. Use the panel link (every run that did not "
            "complete) or click a series (runs of that status and model) to open the run traces in "
            "Tempo." + ABSENT_IS_ZERO,
            "opm",
            Q(
                "60 * sum by (status, last_error_code, model) (rate(assistants_audit_runs_total"
                f'{{status=~"{RUN_FAILURES}", {MODEL}}}[{RATE}])) or vector(0)',
                "{{status}} {{last_error_code}} {{model}}",
            ),
            width=16,
        )
        .links([link("Runs that did not complete, in Tempo", tempo_explore_url(run_traces(f'=~ "{RUN_FAILURES}"')))])
        .data_links(
            [
                link(
                    "${__field.labels.status} runs of ${__field.labels.model} in Tempo",
                    tempo_explore_url(
                        run_traces('= "${__field.labels.status}"', 'span.gen_ai.request.model = "${__field.labels.model}"')
                    ),
                )
            ]
        )
    )
    d = d.with_panel(
        bar_gauge_panel(
            "Run outcomes in range",
            "Terminal runs by status over the dashboard's time range. A healthy workload is almost "
            "all completed; requires_action is not terminal and does not appear here.",
            "short",
            Q(
                f"sum by (status) (increase(assistants_audit_runs_total{{{MODEL}}}[$__range]))",
                "{{status}}",
                instant=True,
            ),
            width=8,
        )
    )
    d = d.with_row(Row("Upstream and recording pipeline"))
    d = d.with_panel(
        timeseries_panel(
            "Upstream connection errors and timeouts",
            "Failures talking to the upstream, by kind: unreachable (DNS/connect), timeout, reset, "
            "http_5xx, http_429. unreachable or timeout across the board means the upstream URL or "
            "network is wrong; raise --upstream-timeout only if long non-streamed calls are "
            "legitimate." + ABSENT_IS_ZERO,
            "reqps",
            Q(f"sum by (kind) (rate(assistants_audit_upstream_errors_total[{RATE}])) or vector(0)", "{{kind}}"),
            width=8,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Enrichment calls by outcome",
            "Calls the proxy itself makes to fill gaps (e.g. fetching run steps after a run ends). "
            "Errors here mean the audit trail has gaps, never that client traffic failed; if they "
            "persist, check the upstream key permissions or run with --no-enrich." + ABSENT_IS_ZERO,
            "reqps",
            Q(f"sum by (outcome) (rate(assistants_audit_enrichment_calls_total[{RATE}])) or vector(0)", "{{outcome}}"),
            width=8,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Audit store errors and lost records",
            "Errors writing the audit store, by kind, and records lost for good. Lost records should "
            "always be zero: if not, the journal disk is full or unwritable; free space under the "
            "store directory and check the proxy log. Invalid usage: runs and steps whose upstream "
            "usage was impossible (negative, not an integer, beyond any context), recorded but never priced."
            + ABSENT_IS_ZERO,
            "short",
            Q(f"sum by (kind) (increase(assistants_audit_store_errors_total[{RATE}])) or vector(0)", "errors {{kind}}"),
            Q(f"sum(increase(assistants_audit_store_lost_records_total[{RATE}])) or vector(0)", "lost records"),
            Q(f"sum by (reason) (increase(assistants_audit_invalid_usage_total[{RATE}])) or vector(0)",
              "invalid usage {{reason}}"),
            width=8,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Audit store backlog: spooled records and queue depth",
            "Records waiting to be written: spooled to the on-disk journal because the writer fell "
            "behind, and in the in-memory queue. A backlog that keeps growing means the store cannot "
            "keep up (slow disk, or the store locked by a long-running query): it is not data loss, "
            "but fix it before the disk fills.",
            "short",
            Q("sum(assistants_audit_store_spooled_records)", "spooled"),
            Q("sum(assistants_audit_store_queue_depth)", "queue depth"),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Recorder lag: journal not yet stored",
            "Bytes the workers journaled that the recorder process has not stored yet. The recorder "
            "runs at a lower priority than the workers: under saturation this grows and falls back "
            "when load drops. At --max-recorder-lag (1 GiB per worker by default) workers keep "
            "recording exchanges but without their bodies (bodies dropped, right axis of the count): "
            "if it stays high, give the proxy more CPU or a faster store disk." + ABSENT_IS_ZERO,
            "bytes",
            Q("sum(assistants_audit_recorder_lag_bytes) or vector(0)", "lag"),
            Q(f"sum(increase(assistants_audit_bodies_dropped_total[{RATE}])) or vector(0)", "bodies dropped"),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Audit store flush time (p95)",
            "How long one flush of buffered rows to the store takes. Seconds-long flushes mean a slow "
            "disk or contention with readers of the store.",
            "s",
            quantile(0.95, "assistants_audit_store_flush_seconds", legend="flush p95"),
        )
    )
    return d


def vector_stores() -> Dashboard:
    d = base_dashboard(
        "assistants-audit-vector-stores",
        "Assistants API / Vector-store storage & cost",
        "Vector-store storage is billed per GiB-day past the first free GiB, whether or not anything "
        "uses the stores. This dashboard shows what is stored, what it costs, and which stores are "
        "idle or about to expire. Per-store gauges cover the largest stores only "
        "(--vector-store-gauge-limit).",
    )
    d = d.with_panel(
        stat_panel(
            "Total storage",
            "Bytes held by all live vector stores the proxy knows about. The first GiB per "
            "organisation is free; everything above it is billed daily.",
            "bytes",
            Q("sum(assistants_audit_vector_store_total_usage_bytes)", "total"),
            thresholds=((None, "green"), (int(FREE_GIB * GIB), "orange")),
            width=5,
        )
    )
    d = d.with_panel(
        stat_panel(
            "Daily storage cost",
            "What today's storage costs per day at the current size (first GiB free). If it is higher "
            "than expected, sort the top-stores panel and delete or expire what is idle.",
            "currencyUSD",
            Q("sum(assistants_audit_vector_store_storage_cost_usd_per_day)", "USD/day"),
            thresholds=((None, "green"), (1, "orange"), (10, "red")),
            width=5,
        )
    )
    d = d.with_panel(
        stat_panel(
            "Projected 30-day storage cost",
            "Daily storage cost times 30, assuming nothing is added or deleted. Set expires_after on "
            "stores created for a single conversation so this does not grow forever.",
            "currencyUSD",
            Q("30 * sum(assistants_audit_vector_store_storage_cost_usd_per_day)", "USD/30 days"),
            thresholds=((None, "green"), (30, "orange"), (300, "red")),
            width=5,
        )
    )
    d = d.with_panel(
        stat_panel(
            "Live vector stores",
            "Number of vector stores not deleted, as last seen by the proxy. A number that only ever "
            "grows means stores are created per thread or per user and never cleaned up.",
            "short",
            Q("sum(assistants_audit_vector_stores)", "stores"),
            width=5,
        )
    )
    d = d.with_panel(
        stat_panel(
            "Idle stores' storage cost",
            f"USD per day, at ${STORAGE_USD_PER_GIB_DAY:.2f} per GiB-day, for the stores (among the largest tracked) not active "
            f"for more than {IDLE_DAYS} days: the spend you can cut by deleting them. The "
            "AssistantsAuditIdleVectorStoresCost alert and `assistants-audit report` use the same "
            f"{IDLE_DAYS}-day idle limit. See the Idle stores table for which ones." + ABSENT_IS_ZERO,
            "currencyUSD",
            Q(
                "(sum(assistants_audit_vector_store_usage_bytes and on (vector_store_id) "
                f"(assistants_audit_vector_store_idle_seconds > {IDLE_WINDOW_S})) or vector(0)) / {GIB} * {STORAGE_USD_PER_GIB_DAY!r}",
                "USD/day idle",
            ),
            width=4,
            thresholds=((None, "green"), (1, "orange"), (10, "red")),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Storage against the free GiB",
            f"Total bytes over time against the {FREE_GIB:g} GiB free allowance. The area above the free line "
            "is what you pay for.",
            "bytes",
            Q("sum(assistants_audit_vector_store_total_usage_bytes)", "stored"),
            Q(f"vector({int(FREE_GIB * GIB)})", "free allowance"),
            width=24,
        )
    )
    d = d.with_panel(
        bar_gauge_panel(
            "Top stores by size",
            "The largest vector stores (by usage_bytes). One dominant store usually holds duplicate "
            "uploads or whole document dumps; check its files with `assistants-audit sql`.",
            "bytes",
            Q("topk(10, assistants_audit_vector_store_usage_bytes)", "{{vector_store_id}}", instant=True),
        )
    )
    d = d.with_panel(
        bar_gauge_panel(
            "Files per store by status",
            "Files attached to each of the largest stores, by ingestion status. Files stuck in "
            "in_progress or failed are not searchable but may still be billed: re-upload or remove "
            "them.",
            "short",
            Q(
                "sum by (vector_store_id, status) (assistants_audit_vector_store_files)",
                "{{vector_store_id}} {{status}}",
                instant=True,
            ),
        )
    )
    d = d.with_panel(
        table_panel(
            "Stores nearing expiry",
            "Time left before each store with an expiry policy expires, soonest first. Stores that "
            "expire are deleted by the upstream; if an assistant still relies on one, touch it or "
            "raise expires_after before it runs out.",
            "s",
            Q(
                "bottomk(10, assistants_audit_vector_store_expires_at_seconds - time())",
                "{{vector_store_id}}",
                table=True,
            ),
            thresholds=((None, "red"), (86400, "orange"), (EXPIRY_WINDOW_S, "green")),
        )
    )
    d = d.with_panel(
        table_panel(
            "Idle stores",
            "Time since each of the largest stores was last active, longest first. A large store idle "
            "for weeks is pure cost: delete it, or set expires_after with anchor last_active_at.",
            "s",
            Q("topk(10, assistants_audit_vector_store_idle_seconds)", "{{vector_store_id}}", table=True),
            thresholds=((None, "green"), (7 * 86400, "orange"), (IDLE_WINDOW_S, "red")),
        )
    )
    return d


def cost() -> Dashboard:
    d = base_dashboard(
        "assistants-audit-cost",
        "Assistants API / Cost & usage",
        "Token spend and usage by model, code interpreter sessions, tool use, and which API "
        "version and SDK your clients use. Prices come from the proxy's price table; unpriced "
        f"models count tokens but no USD. Per-assistant spend covers the first {ASSISTANT_LABEL_LIMIT} assistants seen "
        "(the rest are `other`); per-thread cost and assistant names are in the audit store: "
        "`assistants-audit report`.",
    )
    d = d.with_panel(
        stat_panel(
            "Spend in range",
            "USD spent on tokens and code interpreter sessions over the dashboard's time range, for "
            "the selected models. Compare with your budget; the cost-burn alert fires on the hourly "
            "rate.",
            "currencyUSD",
            Q(f"sum(increase(assistants_audit_cost_usd_total{{{MODEL}}}[$__range]))", "USD", instant=True),
        )
    )
    d = d.with_panel(
        stat_panel(
            "Tokens in range",
            "Input plus output tokens over the dashboard's time range, for the selected models.",
            "short",
            Q(f"sum(increase(assistants_audit_tokens_total{{{MODEL}}}[$__range]))", "tokens", instant=True),
        )
    )
    d = d.with_panel(
        stat_panel(
            "Code interpreter sessions in range",
            "Code interpreter sessions started over the time range (each billed per session). Many "
            "sessions per thread mean runs keep opening new sessions; reuse threads instead."
            + ABSENT_IS_ZERO,
            "short",
            Q(
                "sum(increase(assistants_audit_code_interpreter_sessions_total[$__range])) or vector(0)",
                "sessions",
                instant=True,
            ),
        )
    )
    d = d.with_panel(
        stat_panel(
            "v1 requests seen",
            "Requests to the retired Assistants API v1: OpenAI clients sending OpenAI-Beta: "
            "assistants=v1 and Azure clients on an api-version older than 2024-05-01 (no beta "
            "header), counted since the proxy started (the highest counter value in the time range; "
            "a client's first request would be invisible to increase()). Anything above zero is a "
            "client that will break: find it in the API version mix panel by SDK and upgrade it."
            + ABSENT_IS_ZERO,
            "short",
            Q(
                "sum(max_over_time(assistants_audit_requests_by_version_total"
                '{api_version="v1"}[$__range])) or vector(0)',
                "v1 requests",
                instant=True,
            ),
            thresholds=((None, "green"), (1, "red")),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Spend rate by model and kind",
            "USD per hour by model and kind (tokens, code_interpreter_session), extrapolated from the "
            "rate interval. A jump for one model usually means a prompt or retrieval change that "
            "inflated input tokens: compare with the tokens panel.",
            "currencyUSD",
            Q(
                f"3600 * sum by (model, kind) (rate(assistants_audit_cost_usd_total{{{MODEL}}}[{RATE}]))",
                "{{model}} {{kind}} (per hour)",
            ),
            stacked=True,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Tokens by model and type",
            "Tokens per second by model, input vs output. Input dominating by 10x or more is normal "
            "for file_search (retrieved chunks are input); if it keeps growing per run, threads are "
            "getting long: truncate them (truncation_strategy) or start new threads.",
            "suffix:tok/s",
            Q(
                f"sum by (model, token_type) (rate(assistants_audit_tokens_total{{{MODEL}}}[{RATE}]))",
                "{{model}} {{token_type}}",
            ),
            stacked=True,
        )
    )
    d = d.with_panel(
        assistant_spend_table(
            "Tokens and USD by assistant",
            "Spend (tokens and code interpreter sessions) and tokens per assistant over the "
            "dashboard's time range, for the selected models, most expensive first. The proxy labels "
            f"the first {ASSISTANT_LABEL_LIMIT} assistants it sees since start; later ones add up under `other` (a large "
            "`other` row means many assistants: `assistants-audit report` has them all, with names). "
            "One assistant far ahead of the rest usually has long threads or heavy retrieval.",
            Q(f"sum by (assistant) (increase(assistants_audit_cost_usd_total{{{MODEL}}}[$__range]))", "USD", table=True),
            Q(f"sum by (assistant) (increase(assistants_audit_tokens_total{{{MODEL}}}[$__range]))", "tokens", table=True),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Tokens per call (GenAI semconv, p95)",
            "Distribution of tokens per operation by token type (OpenTelemetry GenAI metric). A rising "
            "p95 of input tokens means context is growing per call.",
            "short",
            Q(
                "histogram_quantile(0.95, sum by (le, gen_ai_request_model, gen_ai_token_type) "
                f'(rate(gen_ai_client_token_usage_bucket{{gen_ai_request_model=~"$model"}}[{RATE}])))',
                "p95 {{gen_ai_request_model}} {{gen_ai_token_type}}",
            ),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Tool calls by type",
            "Tool calls per second by type (function, code_interpreter, file_search). function calls "
            "are executed by your code; if runs expire, check that their outputs get submitted.",
            "ops",
            Q(f"sum by (type) (rate(assistants_audit_tool_calls_total[{RATE}])) or vector(0)", "{{type}}"),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "file_search results per call",
            "Chunks returned per file_search call (p50 / p95). Consistently hitting the max means "
            "retrieval pulls the maximum into the prompt on every call; lower max_num_results to "
            "cut input tokens.",
            "short",
            *(quantile(q, "assistants_audit_file_search_results") for q in (0.5, 0.95)),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "API version mix by SDK",
            "Requests per second by Assistants beta header (assistants=v1 / assistants=v2 / absent), "
            "api-version (Azure) and client SDK language/version. v1 traffic must go to zero; requests "
            "without a beta header come from hand-rolled clients.",
            "reqps",
            Q(
                "sum by (beta_header, api_version, sdk_lang, sdk_version) "
                f"(rate(assistants_audit_requests_by_version_total[{RATE}]))",
                "{{beta_header}} {{api_version}} {{sdk_lang}} {{sdk_version}}",
            ),
            stacked=True,
        )
    )
    return d


def responses() -> Dashboard:
    d = base_dashboard(
        "assistants-audit-responses",
        "Assistants API / Responses & migration",
        "The move from the Assistants API to the Responses API (and to Azure AI Foundry agents), "
        "watched with the same audit on both sides: calls, tokens and spend by API generation, "
        "then the Responses API's own latency, time to first event, outcomes and tool calls. "
        "Generations: assistants_v1, assistants_v2, responses (with Conversations), foundry_agents; "
        "`shared` is the vector stores and files every generation uses.",
    )
    d = d.with_row(Row("Migration"))
    d = d.with_panel(
        stat_panel(
            "Responses share of calls in range",
            "Share of client calls to an agent API (Assistants v1 or v2, Responses with Conversations, "
            "Foundry agents) that went to the Responses API over the time range. It reaches 100% when "
            "the migration is done; the Assistants API at api.openai.com is sunset on 2026-08-26. "
            "Vector store and file calls are left out: both sides use them.",
            "percentunit",
            Q(
                'sum(increase(assistants_audit_generation_calls_total{generation="responses"}[$__range]))'
                f' / sum(increase(assistants_audit_generation_calls_total{{generation=~"{MIGRATING}"}}[$__range]))',
                "responses share",
                instant=True,
            ),
            thresholds=((None, "red"), (0.5, "orange"), (0.99, "green")),
        )
    )
    d = d.with_panel(
        stat_panel(
            "Assistants calls in range",
            "Calls to the Assistants API (v1 and v2) over the time range. Every one of them comes from a "
            "client that still has to migrate: the API version mix panel on the Cost & usage dashboard "
            "names their SDKs, `assistants-audit report --migration` their keys.",
            "short",
            Q(
                'sum(increase(assistants_audit_generation_calls_total{generation=~"assistants_v1|assistants_v2"}'
                "[$__range])) or vector(0)",
                "assistants calls",
                instant=True,
            ),
        )
    )
    d = d.with_panel(
        bar_gauge_panel(
            "Spend in range by API generation",
            "Estimated USD (tokens at the price in force, cached input at its own price; code "
            "interpreter sessions of runs) per API generation over the time range. Compare the cost of "
            "the same work before and after moving a client.",
            "currencyUSD",
            Q(
                "sum by (generation) (increase(assistants_audit_generation_cost_usd_total[$__range]))",
                "{{generation}}",
                instant=True,
            ),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Migration progress: calls by API generation",
            "Client calls per second by API generation, stacked. During a migration the assistants_v2 "
            "band shrinks as the responses band grows; assistants_v1 must already be gone (it is "
            "retired). A band that does not shrink is a client nobody has moved yet.",
            "reqps",
            Q(f"sum by (generation) (rate(assistants_audit_generation_calls_total[{RATE}]))", "{{generation}}"),
            stacked=True,
            width=24,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Spend rate by API generation",
            "USD per hour by API generation and kind (tokens, code_interpreter_session). A generation "
            "costing more for the same traffic after a move usually means lost prompt caching (cached "
            "input is cheaper) or a tool that now runs on every call.",
            "currencyUSD",
            Q(
                f"3600 * sum by (generation, kind) (rate(assistants_audit_generation_cost_usd_total[{RATE}]))",
                "{{generation}} {{kind}} (per hour)",
            ),
            stacked=True,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Tokens by API generation",
            "Tokens per second of finished runs and responses, by generation and type. cached_input is "
            "the part of input served from the prompt cache (chained responses and conversations), "
            "reasoning the part of output spent thinking (o-series models).",
            "suffix:tok/s",
            Q(
                f"sum by (generation, token_type) (rate(assistants_audit_generation_tokens_total[{RATE}]))",
                "{{generation}} {{token_type}}",
            ),
        )
    )
    d = d.with_row(Row("Responses API"))
    d = d.with_panel(
        timeseries_panel(
            "Responses latency by mode (p50 / p95)",
            "How long a response took: sync and stream from the create request to its last byte (a "
            "stream: to its last event), background from created_at to completion. Background "
            "responses are long by design; compare sync with the GenAI duration by model below.",
            "s",
            *(quantile(q, "assistants_audit_response_duration_seconds", ["mode"]) for q in (0.5, 0.95)),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Streamed responses: time to first event (p50 / p95)",
            "For streamed responses, time from the request reaching the proxy to the first event "
            "relayed to the client: what a user waits before anything appears. If it rises while the "
            "whole-response latency does not, the upstream is queueing requests.",
            "s",
            *(quantile(q, "assistants_audit_response_time_to_first_event_seconds") for q in (0.5, 0.95)),
        )
    )
    d = d.with_panel(
        stat_panel(
            "Response failure ratio",
            "Share of finished responses that failed (status failed, with an error code) over the "
            "rate interval. Failed responses are answered HTTP 200, so they never show in the HTTP "
            "error panels." + ABSENT_IS_ZERO,
            "percentunit",
            Q(
                f'(sum(rate(assistants_audit_responses_total{{status="failed"}}[{RATE}])) or vector(0))'
                f" / sum(rate(assistants_audit_responses_total[{RATE}]))",
                "failure ratio",
            ),
            thresholds=((None, "green"), (0.01, "orange"), (0.05, "red")),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Responses that did not complete, by reason",
            "Responses per minute that ended failed (by error.code: server_error, rate_limit_exceeded, "
            "vector_store_timeout, ...), incomplete (by incomplete_details.reason: max_output_tokens, "
            "content_filter) or cancelled. max_output_tokens means the limit the client set cut the "
            "answer: raise max_output_tokens or shorten the task. The spans (`chat {model}` with "
            "error.type) and the `responses` view have each one." + ABSENT_IS_ZERO,
            "opm",
            Q(
                "60 * sum by (status, status_reason) (rate(assistants_audit_responses_total"
                f'{{status=~"{RESPONSE_FAILURES}"}}[{RATE}])) or vector(0)',
                "{{status}} {{status_reason}}",
            ),
            width=12,
        )
    )
    d = d.with_panel(
        bar_gauge_panel(
            "Response outcomes in range",
            "Finished responses by status over the time range. queued and in_progress are not final "
            "and do not appear; a background response counts when a poll sees it finish.",
            "short",
            Q("sum by (status) (increase(assistants_audit_responses_total[$__range]))", "{{status}}", instant=True),
            width=6,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Tool calls by API and type",
            "Tool calls per second on both sides, by API family and type: Assistants runs' function, "
            "file_search, code_interpreter; Responses' function, file_search, web_search, "
            "code_interpreter, mcp, ... (`other` for a type the proxy does not know). file_search and "
            "web_search calls are billed per call on the Responses API.",
            "ops",
            Q(f"sum by (api, type) (rate(assistants_audit_api_tool_calls_total[{RATE}]))", "{{api}} {{type}}"),
            stacked=True,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "GenAI chat duration by model (p95)",
            "OpenTelemetry GenAI view of Responses creates (gen_ai.operation.name chat), per model and "
            "error type: a failed response carries its error code. Streamed creates last until their "
            "last event.",
            "s",
            Q(
                "histogram_quantile(0.95, sum by (le, gen_ai_request_model, error_type) "
                "(rate(gen_ai_client_operation_duration_seconds_bucket"
                f'{{gen_ai_operation_name="chat", gen_ai_request_model=~"$model"}}[{RATE}])))',
                "p95 {{gen_ai_request_model}} {{error_type}}",
            ),
        )
    )
    d = d.with_row(Row("By API family"))
    d = d.with_panel(
        timeseries_panel(
            "Requests by API family and status",
            "Client requests per second by API family (assistants, responses, conversations, "
            "foundry_agents, other) and status class. 4xx on responses right after moving a client "
            "usually means requests still shaped for the Assistants API.",
            "reqps",
            Q(
                f"sum by (api, status_class) (rate(assistants_audit_api_requests_total[{RATE}]))",
                "{{api}} {{status_class}}",
            ),
            stacked=True,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            "Latency by API family (p50 / p95)",
            "Request received to last byte forwarded, per API family. Responses creates answer in one "
            "call what a polled run needs many for, so expect fewer, longer requests after a move.",
            "s",
            *(quantile(q, "assistants_audit_api_request_duration_seconds", ["api"]) for q in (0.5, 0.95)),
        )
    )
    return d


DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "latency": latency,
    "failures": failures,
    "vector-stores": vector_stores,
    "cost": cost,
    "responses": responses,
}
