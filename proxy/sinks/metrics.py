"""Prometheus metrics for every exchange, run, response, tool call and vector store.

Every metric is bound to the registry passed in. Runs count once, when a snapshot first shows
a terminal status; per-run, per-tool-call and per-store state is kept in bounded LRUs so memory
stays flat however long the proxy runs. No label ever carries a run, thread, message, file or
key id; vector store ids appear only on the per-store gauges, capped to the N largest stores, and
assistant ids only on the token and cost counters, capped to ASSISTANT_LABEL_LIMIT (then "other").
Every other label value comes from a fixed vocabulary (FIXED_LABELS) or a capped set
(CAPPED_LABELS), and each metric holds at most SERIES_LIMIT label sets, so nothing a client or
an upstream sends can grow the exposition past `series_bound`.

The sink lives in the recorder process, which sees every worker's exchanges through the journal:
one registry, served to the admin listener by the supervisor (no multiprocess files).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from analytics.prices import Prices
from proxy.config import Settings
from proxy.serving.exchange import Exchange
from proxy.assistants.facts import (
    MAX_USAGE_TOKENS,
    USAGE_INVALID_REASONS,
    ExchangeFact,
    Fact,
    FileSearchResultFact,
    RunSnapshot,
    StepSnapshot,
    ToolCallFact,
    VectorStoreObservation,
)
from proxy.assistants.routes import APIS, ASSISTANTS, OPENAI, OPERATIONS, PROVIDERS, RESPONSES
from proxy.lru import LRU
from proxy.responses.facts import RESPONSE_USAGE_INVALID_REASONS, TOOL_CALL_TYPE_NAMES, ResponseSnapshot, ResponseToolCallFact
from proxy.sinks.common import (
    GENAI_OPERATION_NAMES,
    GENERATIONS,
    TERMINAL_RESPONSE_STATUSES,
    TERMINAL_RUN_STATUSES,
    api_generation,
    genai_operation,
    response_stop_reason,
    run_ended_at,
)

log = logging.getLogger("assistants_audit.metrics")

# GenAI semantic-convention bucket boundaries (gen_ai.client.operation.duration / token.usage).
GENAI_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
GENAI_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
EXCHANGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
RUN_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
POLL_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233)
RESULT_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50)
FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

UNKNOWN = "unknown"
ASSISTANT_LABEL_LIMIT = 50  # distinct `assistant` label values on the token and cost counters
MODEL_LABEL_LIMIT = 100
SDK_LABEL_LIMIT = 20  # distinct (sdk_lang, sdk_version) pairs
WORKER_LABEL_LIMIT = 64
# Label sets per metric; past it a new combination is counted under all-"other" labels (the
# OpenTelemetry SDK's cardinality limit with its overflow series, for the same reason).
SERIES_LIMIT = 1000
OTHER = "other"
GIB = 1024**3

_UPSTREAM_ERROR_KINDS = {
    "upstream_unreachable": "unreachable",
    "upstream_timeout": "timeout",
    "upstream_reset": "reset",
}
_SAFE_LABEL = re.compile(r"^[A-Za-z0-9_.:/=+-]{1,64}$")
_HTTP_STATUS = re.compile(r"(?:http_)?(\d{3})")

# Run `last_error.code` values the API documents.
_RUN_ERROR_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt"})
# A response's `error.code` (the spec's ResponseErrorCode) and `incomplete_details.reason` values.
_RESPONSE_ERROR_CODES = frozenset({
    "server_error", "rate_limit_exceeded", "invalid_prompt", "data_residency_mismatch", "bio_policy",
    "vector_store_timeout", "invalid_image", "invalid_image_format", "invalid_base64_image", "invalid_image_url",
    "image_too_large", "image_too_small", "image_parse_error", "image_content_policy_violation",
    "invalid_image_mode", "image_file_too_large", "unsupported_image_media_type", "empty_image_file",
    "failed_to_download_image", "image_file_not_found",
})
_INCOMPLETE_REASONS = frozenset({"max_output_tokens", "content_filter"})
# Error types worth a series of their own: the proxy's own (proxy.serving.forward, proxy.serving.guard), OpenAI's
# error `type`s, and the HTTP statuses the API documents. Anything else is "other".
_ERROR_TYPES = frozenset({
    "upstream_unreachable", "upstream_timeout", "upstream_reset", "upstream_error", "client_disconnected",
    *_RESPONSE_ERROR_CODES, "proxy_shutdown", "invalid_request", "invalid_request_target", "method_not_allowed",
    "request_header_fields_too_large", "request_too_large", "request_target_too_long", "invalid_proxy_key",
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error", "conflict_error",
    "unprocessable_entity_error", "rate_limit_error", "server_error", "api_error", "insufficient_quota", "error",
    *(f"http_{code}" for code in (400, 401, 403, 404, 405, 408, 409, 413, 414, 415, 422, 429, 431,
                                   500, 502, 503, 504)),
})
_TOOL_TYPES = frozenset({"code_interpreter", "file_search", "retrieval", "function"})
_BETA_HEADERS = frozenset({"assistants=v1", "assistants=v2"})
_STORE_ERROR_KINDS = frozenset({"disk_full", "read_only", "io"})  # proxy.sinks.store.error_kind

# The values each label may take. Labels in CAPPED_LABELS take free-form values, the first N
# distinct ones seen (then "other"); every other label is listed here with all its values.
FIXED_LABELS: dict[str, frozenset[str]] = {
    "operation": OPERATIONS,
    "status_class": frozenset({"1xx", "2xx", "3xx", "4xx", "5xx", OTHER, "error"}),
    "api_version": frozenset({"v1", "v2", UNKNOWN}),
    "stream": frozenset({"true", "false"}),
    "gen_ai_operation_name": GENAI_OPERATION_NAMES,
    "gen_ai_provider_name": PROVIDERS,
    "error_type": _ERROR_TYPES | {"", OTHER},
    "gen_ai_token_type": frozenset({"input", "output"}),
    # cached_input is part of input, reasoning part of output (generation_tokens_total only)
    "token_type": frozenset({"input", "output", "cached_input", "reasoning"}),
    "status": TERMINAL_RUN_STATUSES | {"in_progress", "cancelled"},  # runs, responses; vector store files
    "last_error_code": _RUN_ERROR_CODES | {"", OTHER},
    "status_reason": _RESPONSE_ERROR_CODES | _INCOMPLETE_REASONS | {"", "failed", "incomplete", OTHER},
    "type": _TOOL_TYPES | frozenset(TOOL_CALL_TYPE_NAMES) | {OTHER},  # Assistants and Responses tool calls
    "api": frozenset(APIS) | {OTHER},  # proxy.assistants.routes.APIS
    "generation": frozenset(GENERATIONS),  # proxy.sinks.common.api_generation
    "mode": frozenset({"sync", "stream", "background"}),
    "kind": frozenset({"tokens", "code_interpreter_session",  # cost
                       "unreachable", "timeout", "reset", "http_5xx", "http_429",  # upstream errors
                       *_STORE_ERROR_KINDS, OTHER}),  # store errors
    "beta_header": _BETA_HEADERS | {"none", OTHER},
    "outcome": frozenset({"ok", "error"}),
    "reason": frozenset(USAGE_INVALID_REASONS) | frozenset(RESPONSE_USAGE_INVALID_REASONS),
    "object": frozenset({"run", "step", "response"}),
}
CAPPED_LABELS: dict[str, int] = {
    "model": MODEL_LABEL_LIMIT,
    "gen_ai_request_model": MODEL_LABEL_LIMIT,
    "assistant": ASSISTANT_LABEL_LIMIT,
    "sdk_lang": SDK_LABEL_LIMIT,
    "sdk_version": SDK_LABEL_LIMIT,
    "worker": WORKER_LABEL_LIMIT,
    "vector_store_id": 0,  # --vector-store-gauge-limit: the N largest stores, chosen at scrape time
}


class LabelCap:
    """Admits at most `limit` distinct values of a free-form label; later newcomers become
    "other". Values that look like anything but a short token are "other" too."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str | None, missing: str = UNKNOWN) -> str:
        if value is None or value == "":
            return missing
        if not _SAFE_LABEL.match(value):
            return OTHER
        if value in self._seen:
            return value
        if len(self._seen) >= self.limit:
            return OTHER
        self._seen.add(value)
        return value


