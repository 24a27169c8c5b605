"""Exchange -> typed Assistants facts. Pure: same Exchange in, same facts out (journal replay
relies on it), no I/O, no clock; runs on the recorder thread, never on the event loop.

The first fact is always the ExchangeFact. Then one fact per object seen: the response object,
each list item, each non-delta stream event, each tool call of a step or of a required action,
each submitted tool output, each file_search result. `seq` numbers them within the exchange.
Content (message text, instructions, tool arguments/outputs, chunk text) is copied only when
`capture_content` is on; lengths are always recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from proxy.facts import Fact
from proxy.responses.parse import parse_responses
from proxy.serving.exchange import Exchange
from proxy.assistants.facts import (
    AssistantObservation,
    AttachedFileObservation,
    ExchangeFact,
    FileObservation,
    FileSearchResultFact,
    MessageObservation,
    RunSnapshot,
    StepSnapshot,
    ThreadObservation,
    ToolCallFact,
    VectorStoreFileObservation,
    VectorStoreObservation,
)
from proxy.assistants.routes import ASSISTANTS_PROTOCOL, CONVERSATIONS, RESPONSES, RouteInfo, classify
from proxy.assistants.wire import CUT_SHORT as _CUT_SHORT
from proxy.assistants.wire import Body, Counted, Json, refused_counts, ts
from proxy.assistants.wire import as_dict as _dict
from proxy.assistants.wire import as_float as _float
from proxy.assistants.wire import as_int as _int
from proxy.assistants.wire import as_list as _list
from proxy.assistants.wire import as_str as _str
from proxy.assistants.wire import as_strs as _strs
from proxy.assistants.wire import decode_body as _decode_body

# Objects whose top-level `file_ids` only exist in Assistants v1 (v2 moved them to tool_resources
# and attachments). Vector store file batches keep a v2 `file_ids`, so they are not listed.
_V1_FILE_ID_OBJECTS = frozenset({"assistant", "thread.run", "thread.message"})
_V1_FILE_ID_REQUESTS = frozenset(
    {"assistants.create", "assistants.update", "messages.create", "runs.create", "threads.create_and_run"}
)
_RUN_SOURCES = {
    "runs.create": "create",
    "threads.create_and_run": "create_thread_and_run",
    "runs.retrieve": "retrieve",
    "runs.list": "list",
    "runs.update": "update",
    "runs.cancel": "cancel",
    "runs.submit_tool_outputs": "submit_tool_outputs",
}


def api_version_from_beta(header: str | None) -> str | None:
    """`OpenAI-Beta: assistants=v2` (possibly among other comma-separated flags) -> "v2"."""
    if not header:
        return None
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "assistants" and value.strip():
            return value.strip().lower()
    return None


# --- the per-exchange context ----------------------------------------------------------------


@dataclass(slots=True)
class _Ctx(Counted):
    ex: Exchange
    route: RouteInfo
    capture: bool
    observed_at: datetime
    api_version: str | None
    source: str
    facts: list[Fact] = field(default_factory=list)
    seq: int = 0
    v1: bool = False

    def object_version(self, obj: Json) -> str | None:
        """v1 when the object has a v1-only shape, else the version the request asked for."""
        if _is_v1_object(obj):
            self.v1 = True
            return "v1"
        return self.api_version


def _tool_types(tools: object) -> tuple[str, ...]:
    return tuple(t for t in (_str(_dict(tool).get("type")) for tool in _list(tools)) if t)


def _is_v1_object(obj: Json) -> bool:
    if "file_ids" in obj and _str(obj.get("object")) in _V1_FILE_ID_OBJECTS:
        return True
    return "retrieval" in _tool_types(obj.get("tools"))


@dataclass(frozen=True, slots=True)
class _Usage:
    prompt: int | None = None
    completion: int | None = None
    total: int | None = None
    invalid: str | None = None  # one of USAGE_INVALID_REASONS


def _usage(obj: Json) -> _Usage:
    """A run's or step's token usage. Usage is priced downstream, so an impossible one keeps no
    token count at all, only the reason it was refused."""
    usage = obj.get("usage")
    if usage is None:
        return _Usage()
    if not isinstance(usage, dict):
        return _Usage(invalid="malformed")
    values = [usage.get(name) for name in ("prompt_tokens", "completion_tokens", "total_tokens")]
    refused = refused_counts(values)
    if refused:
        return _Usage(invalid=refused)
    prompt, completion, total = values
    if prompt is not None and completion is not None and total is not None and prompt + completion != total:
        return _Usage(invalid="inconsistent")
    return _Usage(prompt, completion, total)


# --- objects -> facts ------------------------------------------------------------------------


def _run(ctx: _Ctx, obj: Json, source: str, event: str | None) -> None:
    run_id = _str(obj.get("id"))
    if not run_id:
        return
    usage = _usage(obj)
    required = _dict(_dict(obj.get("required_action")).get("submit_tool_outputs"))
    required_calls = _list(required.get("tool_calls")) if required else []
    instructions = _str(obj.get("instructions"))
    thread_id = _str(obj.get("thread_id"))
    ctx.facts.append(
        RunSnapshot(
            exchange_id=ctx.ex.exchange_id,
            seq=ctx.next_seq(),
            observed_at=ctx.observed_at,
            source=source,
            event=event,
            run_id=run_id,
            thread_id=thread_id,
            assistant_id=_str(obj.get("assistant_id")),
            model=_str(obj.get("model")),
            status=_str(obj.get("status")),
            api_version=ctx.object_version(obj),
            created_at=ts(obj.get("created_at")),
            started_at=ts(obj.get("started_at")),
            completed_at=ts(obj.get("completed_at")),
            failed_at=ts(obj.get("failed_at")),
            cancelled_at=ts(obj.get("cancelled_at")),
            expires_at=ts(obj.get("expires_at")),
            last_error_code=_str(_dict(obj.get("last_error")).get("code")),
            last_error_message=_str(_dict(obj.get("last_error")).get("message")),
            incomplete_reason=_str(_dict(obj.get("incomplete_details")).get("reason")),
            prompt_tokens=usage.prompt,
            completion_tokens=usage.completion,
            total_tokens=usage.total,
            tools=_tool_types(obj.get("tools")),
            streamed=source == "stream",
            required_action_count=len(required_calls) if required else None,
            key_fingerprint=ctx.ex.key_fingerprint,
            instructions_chars=len(instructions) if instructions is not None else None,
            instructions=ctx.content(instructions),
            usage_invalid=usage.invalid,
            project=ctx.route.project,
        )
    )
    for call in required_calls:
        call = _dict(call)
        fn = _dict(call.get("function"))
        call_id = _str(call.get("id"))
        if not call_id:
            continue
        args = _str(fn.get("arguments"))
        ctx.facts.append(
            _tool_call(ctx, call_id, "required_action", None, run_id, thread_id, _str(call.get("type")) or "function",
                       function_name=_str(fn.get("name")), arguments_chars=len(args) if args is not None else None,
                       arguments=ctx.content(args))
        )


def _tool_call(ctx: _Ctx, call_id: str, source: str, step_id: str | None, run_id: str | None, thread_id: str | None,
               type_: str | None, **fields: Any) -> ToolCallFact:
    base: dict[str, Any] = dict.fromkeys(
        ("function_name", "arguments_chars", "arguments", "output_chars", "output", "code_input_chars", "code_input",
         "code_outputs", "ranker", "score_threshold", "result_count")
    )
    base.update(fields)
    return ToolCallFact(
        exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at, tool_call_id=call_id,
        source=source, step_id=step_id, run_id=run_id, thread_id=thread_id, type=type_, **base,
    )


def _step(ctx: _Ctx, obj: Json) -> None:
    step_id = _str(obj.get("id"))
    if not step_id:
        return
    usage = _usage(obj)
    details = _dict(obj.get("step_details"))
    run_id, thread_id = _str(obj.get("run_id")), _str(obj.get("thread_id"))
    ctx.facts.append(
        StepSnapshot(
            exchange_id=ctx.ex.exchange_id,
            seq=ctx.next_seq(),
            observed_at=ctx.observed_at,
            step_id=step_id,
            run_id=run_id,
            thread_id=thread_id,
            assistant_id=_str(obj.get("assistant_id")),
            type=_str(obj.get("type")),
            status=_str(obj.get("status")),
            created_at=ts(obj.get("created_at")),
            completed_at=ts(obj.get("completed_at")),
            failed_at=ts(obj.get("failed_at")),
            cancelled_at=ts(obj.get("cancelled_at")),
            expired_at=ts(obj.get("expired_at")),
            last_error_code=_str(_dict(obj.get("last_error")).get("code")),
            prompt_tokens=usage.prompt,
            completion_tokens=usage.completion,
            total_tokens=usage.total,
            message_id=_str(_dict(details.get("message_creation")).get("message_id")),
            usage_invalid=usage.invalid,
        )
    )
    for call in _list(details.get("tool_calls")):
        _step_tool_call(ctx, _dict(call), step_id, run_id, thread_id)


def _step_tool_call(ctx: _Ctx, call: Json, step_id: str, run_id: str | None, thread_id: str | None) -> None:
    call_id = _str(call.get("id"))
    type_ = _str(call.get("type"))
    if not call_id:
        return
    fields: dict[str, Any] = {}
    results: list[Any] = []
    if type_ == "function":
        fn = _dict(call.get("function"))
        args, output = _str(fn.get("arguments")), _str(fn.get("output"))
        fields = dict(function_name=_str(fn.get("name")), arguments_chars=len(args) if args is not None else None,
                      arguments=ctx.content(args), output_chars=len(output) if output is not None else None,
                      output=ctx.content(output))
    elif type_ == "code_interpreter":
        ci = _dict(call.get("code_interpreter"))
        code = _str(ci.get("input"))
        outputs = _list(ci.get("outputs"))
        logs = "".join(_str(_dict(o).get("logs")) or "" for o in outputs)
        fields = dict(code_input_chars=len(code) if code is not None else None, code_input=ctx.content(code),
                      code_outputs=len(outputs), output_chars=len(logs), output=ctx.content(logs))
    elif type_ == "file_search":
        fs = _dict(call.get("file_search"))
        ranking = _dict(fs.get("ranking_options"))
        results = _list(fs.get("results"))
        fields = dict(ranker=_str(ranking.get("ranker")), score_threshold=_float(ranking.get("score_threshold")),
                      result_count=len(results) if "results" in fs else None)
    elif type_ == "retrieval":
        ctx.v1 = True
    ctx.facts.append(_tool_call(ctx, call_id, "step", step_id, run_id, thread_id, type_, **fields))
    _search_results(ctx, results, call_id, step_id, run_id, thread_id)


def _search_results(ctx: _Ctx, results: list[Any], call_id: str, step_id: str | None = None,
                    run_id: str | None = None, thread_id: str | None = None) -> None:
    """One FileSearchResultFact per result, ranked in the order returned: a file_search tool
    call's results, or a direct `/vector_stores/{id}/search` page (whose results say `filename`)."""
    for rank, result in enumerate(results, start=1):
        result = _dict(result)
        text = "".join(_str(_dict(part).get("text")) or "" for part in _list(result.get("content")))
        has_content = "content" in result
        ctx.facts.append(
            FileSearchResultFact(
                exchange_id=ctx.ex.exchange_id, observed_at=ctx.observed_at, tool_call_id=call_id, step_id=step_id,
                run_id=run_id, thread_id=thread_id, rank=rank, file_id=_str(result.get("file_id")),
                file_name=_str(result.get("file_name") or result.get("filename")), score=_float(result.get("score")),
                content_chars=len(text) if has_content else None, content=ctx.content(text) if has_content else None,
            )
        )


