"""Responses and Conversations exchanges -> typed facts. Called by the one parse entry
(proxy.assistants.parse.parse) for routes of those APIs, so the recorder stays one pipeline; pure
like it (same exchange in, same facts out), no I/O, no clock.

Facts: a ResponseSnapshot per response object seen (JSON answers, and every `response.*` event
of a stream that carries the response), a ResponseToolCallFact per tool call output item and per
`function_call_output` sent back, a ResponseFileSearchResultFact per included file_search result,
a ConversationObservation per conversation seen and a ConversationItemObservation per item.

A stream is read one event at a time and its deltas are never parsed, so recording a stream of
any length holds only the capped body and the items still open. Unknown event types and unknown
output item types are passed over (an unknown `*_call` item is a tool call of type `other`);
impossible usage is refused like the Assistants parser refuses it (`usage_invalid`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from proxy.assistants.routes import CONVERSATIONS, RouteInfo
from proxy.assistants.wire import (
    Body,
    Counted,
    Json,
    as_dict,
    as_float,
    as_list,
    as_str,
    refused_counts,
    salvage_members,
    ts,
)
from proxy.responses.facts import (
    TOOL_CALL_TYPES,
    ConversationItemObservation,
    ConversationObservation,
    ResponseFileSearchResultFact,
    ResponseSnapshot,
    ResponsesFact,
    ResponseToolCallFact,
)
from proxy.serving.exchange import Exchange

_SOURCES = {
    "responses.create": "create",
    "responses.retrieve": "retrieve",
    "responses.cancel": "cancel",
    "responses.delete": "delete",
    "conversations.create": "create",
    "conversations.retrieve": "retrieve",
    "conversations.update": "update",
    "conversations.delete": "delete",
    "conversations.items.create": "items.create",
    "conversations.items.list": "items.list",
    "conversations.items.retrieve": "items.retrieve",
    "conversations.items.delete": "items.delete",
}
# A response in one of these has finished and must have said what it used.
_USAGE_EXPECTED = frozenset({"completed", "incomplete"})
_ERROR_CHARS = 500
# A tool call error's `type` or `code` kept without --capture-content: an identifier or a number.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(slots=True)
class Seen:
    """What the exchange row needs from the Responses/Conversations facts."""

    facts: list[ResponsesFact] = field(default_factory=list)
    response_id: str | None = None
    conversation_id: str | None = None
    model: str | None = None
    error_type: str | None = None  # of an `error` event in a stream
    error_code: str | None = None


@dataclass(slots=True)
class _Ctx(Counted):
    ex: Exchange
    route: RouteInfo
    capture: bool
    observed_at: datetime
    source: str
    request: Json
    sdk: str | None
    truncated: bool
    seen: Seen = field(default_factory=Seen)
    seq: int = 0
    recorded_items: set[str] = field(default_factory=set)  # output item ids with a fact already

    def add(self, fact: ResponsesFact) -> None:
        self.seen.facts.append(fact)


def _text(value: object) -> str | None:
    """A string as is; any other JSON value (content parts, an action) as compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return None


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _chars(value: str | None) -> int | None:
    return len(value) if value is not None else None


# --- usage -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Usage:
    input: int | None = None
    cached: int | None = None
    output: int | None = None
    reasoning: int | None = None
    total: int | None = None
    invalid: str | None = None


def _usage(obj: Json, status: str | None, truncated: bool) -> _Usage:
    """A response's token usage, refused whole when it cannot be real (it is priced downstream)."""
    if "usage" not in obj or obj.get("usage") is None:
        # a copy cut before `usage` says nothing about it; a finished response must have one
        missing = status in _USAGE_EXPECTED and not (truncated and "usage" not in obj)
        return _Usage(invalid="missing" if missing else None)
    usage = obj["usage"]
    if not isinstance(usage, dict):
        return _Usage(invalid="malformed")
    in_details, out_details = usage.get("input_tokens_details"), usage.get("output_tokens_details")
    if not isinstance(in_details, (dict, type(None))) or not isinstance(out_details, (dict, type(None))):
        return _Usage(invalid="malformed")
    values = [usage.get("input_tokens"), as_dict(in_details).get("cached_tokens"), usage.get("output_tokens"),
              as_dict(out_details).get("reasoning_tokens"), usage.get("total_tokens")]
    refused = refused_counts(values)
    if refused:
        return _Usage(invalid=refused)
    input_, cached, output, reasoning, total = values
    if input_ is None or output is None:
        return _Usage(invalid="malformed")
    if (total is not None and input_ + output != total) or (cached is not None and cached > input_) or (
            reasoning is not None and reasoning > output):
        return _Usage(invalid="inconsistent")
    return _Usage(input_, cached, output, reasoning, total)


# --- responses -------------------------------------------------------------------------------


