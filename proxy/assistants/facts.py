"""Typed facts the parser derives from an Exchange. One fact class = one append-only store table.

Every fact is immutable and carries `exchange_id` (what produced it) and `observed_at` (when).
The store writes each fact as a row of the table named by its `TABLE`, with columns derived
from the dataclass fields (see `analytics.store.column_type`): `str`->VARCHAR, `int`->BIGINT,
`float`->DOUBLE, `bool`->BOOLEAN, `datetime`->TIMESTAMPTZ, `tuple[str, ...]`->VARCHAR[].
Views (`runs`, `run_steps`, ...) fold these observation rows into current state.

Content fields (message text, instructions, tool arguments/outputs, chunk text) are filled only
when content capture is on; otherwise they are None and only the `*_chars` length is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

# Usage the upstream reports is priced, so impossible values must not reach a price: no model's
# context comes near this many tokens in one run or step.
MAX_USAGE_TOKENS = 10_000_000
# Why a usage object was refused (`usage_invalid`); its tokens are then recorded as NULL.
USAGE_INVALID_REASONS = ("malformed", "negative", "too_large", "inconsistent")


@dataclass(frozen=True, slots=True)
class ExchangeFact:
    """Occurs once per Exchange: the request/response as a row (exchanges view)."""

    TABLE: ClassVar[str] = "exchange_log"
    exchange_id: str
    observed_at: datetime  # = started_at
    worker: str
    origin: str  # client | enrichment | sampler
    started_at: datetime
    duration_ms: float
    ttfb_ms: float | None
    proxy_overhead_ms: float
    method: str
    path: str
    route: str  # templated: /threads/{thread_id}/runs/{run_id}
    operation: str  # runs.retrieve, vector_stores.files.create, ..., other
    provider: str  # openai | azure.ai.openai | azure.ai.agents (proxy.assistants.routes)
    status_code: int | None
    beta_header: str | None  # OpenAI-Beta exactly as sent
    api_version: str | None  # v1 | v2 | None (implied by the header)
    v1_semantics: bool  # v1-only route or field seen, whatever the header says
    azure_api_version: str | None
    stream: bool
    upstream_request_id: str | None
    processing_ms: float | None
    ratelimit_remaining_requests: int | None
    ratelimit_remaining_tokens: int | None
    bytes_in: int
    bytes_out: int
    content_type: str | None
    content_encoding: str | None
    error_type: str | None  # proxy failure or upstream OpenAI error type
    error_code: str | None
    parse_error: str | None
    body_truncated: bool
    user_agent: str | None
    sdk: str | None  # "python 1.20.0" from X-Stainless-Lang / -Package-Version, "python azure-ai-agents 1.1.0" from azsdk-* User-Agents
    sdk_lang: str | None
    sdk_version: str | None
    helper: str | None  # X-Stainless-Poll-Helper / Stream-Helper value
    retry_count: int | None  # X-Stainless-Retry-Count
    key_fingerprint: str | None
    run_id: str | None
    thread_id: str | None
    assistant_id: str | None
    vector_store_id: str | None
    model: str | None
    # rate-limit headers as received (text: limits are numbers, resets are durations like "6m0s")
    ratelimit_limit_requests: str | None = None
    ratelimit_limit_tokens: str | None = None
    ratelimit_reset_requests: str | None = None
    ratelimit_reset_tokens: str | None = None
    api: str | None = None  # assistants | responses | conversations | other (proxy.assistants.routes.APIS)
    response_id: str | None = None  # the Responses API response the exchange created or named
    conversation_id: str | None = None  # the Conversations API conversation it created or named
    project: str | None = None  # Azure AI Foundry project of /api/projects/{project}/ (never a metric label)


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """Occurs whenever a run object is seen: create, poll, list item, cancel, tool outputs, stream event."""

    TABLE: ClassVar[str] = "run_snapshots"
    exchange_id: str
    seq: int  # position within the exchange (stream events, list items)
    observed_at: datetime
    source: str  # create | create_thread_and_run | retrieve | list | update | cancel | submit_tool_outputs | stream
    event: str | None  # SSE event name when streamed
    run_id: str
    thread_id: str | None
    assistant_id: str | None
    model: str | None
    status: str | None
    api_version: str | None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    cancelled_at: datetime | None
    expires_at: datetime | None
    last_error_code: str | None
    last_error_message: str | None
    incomplete_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    tools: tuple[str, ...]  # tool types enabled on the run
    streamed: bool
    required_action_count: int | None  # tool calls awaiting output
    key_fingerprint: str | None
    instructions_chars: int | None
    instructions: str | None  # content
    usage_invalid: str | None = None  # one of USAGE_INVALID_REASONS; the tokens are then None
    project: str | None = None  # Azure AI Foundry project the run was seen under


@dataclass(frozen=True, slots=True)
class StepSnapshot:
    """Occurs whenever a run step object is seen (list, retrieve, stream step events)."""

    TABLE: ClassVar[str] = "step_snapshots"
    exchange_id: str
    seq: int
    observed_at: datetime
    step_id: str
    run_id: str | None
    thread_id: str | None
    assistant_id: str | None
    type: str | None  # message_creation | tool_calls
    status: str | None
    created_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    cancelled_at: datetime | None
    expired_at: datetime | None
    last_error_code: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    message_id: str | None
    usage_invalid: str | None = None  # as on RunSnapshot


@dataclass(frozen=True, slots=True)
class ToolCallFact:
    """Occurs for each tool call seen in a step, in a run's required_action, or in submitted tool outputs."""

    TABLE: ClassVar[str] = "tool_call_log"
    exchange_id: str
    seq: int
    observed_at: datetime
    tool_call_id: str
    source: str  # step | required_action | tool_output
    step_id: str | None
    run_id: str | None
    thread_id: str | None
    type: str | None  # code_interpreter | file_search | retrieval | function
    function_name: str | None
    arguments_chars: int | None
    arguments: str | None  # content
    output_chars: int | None
    output: str | None  # content (function output or code_interpreter logs)
    code_input_chars: int | None
    code_input: str | None  # content
    code_outputs: int | None  # number of code_interpreter outputs (logs/images)
    ranker: str | None  # file_search ranking_options
    score_threshold: float | None
    result_count: int | None