def _message(ctx: _Ctx, obj: Json) -> None:
    message_id = _str(obj.get("id"))
    if not message_id:
        return
    texts: list[str] = []
    annotations = 0
    for part in _list(obj.get("content")):
        text = _dict(_dict(part).get("text"))
        value = _str(text.get("value"))
        if value is not None:
            texts.append(value)
        annotations += len(_list(text.get("annotations")))
    attachments = obj.get("attachments")
    file_ids = _strs(obj.get("file_ids")) or tuple(
        f for f in (_str(_dict(a).get("file_id")) for a in _list(attachments)) if f
    )
    ctx.object_version(obj)
    content = "".join(texts)
    ctx.facts.append(
        MessageObservation(
            exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at, message_id=message_id,
            thread_id=_str(obj.get("thread_id")), run_id=_str(obj.get("run_id")),
            assistant_id=_str(obj.get("assistant_id")), role=_str(obj.get("role")), status=_str(obj.get("status")),
            created_at=ts(obj.get("created_at")), content_chars=len(content), content=ctx.content(content),
            attachments=len(attachments) if isinstance(attachments, list) else None, file_ids=file_ids,
            annotations=annotations,
        )
    )


def _resources(obj: Json) -> tuple[tuple[str, ...], tuple[str, ...]]:
    resources = _dict(obj.get("tool_resources"))
    return (_strs(_dict(resources.get("file_search")).get("vector_store_ids")),
            _strs(_dict(resources.get("code_interpreter")).get("file_ids")))