def _tool_types(tools: object) -> tuple[str, ...]:
    return tuple(t for t in (as_str(as_dict(tool).get("type")) for tool in as_list(tools)) if t)


def _vector_store_ids(tools: object) -> tuple[str, ...]:
    ids: list[str] = []
    for tool in as_list(tools):
        tool = as_dict(tool)
        if tool.get("type") == "file_search":
            ids.extend(v for v in as_list(tool.get("vector_store_ids")) if isinstance(v, str) and v not in ids)
    return tuple(ids)


def _conversation_id(value: object) -> str | None:
    return as_str(value) or as_str(as_dict(value).get("id"))


def _response(ctx: _Ctx, obj: Json, source: str, event: str | None) -> None:
    response_id = as_str(obj.get("id"))
    if not response_id:
        return
    ctx.seen.response_id = ctx.seen.response_id or response_id
    deleted = obj.get("deleted") is True
    status = as_str(obj.get("status"))
    usage = _usage(obj, status, ctx.truncated)
    creating = ctx.route.operation == "responses.create"
    request = ctx.request if creating else {}
    instructions = _text(obj.get("instructions"))
    error = as_dict(obj.get("error"))
    tools = obj.get("tools") if isinstance(obj.get("tools"), list) else request.get("tools")
    output = as_list(obj.get("output"))
    conversation_id = _conversation_id(obj.get("conversation")) or _conversation_id(request.get("conversation"))
    ctx.seen.conversation_id = ctx.seen.conversation_id or conversation_id
    ctx.seen.model = ctx.seen.model or as_str(obj.get("model"))
    background = obj.get("background")
    store = request.get("store") if isinstance(request.get("store"), bool) else obj.get("store")
    ctx.add(ResponseSnapshot(
        exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at, source=source, event=event,
        response_id=response_id, model=as_str(obj.get("model")), status=status, conversation_id=conversation_id,
        previous_response_id=as_str(obj.get("previous_response_id")) or as_str(request.get("previous_response_id")),
        background=background if isinstance(background, bool) else _bool(request.get("background")),
        store=_bool(store), streamed=source == "stream",
        created_at=ts(obj.get("created_at")), completed_at=ts(obj.get("completed_at")),
        error_code=as_str(error.get("code")), error_message=as_str(error.get("message")),
        incomplete_reason=as_str(as_dict(obj.get("incomplete_details")).get("reason")),
        input_tokens=usage.input, cached_input_tokens=usage.cached, output_tokens=usage.output,
        reasoning_tokens=usage.reasoning, total_tokens=usage.total, usage_invalid=usage.invalid,
        tools=_tool_types(tools),
        output_types=tuple(t for t in (as_str(as_dict(item).get("type")) for item in output) if t),
        deleted=deleted, truncated=ctx.truncated, key_fingerprint=ctx.ex.key_fingerprint, sdk=ctx.sdk,
        provider=ctx.route.provider, api_version=ctx.route.path_api_version,
        instructions_chars=_chars(instructions), instructions=ctx.content(instructions),
    ))
    vs_ids = _vector_store_ids(obj.get("tools")) or _vector_store_ids(request.get("tools"))
    for item in output:
        item = as_dict(item)
        item_id = as_str(item.get("id"))
        if item_id and item_id in ctx.recorded_items:
            continue  # a stream's output_item.done said it already
        _output_item(ctx, response_id, item, "stream" if source == "stream" else "output", vs_ids)


def _output_item(ctx: _Ctx, response_id: str | None, item: Json, source: str, vs_ids: tuple[str, ...]) -> None:
    item_type = as_str(item.get("type"))
    if not item_type:
        return
    kind = TOOL_CALL_TYPES.get(item_type) or ("other" if item_type.endswith("_call") else None)
    if kind is None:
        return  # a message, reasoning, an MCP tool listing: not a tool call
    item_id = as_str(item.get("id"))
    call_id = as_str(item.get("call_id")) or item_id
    if not call_id:
        return
    if item_id:
        ctx.recorded_items.add(item_id)
    action = as_dict(item.get("action"))
    queries: tuple[str, ...] | None = None
    results_count = None
    arguments = output = None
    if kind == "file_search":
        queries = tuple(q for q in as_list(item.get("queries")) if isinstance(q, str))
        results = item.get("results")
        if isinstance(results, list):
            results_count = len(results)
            _file_search_results(ctx, response_id, call_id, results)
    elif kind == "web_search":
        queries = tuple(q for q in [action.get("query"), *as_list(action.get("queries"))] if isinstance(q, str))
        sources = action.get("sources")
        results_count = len(sources) if isinstance(sources, list) else None
    elif kind == "code_interpreter":
        arguments = as_str(item.get("code"))
        logs = [as_str(as_dict(o).get("logs")) for o in as_list(item.get("outputs"))]
        output = "\n".join(x for x in logs if x is not None) if any(x is not None for x in logs) else None
    elif kind == "custom":
        arguments = as_str(item.get("input"))
    elif kind in ("computer", "local_shell", "shell", "apply_patch"):
        arguments = _text(item.get("action") or item.get("operation"))
    elif kind != "image_generation":  # its `result` is the image itself, not an output to keep
        arguments = _text(item.get("arguments"))
        output = _text(item.get("output"))
    error = _text(item.get("error"))
    error_type, error_code = _error_kind(item.get("error"))
    ctx.add(ResponseToolCallFact(
        exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at, source=source,
        response_id=response_id, call_id=call_id, item_id=item_id, item_type=item_type, type=kind,
        status=as_str(item.get("status")), name=as_str(item.get("name")), server_label=as_str(item.get("server_label")),
        vector_store_ids=vs_ids if kind == "file_search" else (), container_id=as_str(item.get("container_id")),
        results_count=results_count, queries_count=len(queries) if queries is not None and kind == "file_search" else None,
        arguments_chars=_chars(arguments), arguments=ctx.content(arguments),
        output_chars=_chars(output), output=ctx.content(output), queries=ctx.content(queries),
        error=ctx.content(error[:_ERROR_CHARS] if error else None), error_type=error_type, error_code=error_code,
    ))