def status_class(status: int | None) -> str:
    if not status:
        return "error"
    return f"{status // 100}xx" if 100 <= status < 600 else OTHER


def _fixed(label: str, value: str | None, missing: str = "") -> str:
    if not value:
        return missing
    return value if value in FIXED_LABELS[label] else OTHER


def error_label(error: str | None) -> str:
    """An exchange's error as a GenAI `error_type`: a known type, an HTTP status the API
    documents (`http_404`), or "other"."""
    if not error:
        return ""
    m = _HTTP_STATUS.fullmatch(error)
    return _fixed("error_type", f"http_{m.group(1)}" if m else error)


def api_version_label(version: str | None) -> str:
    return version if version in ("v1", "v2") else UNKNOWN


def _usage_ok(tokens: Iterable[int | None]) -> bool:
    return all(n is None or (type(n) is int and 0 <= n <= MAX_USAGE_TOKENS) for n in tokens)


def _ts(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt is not None else None


@dataclass(slots=True)
class _RunState:
    polls: int = 0
    unchanged_polls: int = 0
    last_status: str | None = None
    terminal: bool = False
    model: str | None = None
    assistant: str | None = None
    generation: str = "other"


@dataclass(slots=True)
class _ResponseState:
    terminal: bool = False
    background: bool = False
    model: str | None = None


@dataclass(frozen=True, slots=True)
class VectorStoreState:
    """The latest observation of one vector store, as the gauges need it."""

    vector_store_id: str
    observed_at: float
    usage_bytes: int
    files_in_progress: int
    files_completed: int
    files_failed: int
    files_cancelled: int
    last_active_at: float | None
    expires_at: float | None


class VectorStoreCollector:
    """Exposes the vector-store gauges at scrape time: org-wide totals over every live store,
    per-store gauges only for the `limit` largest (so the series count is capped), and idle
    time computed against the scrape clock."""

    def __init__(
        self,
        states: Callable[[], Iterable[VectorStoreState]],
        limit: int,
        *,
        usd_per_gib_day: float,
        free_gib: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._states = states
        self.limit = limit
        self.usd_per_gib_day = usd_per_gib_day
        self.free_gib = free_gib
        self._clock = clock

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        vs = ["vector_store_id"]
        return (
            GaugeMetricFamily("assistants_audit_vector_store_usage_bytes", "Vector store usage (top N stores by size)", labels=vs),
            GaugeMetricFamily("assistants_audit_vector_store_files", "Files per vector store by status (top N)", labels=[*vs, "status"]),
            GaugeMetricFamily("assistants_audit_vector_store_expires_at_seconds", "Expiry time, unix seconds (top N, stores with expiry)", labels=vs),
            GaugeMetricFamily("assistants_audit_vector_store_idle_seconds", "Seconds since last_active_at (top N)", labels=vs),
            GaugeMetricFamily("assistants_audit_vector_stores", "Live vector stores known"),
            GaugeMetricFamily("assistants_audit_vector_store_total_usage_bytes", "Usage of all live vector stores"),
            GaugeMetricFamily("assistants_audit_vector_store_storage_cost_usd_per_day", "Org-wide storage cost per day (first GiB free)"),
        )

    def collect(self) -> Iterable[GaugeMetricFamily]:
        usage, files, expires, idle, count, total, cost = self._families()
        states = list(self._states())
        now = self._clock()
        top = sorted(states, key=lambda s: (-s.usage_bytes, s.vector_store_id))[: self.limit]
        for s in top:
            usage.add_metric([s.vector_store_id], s.usage_bytes)
            for status, n in (
                ("in_progress", s.files_in_progress),
                ("completed", s.files_completed),
                ("failed", s.files_failed),
                ("cancelled", s.files_cancelled),
            ):
                files.add_metric([s.vector_store_id, status], n)
            if s.expires_at is not None:
                expires.add_metric([s.vector_store_id], s.expires_at)
            if s.last_active_at is not None:
                idle.add_metric([s.vector_store_id], max(0.0, now - s.last_active_at))
        total_bytes = sum(s.usage_bytes for s in states)
        count.add_metric([], len(states))
        total.add_metric([], total_bytes)
        cost.add_metric([], max(0.0, total_bytes / GIB - self.free_gib) * self.usd_per_gib_day)
        return (usage, files, expires, idle, count, total, cost)


class StoreHealth:
    """What the audit store's recorder reports about itself. The recorder calls these from
    its own thread."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_depth = Gauge(
            "assistants_audit_store_queue_depth", "Exchanges waiting to be parsed and written",
            registry=registry,
        )
        self.flush_seconds = Histogram(
            "assistants_audit_store_flush_seconds", "Time to flush a batch to the store",
            registry=registry, buckets=FLUSH_BUCKETS,
        )
        self.spooled_records = Gauge(
            "assistants_audit_store_spooled_records", "Records in the on-disk journal not yet in the store",
            registry=registry,
        )
        self.lost_records = Counter(
            "assistants_audit_store_lost_records_total", "Records that could not be recorded (must stay 0)",
            registry=registry,
        )
        self.errors = Counter(
            "assistants_audit_store_errors_total", "Store write errors by kind", ["kind"], registry=registry,
        )
        self.lag_bytes = Gauge(
            "assistants_audit_recorder_lag_bytes",
            "Journal bytes the workers wrote that the recorder process has not stored yet",
            registry=registry,
        )
        self.bodies_dropped = Counter(
            "assistants_audit_bodies_dropped_total",
            "Exchanges journaled without their bodies because the recorder was past --max-recorder-lag",
            registry=registry,
        )

    def set_queue(self, depth: int, spooled: int) -> None:
        self.queue_depth.set(depth)
        self.spooled_records.set(spooled)

    def observe_flush(self, seconds: float) -> None:
        self.flush_seconds.observe(seconds)

    def lost(self, n: int = 1) -> None:
        self.lost_records.inc(n)

    def error(self, kind: str) -> None:
        self.errors.labels(kind=_fixed("kind", kind, missing=OTHER)).inc()


class MetricsSink:
    """proxy.recording.dispatch.Sink that turns exchanges and facts into Prometheus samples."""

    def __init__(
        self,
        registry: CollectorRegistry,
        settings: Settings,
        prices: Prices | None = None,
        *,
        clock: Callable[[], float] = time.time,
        max_runs: int = 20_000,
        max_tool_calls: int = 50_000,
        max_vector_stores: int = 10_000,
        max_responses: int = 20_000,
    ) -> None:
        self.registry = registry
        self.prices = prices if prices is not None else Prices.load(settings.prices)
        self._clock = clock
        self._runs: LRU[str, _RunState] = LRU(max_runs)
        self._tool_calls: LRU[str, list[bool]] = LRU(max_tool_calls)  # [counted, results counted]
        self._responses: LRU[str, _ResponseState] = LRU(max_responses)
        self._response_tool_calls: LRU[str, bool] = LRU(max_tool_calls)
        self._ci_sessions: LRU[str, float] = LRU(max_runs)  # thread -> session start
        self._vector_stores: LRU[str, VectorStoreState] = LRU(max_vector_stores)
        self._deleted_stores: LRU[str, float] = LRU(max_vector_stores)
        self._vs_lock = threading.Lock()  # the scrape reads the stores from another thread
        self._recorder: Any = None
        self._seen_lost = 0
        self._seen_bodies_dropped = 0
        self._seen_errors: dict[str, int] = {}
        self._models = LabelCap(MODEL_LABEL_LIMIT)
        self._sdks = LabelCap(SDK_LABEL_LIMIT)
        # Assistant ids are not secret nor per-request, but an org can have thousands: the
        # first ASSISTANT_LABEL_LIMIT get their own series, the rest are "other".
        self._assistants = LabelCap(ASSISTANT_LABEL_LIMIT)
        self._workers = LabelCap(WORKER_LABEL_LIMIT)
        # (metric, label values) -> child: prometheus_client's labels() validates and locks on
        # every call, the largest part of this sink's per-exchange cost. At most SERIES_LIMIT
        # (+1 overflow) entries per metric, so this map is bounded too.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._series: dict[int, int] = {}  # id(metric) -> label sets created
        self._invalid_steps: LRU[str, bool] = LRU(max_tool_calls)
        r = registry

        ex = ["operation", "status_class", "api_version"]
        self.exchanges = Counter("assistants_audit_exchanges_total", "Proxied client exchanges", ex, registry=r)
        self.exchange_duration = Histogram(
            "assistants_audit_exchange_duration_seconds", "Request received to last byte forwarded", ex,
            registry=r, buckets=EXCHANGE_BUCKETS,
        )
        self.exchange_ttfb = Histogram(
            "assistants_audit_exchange_ttfb_seconds", "Request received to upstream response head (first event when streamed)",
            [*ex, "stream"], registry=r, buckets=EXCHANGE_BUCKETS,
        )
        self.proxy_overhead = Histogram(
            "assistants_audit_proxy_overhead_seconds", "Time spent in the proxy's own code", ["operation"],
            registry=r, buckets=OVERHEAD_BUCKETS,
        )
        self.upstream_seconds = Histogram(
            "assistants_audit_upstream_seconds", "Time not spent in the proxy (waiting on upstream)", ["operation"],
            registry=r, buckets=EXCHANGE_BUCKETS,
        )
        self.genai_duration = Histogram(
            "gen_ai_client_operation_duration_seconds", "GenAI operation duration",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"],
            registry=r, buckets=GENAI_DURATION_BUCKETS,
        )
        self.genai_tokens = Histogram(
            "gen_ai_client_token_usage", "Tokens per GenAI operation",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"],
            registry=r, buckets=GENAI_TOKEN_BUCKETS,
        )
        self.runs = Counter(
            "assistants_audit_runs_total", "Runs by terminal status", ["status", "model", "last_error_code"], registry=r,
        )
        self.run_queue = Histogram(
            "assistants_audit_run_queue_seconds", "Run created_at to started_at", ["model"], registry=r, buckets=RUN_BUCKETS,
        )
        self.run_execution = Histogram(
            "assistants_audit_run_execution_seconds", "Run started_at to its end", ["model"], registry=r, buckets=RUN_BUCKETS,
        )
        self.run_polls = Histogram(
            "assistants_audit_run_polls", "Retrieve calls per run, at its end", ["model"], registry=r, buckets=POLL_BUCKETS,
        )
        self.run_unchanged_polls = Histogram(
            "assistants_audit_run_unchanged_polls", "Retrieve calls per run that saw no status change",
            ["model"], registry=r, buckets=POLL_BUCKETS,
        )
        self.tool_calls = Counter("assistants_audit_tool_calls_total", "Tool calls by type", ["type"], registry=r)
        self.file_search_results = Histogram(
            "assistants_audit_file_search_results", "Results per file_search call", registry=r, buckets=RESULT_BUCKETS,
        )
        self.tokens = Counter(
            "assistants_audit_tokens_total", "Run tokens", ["model", "assistant", "token_type"], registry=r,
        )
        self.cost = Counter("assistants_audit_cost_usd_total", "Cost in USD", ["model", "assistant", "kind"], registry=r)
        self.ci_sessions = Counter(
            "assistants_audit_code_interpreter_sessions_total", "Code interpreter sessions (per thread per hour)", registry=r,
        )
        self.requests_by_version = Counter(
            "assistants_audit_requests_by_version_total", "Client requests by beta header, API version and SDK",
            ["beta_header", "api_version", "sdk_lang", "sdk_version"], registry=r,
        )
        self.upstream_errors = Counter(
            "assistants_audit_upstream_errors_total", "Upstream failures by kind and operation", ["kind", "operation"],
            registry=r,
        )
        self.enrichment_calls = Counter(
            "assistants_audit_enrichment_calls_total", "Calls the proxy made to fill gaps", ["outcome"], registry=r,
        )
        self.worker_exchanges = Counter(
            "assistants_audit_worker_exchanges_total", "Client exchanges by proxy worker (load balance)", ["worker"],
            registry=r,
        )
        self.unpriced_tokens = Counter(
            "assistants_audit_unpriced_tokens_total", "Run tokens of models without a price", ["model"], registry=r,
        )
        self.invalid_usage = Counter(
            "assistants_audit_invalid_usage_total",
            "Runs and steps whose reported usage was impossible (not priced)", ["object", "reason"], registry=r,
        )
        # Per API family and generation: the migration from the Assistants API to the Responses
        # API (and to Foundry agents), seen on both sides with the same labels. No model label
        # here: the per-model view is gen_ai_client_* (the conventions' own) and the run metrics.
        self.api_requests = Counter(
            "assistants_audit_api_requests_total", "Client requests by API family (assistants, responses, ...)",
            ["api", "status_class"], registry=r,
        )
        self.api_request_duration = Histogram(
            "assistants_audit_api_request_duration_seconds", "Request received to last byte forwarded, by API family",
            ["api"], registry=r, buckets=EXCHANGE_BUCKETS,
        )
        self.generation_calls = Counter(
            "assistants_audit_generation_calls_total",
            "Client calls by API generation (assistants_v1, assistants_v2, responses, foundry_agents, shared, other)",
            ["generation"], registry=r,
        )
        self.generation_tokens = Counter(
            "assistants_audit_generation_tokens_total",
            "Tokens of finished runs and responses by API generation (cached_input is part of input, reasoning of output)",
            ["generation", "token_type"], registry=r,
        )
        self.generation_cost = Counter(
            "assistants_audit_generation_cost_usd_total", "Estimated cost in USD by API generation",
            ["generation", "kind"], registry=r,
        )
        self.api_tool_calls = Counter(
            "assistants_audit_api_tool_calls_total", "Tool calls by API family and type", ["api", "type"], registry=r,
        )
        self.responses = Counter(
            "assistants_audit_responses_total", "Responses by terminal status, and why a failed or incomplete one stopped",
            ["status", "status_reason"], registry=r,
        )
        self.response_duration = Histogram(
            "assistants_audit_response_duration_seconds",
            "Responses: create to last event (sync, stream), created_at to completion (background)",
            ["mode"], registry=r, buckets=GENAI_DURATION_BUCKETS,
        )
        self.response_first_event = Histogram(
            "assistants_audit_response_time_to_first_event_seconds",
            "Streamed responses: request received to the first event relayed", registry=r,
            buckets=GENAI_DURATION_BUCKETS,
        )
        self.store = StoreHealth(r)

        prices = self.prices
        self.vector_store_collector = VectorStoreCollector(
            self._vector_store_states,
            settings.vector_store_gauge_limit,
            usd_per_gib_day=prices.storage_usd_per_gib_day,
            free_gib=prices.free_storage_gib,
            clock=clock,
        )
        r.register(self.vector_store_collector)

    # -- Sink -------------------------------------------------------------------------------

    def on_exchange(self, exchange: Exchange, facts: Sequence[Fact]) -> None:
        ef = facts[0] if facts and isinstance(facts[0], ExchangeFact) else None
        self._exchange(exchange, ef, facts)
        provider = ef.provider if ef is not None else "openai"
        api = ef.api if ef is not None else None
        for fact in facts:
            if isinstance(fact, RunSnapshot):
                self._run(fact, provider, api)
            elif isinstance(fact, ResponseSnapshot):
                self._response(fact, exchange, ef)
            elif isinstance(fact, ResponseToolCallFact):
                self._response_tool_call(fact)
            elif isinstance(fact, ToolCallFact):
                self._tool_call(fact, api)
            elif isinstance(fact, FileSearchResultFact):
                pass  # result_count on the tool call is the per-call number
            elif isinstance(fact, VectorStoreObservation):
                self._vector_store(fact)
            elif isinstance(fact, StepSnapshot) and fact.usage_invalid:
                self._invalid_step(fact)

    def flush(self) -> None:
        if self._recorder is not None:
            self._read_recorder(self._recorder)

    def bind_recorder(self, recorder: Any) -> None:
        """Report the audit store's health: flush durations as they happen, the recorder's
        counters (queue_depth, spooled_records, lost_records, errors) on each flush tick."""
        self._recorder = recorder
        observers = getattr(recorder, "flush_observers", None)
        if isinstance(observers, list):
            observers.append(self.store.observe_flush)

    def _read_recorder(self, recorder: Any) -> None:
        self.store.set_queue(int(getattr(recorder, "queue_depth", 0)), int(getattr(recorder, "spooled_records", 0)))
        # the recorder's counters are cumulative: add what is new since the last tick
        lost = int(getattr(recorder, "lost_records", 0))
        if lost > self._seen_lost:
            self.store.lost(lost - self._seen_lost)
            self._seen_lost = lost
        self.store.lag_bytes.set(int(getattr(recorder, "lag_bytes", 0)))
        dropped = int(getattr(recorder, "bodies_dropped", 0))
        if dropped > self._seen_bodies_dropped:
            self.store.bodies_dropped.inc(dropped - self._seen_bodies_dropped)
            self._seen_bodies_dropped = dropped
        for kind, n in dict(getattr(recorder, "errors", {}) or {}).items():
            seen = self._seen_errors.get(kind, 0)
            if n > seen:
                self._child(self.store.errors, _fixed("kind", kind)).inc(n - seen)
                self._seen_errors[kind] = n

    def close(self) -> None:
        self.flush()

    # -- exchanges --------------------------------------------------------------------------

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            created = self._series.get(id(metric), 0)
            if created >= SERIES_LIMIT:
                return self._child_overflow(metric, len(values))
            self._series[id(metric)] = created + 1
            child = self._children[key] = metric.labels(*values)
        return child

    def _child_overflow(self, metric: Any, n: int) -> Any:
        key = (id(metric), (OTHER,) * n)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*key[1])
        return child

    def _exchange(self, exchange: Exchange, ef: ExchangeFact | None, facts: Sequence[Fact]) -> None:
        kind = _UPSTREAM_ERROR_KINDS.get(exchange.error_type or "")
        if kind is None and exchange.status is not None:
            kind = "http_429" if exchange.status == 429 else "http_5xx" if exchange.status >= 500 else None
        operation = _fixed("operation", ef.operation if ef else None, missing=OTHER)
        if kind is not None:
            self._child(self.upstream_errors, kind, operation).inc()
        if exchange.origin == "enrichment":
            ok = exchange.error_type is None and exchange.status is not None and exchange.status < 400
            self._child(self.enrichment_calls, "ok" if ok else "error").inc()
        if exchange.origin != "client":
            return  # the proxy's own calls are not client traffic

        api_version = api_version_label(ef.api_version if ef else None)
        sc = status_class(exchange.status)
        self._child(self.worker_exchanges, self._workers(exchange.worker)).inc()
        self._child(self.exchanges, operation, sc, api_version).inc()
        self._child(self.exchange_duration, operation, sc, api_version).observe(exchange.duration_s)
        stream = bool(ef and ef.stream)
        first_event = exchange.extra.get("first_event_s") if stream else None
        ttfb = float(first_event) if first_event is not None else exchange.ttfb_s
        if ttfb is not None:
            self._child(self.exchange_ttfb, operation, sc, api_version, "true" if stream else "false").observe(ttfb)
        api = _fixed("api", ef.api if ef else None, missing=OTHER)
        self._child(self.api_requests, api, sc).inc()
        self._child(self.api_request_duration, api).observe(exchange.duration_s)
        self._child(self.generation_calls,
                    api_generation(ef.api, ef.operation, ef.api_version) if ef else "other").inc()
        if first_event is not None and ef is not None and ef.operation == "responses.create":
            self.response_first_event.observe(float(first_event))
        self._child(self.proxy_overhead, operation).observe(exchange.proxy_overhead_s)
        upstream_s = exchange.extra.get("upstream_s")  # measured by the forwarder when it can
        self._child(self.upstream_seconds, operation).observe(
            float(upstream_s) if upstream_s is not None else max(0.0, exchange.duration_s - exchange.proxy_overhead_s)
        )
        if ef is None:
            return
        sdk_lang, sdk_version = self._sdk(ef.sdk_lang, ef.sdk_version)
        self._child(
            self.requests_by_version,
            _fixed("beta_header", ef.beta_header and ef.beta_header.strip().lower(), missing="none"),
            api_version,
            sdk_lang,
            sdk_version,
        ).inc()
        genai_op = genai_operation(ef.operation)
        if genai_op is not None:
            error = exchange.error_type or ef.error_type or (str(exchange.status) if (exchange.status or 0) >= 400 else "")
            if not error and ef.operation == "responses.create":
                # a response that failed was answered 200: the operation still ended in its error
                failed = next((f for f in facts if isinstance(f, ResponseSnapshot) and f.status == "failed"), None)
                error = (failed.error_code or "failed") if failed is not None else ""
            self._child(
                self.genai_duration,
                genai_op, _fixed("gen_ai_provider_name", ef.provider, missing=OPENAI), self._models(ef.model),
                error_label(error),
            ).observe(exchange.duration_s)

    def _sdk(self, lang: str | None, version: str | None) -> tuple[str, str]:
        """One cap for the pair: capping each label alone would still allow every lang x version."""
        if not lang and not version:
            return "none", "none"
        lang, version = lang or "none", version or "none"
        if self._sdks(f"{lang}/{version}", missing=OTHER) == OTHER:
            return OTHER, OTHER
        return lang, version

    # -- runs ---------------------------------------------------------------------------------

    def _run(self, run: RunSnapshot, provider: str, api: str | None) -> None:
        state = self._runs.setdefault(run.run_id, _RunState)
        if state.terminal:
            return  # counted already; later polls of a finished run change nothing
        state.generation = api_generation(api, "runs", run.api_version)
        if run.model:
            state.model = run.model
        if run.assistant_id:
            state.assistant = run.assistant_id
        if run.source == "retrieve":
            state.polls += 1
            if run.status == state.last_status:
                state.unchanged_polls += 1
        state.last_status = run.status or state.last_status
        if run.status not in TERMINAL_RUN_STATUSES:
            return
        state.terminal = True
        model = self._models(state.model)
        assistant = self._assistants(state.assistant)
        self._child(self.runs, run.status, model, _fixed("last_error_code", run.last_error_code)).inc()
        created, started, ended = _ts(run.created_at), _ts(run.started_at), _ts(run_ended_at(run))
        if created is not None and started is not None:
            self._child(self.run_queue, model).observe(max(0.0, started - created))
        if started is not None and ended is not None:
            self._child(self.run_execution, model).observe(max(0.0, ended - started))
        self._child(self.run_polls, model).observe(state.polls)
        self._child(self.run_unchanged_polls, model).observe(state.unchanged_polls)
        tokens_in, tokens_out = run.prompt_tokens, run.completion_tokens
        invalid = run.usage_invalid
        if invalid is None and not _usage_ok((tokens_in, tokens_out, run.total_tokens)):
            invalid = "malformed"  # facts not built by proxy.assistants.parse: the same rule, here too
        if invalid is not None:
            self._child(self.invalid_usage, "run", _fixed("reason", invalid, missing=OTHER)).inc()
            return  # impossible usage is neither counted as tokens nor priced
        provider = _fixed("gen_ai_provider_name", provider, missing=OPENAI)
        for token_type, n in (("input", tokens_in), ("output", tokens_out)):
            if n is not None:
                self._child(self.tokens, model, assistant, token_type).inc(n)
                self._child(self.genai_tokens, "invoke_agent", provider, model, token_type).observe(n)
                self._child(self.generation_tokens, state.generation, token_type).inc(n)
        if tokens_in or tokens_out:
            at = run.created_at or run.observed_at
            try:
                usd, _source = self.prices.token_cost(state.model or "", tokens_in or 0, tokens_out or 0, at)
            except Exception:
                log.exception("pricing %s failed", state.model)
                usd = None
            if usd is None:
                self._child(self.unpriced_tokens, model).inc((tokens_in or 0) + (tokens_out or 0))
            else:
                self._child(self.cost, model, assistant, "tokens").inc(usd)
                self._child(self.generation_cost, state.generation, "tokens").inc(usd)

    def _invalid_step(self, step: StepSnapshot) -> None:
        if self._invalid_steps.get(step.step_id):
            return  # a step listed again is still one step
        self._invalid_steps.put(step.step_id, True)
        self._child(self.invalid_usage, "step", _fixed("reason", step.usage_invalid, missing=OTHER)).inc()

    def _tool_call(self, call: ToolCallFact, api: str | None) -> None:
        flags = self._tool_calls.setdefault(call.tool_call_id, lambda: [False, False])
        if not flags[0] and call.type:
            flags[0] = True
            tool_type = _fixed("type", call.type, missing=OTHER)
            self._child(self.tool_calls, tool_type).inc()
            self._child(self.api_tool_calls, _fixed("api", api, missing=ASSISTANTS), tool_type).inc()
            if call.type == "code_interpreter":
                self._code_interpreter_session(call)
        if not flags[1] and call.type == "file_search" and call.result_count is not None:
            flags[1] = True
            self.file_search_results.observe(call.result_count)

    def _code_interpreter_session(self, call: ToolCallFact) -> None:
        at = call.observed_at.timestamp()
        thread = call.thread_id or call.run_id or call.tool_call_id
        start = self._ci_sessions.get(thread)
        session_s = self.prices.code_interpreter_session_seconds
        if start is not None and 0 <= at - start < session_s:
            return
        self._ci_sessions.put(thread, at)
        self.ci_sessions.inc()
        run = self._runs.get(call.run_id) if call.run_id else None
        model, assistant = (run.model, run.assistant) if run else (None, None)
        usd = self.prices.code_interpreter_usd_per_session
        self._child(self.cost, self._models(model), self._assistants(assistant), "code_interpreter_session").inc(usd)
        self._child(self.generation_cost, run.generation if run else "other", "code_interpreter_session").inc(usd)

    # -- responses ----------------------------------------------------------------------------

    def _response(self, response: ResponseSnapshot, exchange: Exchange, ef: ExchangeFact | None) -> None:
        """A response counts once, when a snapshot first shows it finished (like a run)."""
        state = self._responses.setdefault(response.response_id, _ResponseState)
        if state.terminal or response.deleted:
            return
        state.background = state.background or response.background is True
        state.model = response.model or state.model
        if response.status not in TERMINAL_RESPONSE_STATUSES:
            return
        state.terminal = True
        self._child(self.responses, response.status,
                    _fixed("status_reason", response_stop_reason(response), missing="")).inc()
        if state.background:
            end = response.completed_at or response.observed_at
            if response.created_at is not None:
                self._child(self.response_duration, "background").observe(
                    max(0.0, (end - response.created_at).total_seconds()))
        elif ef is not None and ef.operation == "responses.create":
            # the client waited for the whole exchange (a stream: to its last event)
            self._child(self.response_duration, "stream" if response.streamed else "sync").observe(exchange.duration_s)
        if response.usage_invalid is not None:
            self._child(self.invalid_usage, "response", _fixed("reason", response.usage_invalid, missing=OTHER)).inc()
            return  # refused usage is neither counted nor priced
        if response.input_tokens is None and response.output_tokens is None:
            return  # cancelled, or failed before any work: nothing used
        provider = _fixed("gen_ai_provider_name", ef.provider if ef else None, missing=OPENAI)
        model = self._models(state.model)
        for token_type, n in (("input", response.input_tokens), ("output", response.output_tokens),
                              ("cached_input", response.cached_input_tokens), ("reasoning", response.reasoning_tokens)):
            if n is None:
                continue
            self._child(self.generation_tokens, "responses", token_type).inc(n)
            if token_type in ("input", "output"):
                self._child(self.genai_tokens, "chat", provider, model, token_type).observe(n)
        try:
            usd, _source = self.prices.token_cost(
                state.model or "", response.input_tokens or 0, response.output_tokens or 0,
                response.created_at or response.observed_at, cached_input_tokens=response.cached_input_tokens or 0)
        except Exception:
            log.exception("pricing %s failed", state.model)
            usd = None
        if usd is not None:
            self._child(self.generation_cost, "responses", "tokens").inc(usd)

    def _response_tool_call(self, call: ResponseToolCallFact) -> None:
        if call.source == "function_call_output" or self._response_tool_calls.get(call.call_id):
            return  # a tool's result sent back, or a call seen before (a stream's final output, a retrieve)
        self._response_tool_calls.put(call.call_id, True)
        self._child(self.api_tool_calls, RESPONSES, _fixed("type", call.type, missing=OTHER)).inc()

    # -- vector stores ------------------------------------------------------------------------

    def _vector_store(self, obs: VectorStoreObservation) -> None:
        with self._vs_lock:
            self._vector_store_locked(obs)

    def _vector_store_locked(self, obs: VectorStoreObservation) -> None:
        at = obs.observed_at.timestamp()
        vs_id = obs.vector_store_id
        if obs.deleted:
            self._vector_stores.pop(vs_id)
            self._deleted_stores.put(vs_id, at)
            return
        cur = self._vector_stores.get(vs_id)
        if cur is not None and cur.observed_at > at:
            return

        def keep(new: int | None, old: int) -> int:
            return new if new is not None else old

        self._vector_stores.put(
            vs_id,
            VectorStoreState(
                vector_store_id=vs_id,
                observed_at=at,
                usage_bytes=keep(obs.usage_bytes, cur.usage_bytes if cur else 0),
                files_in_progress=keep(obs.files_in_progress, cur.files_in_progress if cur else 0),
                files_completed=keep(obs.files_completed, cur.files_completed if cur else 0),
                files_failed=keep(obs.files_failed, cur.files_failed if cur else 0),
                files_cancelled=keep(obs.files_cancelled, cur.files_cancelled if cur else 0),
                last_active_at=_ts(obs.last_active_at) or (cur.last_active_at if cur else None),
                expires_at=_ts(obs.expires_at),
            ),
        )

    def _vector_store_states(self) -> list[VectorStoreState]:
        """Called by the scrape, on another thread than the sink's."""
        with self._vs_lock:
            return self._vector_stores.values()


# -- exposition -----------------------------------------------------------------------------


def metrics_handler(registry: CollectorRegistry):
    """aiohttp handler serving `registry` in the Prometheus text or OpenMetrics format (as Accept
    asks). The one exposition handler: the recorder serves its registry with it, the admin
    listener relays to that."""

    async def handle_metrics(request: web.Request) -> web.Response:
        # generate_latest walks every collector; run it off the loop so a big scrape never
        # stalls proxied traffic.
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))  # text or OpenMetrics
        body = await asyncio.get_running_loop().run_in_executor(None, encoder, registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handle_metrics


def series_count(registry: CollectorRegistry) -> int:
    """Number of exposed time series (every sample line), for cardinality checks."""
    return sum(len(m.samples) for m in registry.collect())