def _assistant(ctx: _Ctx, obj: Json, deleted: bool) -> None:
    assistant_id = _str(obj.get("id"))
    if not assistant_id:
        return
    vs_ids, ci_files = _resources(obj)
    instructions = _str(obj.get("instructions"))
    ctx.facts.append(
        AssistantObservation(
            exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at, assistant_id=assistant_id,
            name=_str(obj.get("name")), model=_str(obj.get("model")),
            api_version=None if deleted else ctx.object_version(obj), tools=_tool_types(obj.get("tools")),
            vector_store_ids=vs_ids, code_interpreter_file_ids=ci_files, file_ids=_strs(obj.get("file_ids")),
            created_at=ts(obj.get("created_at")), deleted=deleted,
            instructions_chars=len(instructions) if instructions is not None else None,
            instructions=ctx.content(instructions), key_fingerprint=ctx.ex.key_fingerprint,
        )
    )


def _thread(ctx: _Ctx, obj: Json, deleted: bool) -> None:
    thread_id = _str(obj.get("id"))
    if not thread_id:
        return
    vs_ids, ci_files = _resources(obj)
    ctx.facts.append(
        ThreadObservation(
            exchange_id=ctx.ex.exchange_id, observed_at=ctx.observed_at, thread_id=thread_id,
            created_at=ts(obj.get("created_at")), vector_store_ids=vs_ids, code_interpreter_file_ids=ci_files,
            deleted=deleted, key_fingerprint=ctx.ex.key_fingerprint,
        )
    )