def _error_kind(error: object) -> tuple[str | None, str | None]:
    """(type, code) of a tool call's error, safe to keep without --capture-content: the error's
    text (an MCP server's message, an echo of the arguments) may carry user data, these do not."""
    if error is None or error == "" or error == {}:
        return None, None
    if not isinstance(error, dict):
        return "error", None
    kind, code = error.get("type"), error.get("code")
    kind = kind if isinstance(kind, str) and _IDENTIFIER.fullmatch(kind) else "other"
    if isinstance(code, bool) or not isinstance(code, (int, str)) or not _IDENTIFIER.fullmatch(str(code)):
        code = None
    return kind, None if code is None else str(code)


def _file_search_results(ctx: _Ctx, response_id: str | None, call_id: str, results: list[Any]) -> None:
    for rank, result in enumerate(results, start=1):
        result = as_dict(result)
        text = as_str(result.get("text"))
        ctx.add(ResponseFileSearchResultFact(
            exchange_id=ctx.ex.exchange_id, observed_at=ctx.observed_at, response_id=response_id, call_id=call_id,
            rank=rank, file_id=as_str(result.get("file_id")), filename=as_str(result.get("filename")),
            score=as_float(result.get("score")), text_chars=_chars(text), text=ctx.content(text),
        ))


def _call_outputs(ctx: _Ctx, items: object, response_id: str | None) -> None:
    """`*_call_output` input items: a client sending a tool's result back for a call."""
    if not isinstance(items, list):
        return
    for item in items:
        item = as_dict(item)
        item_type = as_str(item.get("type")) or ""
        call_id = as_str(item.get("call_id"))
        if not item_type.endswith("_call_output") or not call_id:
            continue
        output = _text(item.get("output"))
        ctx.add(ResponseToolCallFact(
            exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at,
            source="function_call_output", response_id=response_id, call_id=call_id, item_id=as_str(item.get("id")),
            item_type=item_type, type=TOOL_CALL_TYPES.get(item_type.removesuffix("_output"), "other"),
            status=as_str(item.get("status")), name=None, server_label=None, vector_store_ids=(), container_id=None,
            results_count=None, queries_count=None, arguments_chars=None, arguments=None,
            output_chars=_chars(output), output=ctx.content(output), queries=None, error=None,
            error_type=None, error_code=None,
        ))


def _stream(ctx: _Ctx, body: Body) -> None:
    """Events one at a time: each one carrying the response is a snapshot, each output item
    done is a tool call (one still open when the stream ends is recorded as last seen)."""
    open_items: dict[str, tuple[str | None, Json]] = {}
    response_id = ctx.route.ids.get("response_id")
    vs_ids = _vector_store_ids(ctx.request.get("tools"))
    for name, data in body.events(skip=lambda n: n.endswith(".delta")):
        event = as_dict(data)
        response = event.get("response")
        if name == "error":
            err = as_dict(event.get("error")) or event
            ctx.seen.error_type = ctx.seen.error_type or as_str(err.get("type")) or "stream_error"
            if ctx.seen.error_type == "error":
                ctx.seen.error_type = "stream_error"
            ctx.seen.error_code = ctx.seen.error_code or as_str(err.get("code"))
        elif isinstance(response, dict):
            response_id = as_str(response.get("id")) or response_id
            vs_ids = _vector_store_ids(response.get("tools")) or vs_ids
            _response(ctx, response, "stream", name)
        elif name in ("response.output_item.added", "response.output_item.done"):
            item = as_dict(event.get("item"))
            key = as_str(item.get("id")) or f"#{event.get('output_index')}"
            if name.endswith(".added"):
                open_items[key] = (response_id, item)
            else:
                open_items.pop(key, None)
                _output_item(ctx, response_id, item, "stream", vs_ids)
    for item_response_id, item in open_items.values():
        if as_str(item.get("id")) not in ctx.recorded_items:
            _output_item(ctx, item_response_id, item, "stream", vs_ids)


