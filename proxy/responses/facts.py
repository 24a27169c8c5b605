"""Typed facts of the Responses and Conversations APIs. One fact class = one append-only store
table, written and typed exactly like the Assistants facts (proxy.assistants.facts explains the
mapping); the views in analytics/views.sql fold them (`responses`, `response_tool_calls`,
`response_file_search_results`, `conversations`).

Content fields (instructions, tool arguments/outputs, search queries, result text) are filled
only when content capture is on; otherwise they are None and only the `*_chars` length is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from proxy.assistants.facts import USAGE_INVALID_REASONS

# Why a response's usage was refused (`usage_invalid`): the Assistants reasons, and `missing`
# for a completed or incomplete response that reported no usage at all.
RESPONSE_USAGE_INVALID_REASONS = (*USAGE_INVALID_REASONS, "missing")

# Output item type -> tool call type (`response_tool_calls.type`): a fixed vocabulary. Any other
# item whose type ends in `_call` is a tool call of type `other` (its `item_type` says which).
TOOL_CALL_TYPES = {
    "function_call": "function",
    "file_search_call": "file_search",
    "web_search_call": "web_search",
    "code_interpreter_call": "code_interpreter",
    "mcp_call": "mcp",
    "image_generation_call": "image_generation",
    "computer_call": "computer",
    "custom_tool_call": "custom",
    "local_shell_call": "local_shell",
    "shell_call": "shell",
    "apply_patch_call": "apply_patch",
}
TOOL_CALL_TYPE_NAMES = (*TOOL_CALL_TYPES.values(), "other")


@dataclass(frozen=True, slots=True)
class ResponseSnapshot:
    """Occurs whenever a response object (or its deletion) is seen: create, retrieve (polls),
    cancel, delete, and each `response.*` lifecycle event of a stream."""

    TABLE: ClassVar[str] = "response_snapshots"
    exchange_id: str
    seq: int
    observed_at: datetime
    source: str  # create | retrieve | cancel | delete | stream
    event: str | None  # SSE event name when streamed (response.created, response.completed, ...)
    response_id: str
    model: str | None
    status: str | None  # queued | in_progress | completed | failed | incomplete | cancelled
    conversation_id: str | None
    previous_response_id: str | None
    background: bool | None
    store: bool | None  # the create request's `store` flag (else the response's echo of it)
    streamed: bool
    created_at: datetime | None
    completed_at: datetime | None
    error_code: str | None
    error_message: str | None
    incomplete_reason: str | None
    input_tokens: int | None
    cached_input_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    total_tokens: int | None
    usage_invalid: str | None  # one of RESPONSE_USAGE_INVALID_REASONS; the tokens are then None
    tools: tuple[str, ...]  # tool types enabled on the response
    output_types: tuple[str, ...]  # the output items' types, in order (unknown ones included)
    deleted: bool
    truncated: bool  # seen in a body cut by --body-cap (or a failure): what followed is unknown
    key_fingerprint: str | None
    sdk: str | None
    provider: str | None  # openai | azure.ai.openai
    api_version: str | None  # Azure's api-version, else the path's v1
    instructions_chars: int | None
    instructions: str | None  # content


@dataclass(frozen=True, slots=True)
class ResponseToolCallFact:
    """Occurs for each tool call item seen in a response's output (JSON, stream item events), and
    for each `function_call_output` input item a later request (or an input_items listing) sends
    back for a call."""

    TABLE: ClassVar[str] = "response_tool_call_log"
    exchange_id: str
    seq: int
    observed_at: datetime
    source: str  # output | stream | function_call_output
    response_id: str | None  # the response the item belongs to (for an output: the one it answers)
    call_id: str  # function/custom/computer calls: their call_id; other tools: the item id
    item_id: str | None
    item_type: str | None  # the output item type as sent (function_call, mcp_call, ...)
    type: str  # one of TOOL_CALL_TYPE_NAMES
    status: str | None
    name: str | None  # function, custom tool or MCP tool name
    server_label: str | None  # MCP server
    vector_store_ids: tuple[str, ...]  # file_search: the vector stores its tool searched
    container_id: str | None  # code_interpreter
    results_count: int | None  # file_search results (when included), web_search sources
    queries_count: int | None  # file_search queries
    arguments_chars: int | None
    arguments: str | None  # content: function/MCP arguments, custom tool input, code_interpreter code
    output_chars: int | None
    output: str | None  # content: function_call_output, MCP output, code_interpreter logs
    queries: tuple[str, ...] | None  # content: file_search queries, web_search query
    error: str | None  # content: the MCP/tool error as sent (truncated to 500 characters)
    # Always, so a failed call shows without --capture-content: the error object's `type`
    # (mcp_protocol_error, mcp_tool_execution_error, http_error; `error` for a bare string,
    # `other` for anything not a short identifier) and its `code` (an HTTP or MCP protocol code).
    error_type: str | None
    error_code: str | None


@dataclass(frozen=True, slots=True)
class ResponseFileSearchResultFact:
    """Occurs for each result of a file_search call (the client asked for
    `include=["file_search_call.results"]`)."""

    TABLE: ClassVar[str] = "response_file_search_result_log"
    exchange_id: str
    observed_at: datetime
    response_id: str | None
    call_id: str
    rank: int  # 1-based, in the order returned
    file_id: str | None
    filename: str | None
    score: float | None
    text_chars: int | None
    text: str | None  # content


@dataclass(frozen=True, slots=True)
class ConversationObservation:
    """Occurs whenever a conversation object (or its deletion) is seen, and when a call adds
    items to one (`items_added`)."""

    TABLE: ClassVar[str] = "conversation_observations"
    exchange_id: str
    seq: int
    observed_at: datetime
    source: str  # create | retrieve | update | delete | items.create
    conversation_id: str
    created_at: datetime | None
    deleted: bool
    items_added: int | None  # items this call added (create's `items`, items.create)
    metadata_keys: int | None
    key_fingerprint: str | None
    provider: str | None


@dataclass(frozen=True, slots=True)
class ConversationItemObservation:
    """Occurs whenever a conversation item (or its deletion) is seen: items create, list, retrieve
    and delete."""

    TABLE: ClassVar[str] = "conversation_item_observations"
    exchange_id: str
    seq: int
    observed_at: datetime
    conversation_id: str
    item_id: str
    type: str | None  # message, function_call, function_call_output, ...
    role: str | None
    created_at: datetime | None
    deleted: bool


RESPONSES_FACT_TYPES: tuple[type, ...] = (
    ResponseSnapshot,
    ResponseToolCallFact,
    ResponseFileSearchResultFact,
    ConversationObservation,
    ConversationItemObservation,
)

ResponsesFact = (
    ResponseSnapshot
    | ResponseToolCallFact
    | ResponseFileSearchResultFact
    | ConversationObservation
    | ConversationItemObservation
)