def _vector_store(ctx: _Ctx, obj: Json, deleted: bool) -> None:
    vs_id = _str(obj.get("id"))
    if not vs_id:
        return
    counts = _dict(obj.get("file_counts"))
    expires_after = _dict(obj.get("expires_after"))
    usage = obj.get("usage_bytes", obj.get("bytes"))
    ctx.facts.append(
        VectorStoreObservation(
            exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at, source=ctx.source,
            vector_store_id=vs_id, name=_str(obj.get("name")), status=_str(obj.get("status")),
            usage_bytes=_int(usage), files_in_progress=_int(counts.get("in_progress", counts.get("processing"))),
            files_completed=_int(counts.get("completed")), files_failed=_int(counts.get("failed")),
            files_cancelled=_int(counts.get("cancelled")), files_total=_int(counts.get("total")),
            created_at=ts(obj.get("created_at")), last_active_at=ts(obj.get("last_active_at")),
            expires_at=ts(obj.get("expires_at")), expires_after_anchor=_str(expires_after.get("anchor")),
            expires_after_days=_int(expires_after.get("days")), deleted=deleted,
            key_fingerprint=ctx.ex.key_fingerprint,
        )
    )


def _vector_store_file(ctx: _Ctx, obj: Json, deleted: bool, file_id: str | None = None, status: str | None = None) -> None:
    file_id = file_id or _str(obj.get("id"))
    if not file_id:
        return
    ctx.facts.append(
        VectorStoreFileObservation(
            exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at,
            vector_store_id=_str(obj.get("vector_store_id")) or ctx.route.ids.get("vector_store_id"), file_id=file_id,
            status=status if status is not None else _str(obj.get("status")), usage_bytes=_int(obj.get("usage_bytes")),
            last_error_code=_str(_dict(obj.get("last_error")).get("code")), created_at=ts(obj.get("created_at")),
            deleted=deleted,
        )
    )


def _file(ctx: _Ctx, obj: Json, deleted: bool) -> None:
    file_id = _str(obj.get("id"))
    if not file_id:
        return
    ctx.facts.append(
        FileObservation(
            exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at, file_id=file_id,
            filename=_str(obj.get("filename")), purpose=_str(obj.get("purpose")), bytes=_int(obj.get("bytes")),
            status=_str(obj.get("status")), created_at=ts(obj.get("created_at")), deleted=deleted,
            key_fingerprint=ctx.ex.key_fingerprint,
        )
    )