# --- conversations ---------------------------------------------------------------------------


def _conversation(ctx: _Ctx, obj: Json, items_added: int | None = None) -> None:
    conversation_id = as_str(obj.get("id"))
    if not conversation_id:
        return
    ctx.seen.conversation_id = ctx.seen.conversation_id or conversation_id
    metadata = obj.get("metadata")
    ctx.add(ConversationObservation(
        exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at, source=ctx.source,
        conversation_id=conversation_id, created_at=ts(obj.get("created_at")), deleted=obj.get("deleted") is True,
        items_added=items_added, metadata_keys=len(metadata) if isinstance(metadata, dict) else None,
        key_fingerprint=ctx.ex.key_fingerprint, provider=ctx.route.provider,
    ))


def _items_added(ctx: _Ctx, conversation_id: str, count: int) -> None:
    ctx.add(ConversationObservation(
        exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at, source=ctx.source,
        conversation_id=conversation_id, created_at=None, deleted=False, items_added=count, metadata_keys=None,
        key_fingerprint=ctx.ex.key_fingerprint, provider=ctx.route.provider,
    ))


def _item(ctx: _Ctx, item: Json, conversation_id: str, deleted: bool = False, item_id: str | None = None) -> None:
    item_id = item_id or as_str(item.get("id"))
    if not item_id:
        return
    ctx.add(ConversationItemObservation(
        exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at,
        conversation_id=as_str(item.get("conversation_id")) or conversation_id, item_id=item_id,
        type=as_str(item.get("type")), role=as_str(item.get("role")), created_at=ts(item.get("created_at")),
        deleted=deleted,
    ))


def _conversations(ctx: _Ctx, data: Json) -> None:
    operation = ctx.route.operation
    conversation_id = ctx.route.ids.get("conversation_id")
    ctx.seen.conversation_id = conversation_id
    kind = as_str(data.get("object"))
    if operation == "conversations.create":
        items = ctx.request.get("items")
        _conversation(ctx, data, items_added=len(items) if isinstance(items, list) else 0)
    elif operation in ("conversations.retrieve", "conversations.update", "conversations.delete"):
        _conversation(ctx, data)
    elif conversation_id is None:
        return
    elif operation in ("conversations.items.create", "conversations.items.list"):
        items = as_list(data.get("data")) if kind == "list" else [data]
        for item in items:
            _item(ctx, as_dict(item), conversation_id)
        if operation == "conversations.items.create":
            _items_added(ctx, conversation_id, len(items))
    elif operation == "conversations.items.retrieve":
        _item(ctx, data, conversation_id)
    elif operation == "conversations.items.delete":
        # the API answers with the conversation (an older one with `conversation.item.deleted`)
        _item(ctx, {}, conversation_id, deleted=True, item_id=ctx.route.ids.get("item_id"))
        if kind == "conversation":
            _conversation(ctx, data)


# --- entry point -----------------------------------------------------------------------------


def parse_responses(ex: Exchange, route: RouteInfo, request: Body, response: Body, *, capture_content: bool,
                    observed_at: datetime, sdk: str | None, truncated: bool) -> Seen:
    """The Responses/Conversations facts of one exchange (its row is built by the caller)."""
    req = request.data if isinstance(request.data, dict) else {}
    ctx = _Ctx(ex, route, capture_content, observed_at, _SOURCES.get(route.operation, "other"), req, sdk,
               truncated)
    ctx.seen.response_id = route.ids.get("response_id")
    ctx.seen.model = as_str(req.get("model"))
    accepted = ex.status is not None and ex.status < 400
    if not accepted:
        ctx.seen.conversation_id = route.ids.get("conversation_id")
        return ctx.seen
    data = response.data
    if data is None and response.error == "truncated" and response.raw:
        data = salvage_members(response.raw)  # a response cut by the cap: what came before the cut
    data = data if isinstance(data, dict) else {}
    if route.api == CONVERSATIONS:
        _conversations(ctx, data)
        return ctx.seen
    if response.is_sse:
        _stream(ctx, response)
    elif route.operation == "responses.input_items.list":
        _call_outputs(ctx, data.get("data"), route.ids.get("response_id"))
    elif route.operation in ("responses.create", "responses.retrieve", "responses.cancel", "responses.delete"):
        _response(ctx, data, ctx.source, None)
    if route.operation == "responses.create":
        _call_outputs(ctx, req.get("input"), ctx.seen.response_id)
    return ctx.seen