@dataclass(frozen=True, slots=True)
class FileSearchResultFact:
    """Occurs for each file_search result inside a tool call (needs the `include` on steps)."""

    TABLE: ClassVar[str] = "file_search_result_log"
    exchange_id: str
    observed_at: datetime
    tool_call_id: str
    step_id: str | None
    run_id: str | None
    thread_id: str | None
    rank: int  # 1-based, in the order returned
    file_id: str | None
    file_name: str | None
    score: float | None
    content_chars: int | None
    content: str | None  # content


@dataclass(frozen=True, slots=True)
class VectorStoreObservation:
    """Occurs whenever a vector store object (or its deletion) is seen."""

    TABLE: ClassVar[str] = "vector_store_observations"
    exchange_id: str
    seq: int
    observed_at: datetime
    source: str  # create | retrieve | list | update | delete | sampler | ...
    vector_store_id: str
    name: str | None
    status: str | None
    usage_bytes: int | None  # `usage_bytes`, or the early-v2 `bytes`
    files_in_progress: int | None
    files_completed: int | None
    files_failed: int | None
    files_cancelled: int | None
    files_total: int | None
    created_at: datetime | None
    last_active_at: datetime | None
    expires_at: datetime | None
    expires_after_anchor: str | None
    expires_after_days: int | None
    deleted: bool
    key_fingerprint: str | None


@dataclass(frozen=True, slots=True)
class VectorStoreFileObservation:
    """Occurs whenever a vector store file (or batch member, or deletion) is seen."""

    TABLE: ClassVar[str] = "vector_store_file_observations"
    exchange_id: str
    seq: int
    observed_at: datetime
    vector_store_id: str | None
    file_id: str
    status: str | None
    usage_bytes: int | None
    last_error_code: str | None
    created_at: datetime | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class AssistantObservation:
    """Occurs whenever an assistant object (or its deletion) is seen."""

    TABLE: ClassVar[str] = "assistant_observations"
    exchange_id: str
    seq: int
    observed_at: datetime
    assistant_id: str
    name: str | None
    model: str | None
    api_version: str | None
    tools: tuple[str, ...]
    vector_store_ids: tuple[str, ...]  # tool_resources.file_search
    code_interpreter_file_ids: tuple[str, ...]
    file_ids: tuple[str, ...]  # v1
    created_at: datetime | None
    deleted: bool
    instructions_chars: int | None
    instructions: str | None  # content
    key_fingerprint: str | None


@dataclass(frozen=True, slots=True)
class ThreadObservation:
    """Occurs whenever a thread object (or its deletion) is seen."""

    TABLE: ClassVar[str] = "thread_observations"
    exchange_id: str
    observed_at: datetime
    thread_id: str
    created_at: datetime | None
    vector_store_ids: tuple[str, ...]
    code_interpreter_file_ids: tuple[str, ...]
    deleted: bool
    key_fingerprint: str | None


@dataclass(frozen=True, slots=True)
class MessageObservation:
    """Occurs whenever a message object is seen (create, list, retrieve, stream message events)."""

    TABLE: ClassVar[str] = "message_observations"
    exchange_id: str
    seq: int
    observed_at: datetime
    message_id: str
    thread_id: str | None
    run_id: str | None
    assistant_id: str | None
    role: str | None
    status: str | None
    created_at: datetime | None
    content_chars: int | None
    content: str | None  # content
    attachments: int | None
    file_ids: tuple[str, ...]  # v1 file_ids, or attachment file ids
    annotations: int | None


@dataclass(frozen=True, slots=True)
class AttachedFileObservation:
    """Occurs when a v1 call attaches, detaches, lists or retrieves an assistant file or a message
    file (`/assistants/{id}/files`, `/threads/{t}/messages/{id}/files`): the only news of a change
    to the owner's `file_ids` until the owner itself is seen again."""

    TABLE: ClassVar[str] = "attached_file_observations"
    exchange_id: str
    seq: int
    observed_at: datetime
    owner: str  # assistant | message
    owner_id: str
    file_id: str
    attached: bool  # False: detached (the DELETE was answered deleted)


@dataclass(frozen=True, slots=True)
class FileObservation:
    """Occurs whenever a file object (or its deletion) is seen."""

    TABLE: ClassVar[str] = "file_observations"
    exchange_id: str
    seq: int
    observed_at: datetime
    file_id: str
    filename: str | None
    purpose: str | None
    bytes: int | None
    status: str | None
    created_at: datetime | None
    deleted: bool
    key_fingerprint: str | None


FACT_TYPES: tuple[type, ...] = (
    ExchangeFact,
    RunSnapshot,
    StepSnapshot,
    ToolCallFact,
    FileSearchResultFact,
    VectorStoreObservation,
    VectorStoreFileObservation,
    AssistantObservation,
    ThreadObservation,
    MessageObservation,
    AttachedFileObservation,
    FileObservation,
)

Fact = (
    ExchangeFact
    | RunSnapshot
    | StepSnapshot
    | ToolCallFact
    | FileSearchResultFact
    | VectorStoreObservation
    | VectorStoreFileObservation
    | AssistantObservation
    | ThreadObservation
    | MessageObservation
    | AttachedFileObservation
    | FileObservation
)