# v1 attached-file objects (and their deletions) -> (owner, the owner's id field and path parameter)
_ATTACHED_FILE_OWNERS = {
    "assistant.file": ("assistant", "assistant_id"),
    "assistant.file.deleted": ("assistant", "assistant_id"),
    "thread.message.file": ("message", "message_id"),
}


def _attached_file(ctx: _Ctx, obj: Json, kind: str) -> None:
    ctx.v1 = True
    owner, id_field = _ATTACHED_FILE_OWNERS[kind]
    owner_id = _str(obj.get(id_field)) or ctx.route.ids.get(id_field)
    file_id = _str(obj.get("id"))
    if not owner_id or not file_id:
        return
    ctx.facts.append(
        AttachedFileObservation(
            exchange_id=ctx.ex.exchange_id, seq=ctx.next_seq(), observed_at=ctx.observed_at, owner=owner,
            owner_id=owner_id, file_id=file_id, attached=obj.get("deleted") is not True,
        )
    )


def _object(ctx: _Ctx, obj: object, run_source: str, event: str | None = None) -> None:
    """Dispatch one API object (or list page) to its fact builder by its `object` field."""
    if not isinstance(obj, dict):
        return
    kind = _str(obj.get("object"))  # any JSON value may stand here; only a string names a kind
    deleted = obj.get("deleted") is True
    if kind == "list":
        for item in _list(obj.get("data")):
            _object(ctx, item, run_source, event)
    elif kind == "thread.run":
        _run(ctx, obj, run_source, event)
    elif kind == "thread.run.step":
        _step(ctx, obj)
    elif kind == "thread.message":
        _message(ctx, obj)
    elif kind in ("assistant", "assistant.deleted"):
        _assistant(ctx, obj, deleted)
    elif kind in ("thread", "thread.deleted"):
        _thread(ctx, obj, deleted)
    elif kind in ("vector_store", "vector_store.deleted"):
        _vector_store(ctx, obj, deleted)
    elif kind in ("vector_store.file", "vector_store.file.deleted"):
        _vector_store_file(ctx, obj, deleted)
    elif kind in ("file", "file.deleted"):
        _file(ctx, obj, deleted)
    elif kind == "vector_store.search_results.page":  # a direct search: what retrieval returned
        _search_results(ctx, _list(obj.get("data")), f"search_{ctx.ex.exchange_id}")
    elif kind == "upload":  # a completed upload carries the file it made
        _object(ctx, obj.get("file"), run_source, event)
    elif kind in _ATTACHED_FILE_OWNERS:
        _attached_file(ctx, obj, kind)


def _is_delta(name: str) -> bool:
    # deltas repeat what the completed object holds
    return name.endswith(".delta") or name == "thread.message.in_progress"


def _stream_events(ctx: _Ctx, body: Body) -> tuple[str | None, str | None]:
    """Facts from streamed events; returns (error_type, error_code) of an `error` event."""
    error: tuple[str | None, str | None] = (None, None)
    for name, data in body.events(skip=_is_delta):
        if name == "error":
            err = _dict(_dict(data).get("error")) or _dict(data)
            error = (_str(err.get("type")) or "stream_error", _str(err.get("code")))
        elif name.startswith(("thread.run.", "thread.message.", "thread.created")):
            _object(ctx, data, "stream", name)
    return error


def _tool_outputs(ctx: _Ctx, request: Json) -> None:
    run_id, thread_id = ctx.route.ids.get("run_id"), ctx.route.ids.get("thread_id")
    for item in _list(request.get("tool_outputs")):
        item = _dict(item)
        call_id = _str(item.get("tool_call_id"))
        if not call_id:
            continue
        output = _str(item.get("output"))
        ctx.facts.append(
            _tool_call(ctx, call_id, "tool_output", None, run_id, thread_id, "function",
                       output_chars=len(output) if output is not None else None, output=ctx.content(output))
        )


def _request_is_v1(operation: str, request: Json) -> bool:
    if operation in _V1_FILE_ID_REQUESTS and "file_ids" in request:
        return True
    if "retrieval" in _tool_types(request.get("tools")):
        return True
    thread = _dict(request.get("thread")) or request
    return any("file_ids" in _dict(m) for m in _list(thread.get("messages")))


# --- entry point -----------------------------------------------------------------------------


def _first_str(*values: object) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def _sdk(lang: str | None, version: str | None) -> str | None:
    if lang and version:
        return f"{lang} {version}"
    return lang or None


# Azure SDKs send no X-Stainless-* headers; their User-Agent starts `azsdk-<lang>-<package>/<version>`
# (azure-core's UserAgentPolicy), e.g. `azsdk-python-ai-agents/1.1.0 Python/3.11.7 (Linux...)`.
_AZURE_SDK_AGENT = re.compile(r"azsdk-(python|js|net|java|go|cpp)-([a-z0-9.-]+)/([0-9A-Za-z.+-]+)")


def _azure_sdk(user_agent: str | None) -> tuple[str | None, str | None]:
    """(lang, "azure-<package> <version>") of an Azure SDK's User-Agent, else (None, None)."""
    found = _AZURE_SDK_AGENT.match(user_agent or "")
    if found is None:
        return None, None
    lang, package, version = found.groups()
    return lang, f"azure-{package} {version}"


def parse(exchange: Exchange, *, capture_content: bool) -> list[Fact]:
    """All facts of one exchange; the ExchangeFact first. Never raises on bad bodies."""
    ex = exchange
    route = classify(ex.method, ex.path, ex.query)
    req_header = ex.header
    beta = req_header("openai-beta")
    # what the upstream serves: Azure goes by its api-version and ignores OpenAI-Beta (the SDK
    # sends assistants=v2 with any api-version); both raw values are recorded as well
    assistants = route.api in ASSISTANTS_PROTOCOL
    api_version = (route.implied_azure_assistants_version or api_version_from_beta(beta)) if assistants else None
    started = datetime.fromtimestamp(ex.started_at, tz=timezone.utc)
    observed = datetime.fromtimestamp(ex.started_at + max(ex.duration_s, 0.0), tz=timezone.utc)
    if ex.origin in ("sampler", "enrichment"):
        source = ex.origin
    else:
        source = route.operation.rsplit(".", 1)[-1] if route.operation != "other" else "other"
    ctx = _Ctx(ex, route, capture_content, observed, api_version, source, v1=route.v1_only)
    # only the client's own retrieves count as polls; the proxy's enrichment calls say so
    run_source = source if ex.origin != "client" else _RUN_SOURCES.get(route.operation, source)

    request = _decode_body(ex.request_body, req_header("content-type"), req_header("content-encoding"),
                           ex.request_body_truncated)
    req_json = _dict(request.data)
    response_ctype = ex.header("content-type", response=True)
    response_encoding = ex.header("content-encoding", response=True)
    # a body cut short by a failure (upstream reset or silent, client gone) is truncated too,
    # not invalid: its complete list items are still salvaged
    cut_short = ex.error_type in _CUT_SHORT and ex.status is not None
    response = _decode_body(ex.response_body, response_ctype, response_encoding,
                            ex.response_body_truncated or cut_short)

    if _request_is_v1(route.operation, req_json):
        ctx.v1 = True
    # what the request asked for counts only when the upstream accepted it
    accepted = ex.status is not None and ex.status < 400
    if accepted and route.operation == "runs.submit_tool_outputs":
        _tool_outputs(ctx, req_json)
    if accepted and route.operation == "vector_stores.file_batches.create":
        for file_id in _strs(req_json.get("file_ids")):
            _vector_store_file(ctx, {}, False, file_id=file_id, status=None)

    error_type, error_code = ex.error_type, None
    resp_json = response.data if isinstance(response.data, dict) else {}
    lang, version = req_header("x-stainless-lang"), req_header("x-stainless-package-version")
    if not lang:
        lang, version = _azure_sdk(req_header("user-agent"))
    seen = None
    if route.api in (RESPONSES, CONVERSATIONS):
        seen = parse_responses(ex, route, request, response, capture_content=capture_content, observed_at=observed,
                               sdk=_sdk(lang, version), truncated=ex.response_body_truncated or cut_short)
    if response.is_sse:
        stream_error = (seen.error_type, seen.error_code) if seen else _stream_events(ctx, response)
        if error_type is None:
            error_type, error_code = stream_error
    else:
        # a failed response object carries its own `error`: the exchange itself succeeded
        upstream_error = _dict(resp_json.get("error")) if resp_json.get("object") != "response" else {}
        if upstream_error:
            error_type = error_type or _str(upstream_error.get("type")) or "error"
            error_code = _str(upstream_error.get("code"))
        elif accepted and seen is None:
            _object(ctx, response.data, run_source)
    if error_type is None and ex.status is not None and ex.status >= 400:
        error_type = f"http_{ex.status}"

    parse_error = None
    dropped = ex.extra.get("bodies_dropped")
    if dropped:  # journaled without bodies at the recorder-lag bound (proxy.serving.appender)
        parse_error = f"bodies_dropped:{dropped}"
    elif response.error:
        parse_error = f"response:{response.error}"
    elif request.error:
        parse_error = f"request:{request.error}"

    ids = route.ids
    first_run = next((f for f in ctx.facts if isinstance(f, RunSnapshot)), None)
    poll_helper = req_header("x-stainless-poll-helper")
    helper = ("poll" if poll_helper and poll_helper.lower() == "true" else None) or req_header(
        "x-stainless-stream-helper") or req_header("x-stainless-helper-method")
    resp_obj_id = _str(resp_json.get("id"))
    resp_kind = resp_json.get("object")
    exchange_fact = ExchangeFact(
        exchange_id=ex.exchange_id,
        observed_at=started,
        worker=ex.worker,
        origin=ex.origin,
        started_at=started,
        duration_ms=ex.duration_s * 1000.0,
        ttfb_ms=ex.ttfb_s * 1000.0 if ex.ttfb_s is not None else None,
        proxy_overhead_ms=ex.proxy_overhead_s * 1000.0,
        method=ex.method,
        path=ex.path,
        route=route.route,
        operation=route.operation,
        provider=route.provider,
        status_code=ex.status,
        beta_header=beta,
        api_version=api_version,
        v1_semantics=ctx.v1,
        azure_api_version=route.azure_api_version,
        stream=req_json.get("stream") is True or response.is_sse,
        upstream_request_id=ex.header("x-request-id", response=True),
        processing_ms=_float(ex.header("openai-processing-ms", response=True)),
        ratelimit_remaining_requests=_int(ex.header("x-ratelimit-remaining-requests", response=True)),
        ratelimit_remaining_tokens=_int(ex.header("x-ratelimit-remaining-tokens", response=True)),
        bytes_in=ex.request_body_size,
        bytes_out=ex.response_body_size,
        content_type=response_ctype,
        content_encoding=response_encoding,
        error_type=error_type,
        error_code=error_code,
        parse_error=parse_error,
        body_truncated=ex.response_body_truncated or ex.request_body_truncated,
        user_agent=req_header("user-agent"),
        sdk=_sdk(lang, version),
        sdk_lang=lang,
        sdk_version=version,
        helper=helper,
        retry_count=_int(req_header("x-stainless-retry-count")),
        key_fingerprint=ex.key_fingerprint,
        run_id=_first_str(ids.get("run_id"), first_run.run_id if first_run else None),
        thread_id=_first_str(ids.get("thread_id"), first_run.thread_id if first_run else None,
                             resp_obj_id if resp_kind == "thread" else None, resp_json.get("thread_id")),
        assistant_id=_first_str(ids.get("assistant_id"), req_json.get("assistant_id"),
                                first_run.assistant_id if first_run else None,
                                resp_obj_id if resp_kind == "assistant" else None),
        vector_store_id=_first_str(ids.get("vector_store_id"), resp_obj_id if resp_kind == "vector_store" else None,
                                   resp_json.get("vector_store_id")),
        model=_first_str(req_json.get("model"), first_run.model if first_run else None, resp_json.get("model"),
                         seen.model if seen else None),
        ratelimit_limit_requests=ex.header("x-ratelimit-limit-requests", response=True),
        ratelimit_limit_tokens=ex.header("x-ratelimit-limit-tokens", response=True),
        ratelimit_reset_requests=ex.header("x-ratelimit-reset-requests", response=True),
        ratelimit_reset_tokens=ex.header("x-ratelimit-reset-tokens", response=True),
        api=route.api,
        response_id=seen.response_id if seen else None,
        conversation_id=seen.conversation_id if seen else None,
        project=route.project,
    )
    return [exchange_fact, *ctx.facts, *(seen.facts if seen else ())]

