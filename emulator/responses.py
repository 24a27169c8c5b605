"""The Responses API's model: what a response does, decided from its input when it is created
(see emulator/SCRIPT.md, "Responses"), and the objects the API returns for it.

A response is planned whole at creation: its output items (tool calls, the reply), how it ends
and its usage. A foreground response is returned finished; a `background: true` one shows
`queued`, then `in_progress`, then the planned ending as the emulated clock passes each phase,
read lazily like runs. Conversations hold the items of the responses made in them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from emulator import script, vectors
from emulator.errors import ApiError, bad_request
from emulator.script import CODE_INPUT, CODE_LOGS, FAIL_MESSAGES, function_arguments, reply_text, tokens
from emulator.state import Store

TERMINAL = ("completed", "failed", "incomplete", "cancelled")
REASONING_MODELS = ("o1", "o3", "o4", "gpt-5", "codex")
# Chained context up to this many tokens is billed as cached input, as a prompt-cache hit would be.
WEB_RESULT_URL = "https://example.com/emulated-search"
WEB_RESULT_TITLE = "Emulated search result"


def new_id(store: Store, prefix: str, length: int = 48) -> str:
    """Hex ids as the Responses API formats them, drawn from the store's seeded id counter so they
    follow the same seeding rules as every other id."""
    seed = store.ids.new("vsfb")
    return f"{prefix}_" + hashlib.sha256(seed.encode()).hexdigest()[:length]


@dataclass
class StoredResponse:
    """One response: `final` is what it ends as; `obj()` is what it shows at a given time."""

    final: dict
    input_items: list[dict]  # the new input, as resources with ids
    context: list[dict]  # every item the model saw before this input (chaining)
    background: bool
    stored: bool
    in_progress_at: float
    done_at: float
    conversation_id: str | None = None
    cancelled_at: float | None = None
    appended: bool = False  # its items are in its conversation

    @property
    def id(self) -> str:
        return self.final["id"]

    def status(self, now: float) -> str:
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return "cancelled"
        if now >= self.done_at:
            return self.final["status"]
        return "in_progress" if now >= self.in_progress_at else "queued"

    def obj(self, now: float) -> dict:
        status = self.status(now)
        return self.final if status == self.final["status"] else self.unfinished(status)

    def unfinished(self, status: str) -> dict:
        """The response before its output exists (queued, in progress, or cancelled)."""
        return dict(self.final, status=status, completed_at=None, error=None, incomplete_details=None, output=[],
                    usage=None)

    def items_after(self) -> list[dict]:
        """What a response chained to this one sees: its context, its input and its output."""
        return self.context + self.input_items + [item for item in self.final["output"]]


@dataclass
class ResponsesState:
    responses: dict[str, StoredResponse] = field(default_factory=dict)
    conversations: dict[str, dict] = field(default_factory=dict)
    conversation_items: dict[str, list[dict]] = field(default_factory=dict)  # conv id -> items, oldest first
    containers: dict[str, dict] = field(default_factory=dict)

    def settle(self, now: float) -> None:
        """Background responses that finished since the last request add their items to their
        conversation (a foreground one adds them when it is created)."""
        for resp in self.responses.values():
            if resp.conversation_id and not resp.appended and resp.status(now) in TERMINAL:
                append_to_conversation(self, resp, now)


RESPONSES = web.AppKey("responses", ResponsesState)


# -- input ---------------------------------------------------------------------------------------
def content_parts(content: Any, role: str) -> list[dict]:
    kind = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        part = {"type": kind, "text": content}
        if kind == "output_text":
            part.update(annotations=[], logprobs=[])
        return [part]
    return [dict(part) for part in content or []]


def input_resources(store: Store, raw: Any) -> list[dict]:
    """The request's `input` as stored items (each with an id, as input_items lists them)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user", "content": raw}]
    items = []
    for item in raw:
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            items.append({"type": "message", "id": item.get("id") or new_id(store, "msg"), "status": "completed",
                          "role": role, "content": content_parts(item.get("content"), role)})
        elif kind == "function_call_output":
            items.append({"id": item.get("id") or new_id(store, "fc"), "type": kind, "call_id": item["call_id"],
                          "output": item["output"], "status": "completed"})
        elif kind == "item_reference":
            continue
        else:
            items.append(dict(item, id=item.get("id") or new_id(store, "item")))
    return items


def item_text(item: dict) -> str:
    if item.get("type") == "message":
        return " ".join(p.get("text", "") for p in item.get("content", []) if isinstance(p, dict))
    if item.get("type") == "function_call_output":
        out = item.get("output")
        return out if isinstance(out, str) else json.dumps(out)
    if item.get("type") == "function_call":
        return item.get("arguments", "")
    return ""


def last_user_text(items: list[dict]) -> str:
    for item in reversed(items):
        if item.get("type") == "message" and item.get("role") == "user":
            return item_text(item)
    return ""


# -- the plan ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Triggers:
    outcome: str = "completed"  # completed | failed | incomplete (an [expire] trigger has no meaning here)
    detail: str | None = None
    slow: bool = False
    no_tools: bool = False


def triggers(text: str) -> Triggers:
    outcome, detail, slow, no_tools = script.triggers(text)
    return Triggers("completed" if outcome == "expired" else outcome, detail, slow, no_tools)


def allowed_tools(tools: list[dict], tool_choice: Any, no_tools: bool) -> list[dict]:
    if tool_choice == "none" or no_tools:
        return []
    if isinstance(tool_choice, dict):
        kind = tool_choice.get("type")
        if kind == "function":
            return [t for t in tools if t.get("type") == "function" and t.get("name") == tool_choice.get("name")]
        if kind == "allowed_tools":
            names = {(t.get("type"), t.get("name")) for t in tool_choice.get("tools", [])}
            return [t for t in tools if (t.get("type"), t.get("name")) in names
                    or (t.get("type"), None) in names]
        return [t for t in tools if t.get("type", "").startswith(kind or "")]
    return list(tools)


def echo_tool(tool: dict) -> dict:
    """A tool as the response echoes it: the defaults the API fills in, in its key order."""
    kind = tool.get("type")
    if kind == "function":
        return {"type": "function", "description": tool.get("description"), "name": tool["name"],
                "parameters": tool.get("parameters"), "strict": tool.get("strict", True)}
    if kind == "file_search":
        return {"type": "file_search", "filters": tool.get("filters"),
                "max_num_results": tool.get("max_num_results", 20),
                "ranking_options": tool.get("ranking_options") or {"ranker": "auto", "score_threshold": 0.0},
                "vector_store_ids": tool.get("vector_store_ids", [])}
    if kind in ("web_search", "web_search_preview", "web_search_2025_08_26"):
        return {"type": kind, "filters": tool.get("filters"),
                "search_context_size": tool.get("search_context_size", "medium"),
                "user_location": tool.get("user_location")}
    return dict(tool)


def container_for(state: ResponsesState, store: Store, spec: Any, now: int) -> str:
    """`container: {"type": "auto"}` starts a new container; a container id names an existing one."""
    if isinstance(spec, str):
        if spec not in state.containers:
            raise ApiError(404, f"Container with id '{spec}' not found.", param="tools")
        return spec
    container_id = new_id(store, "cntr")
    state.containers[container_id] = {"id": container_id, "object": "container", "created_at": now,
                                      "status": "running", "name": "emulated container",
                                      "file_ids": list((spec or {}).get("file_ids") or [])}
    return container_id


@dataclass
class Built:
    output: list[dict]
    output_tokens: int
    reasoning_tokens: int
    status: str
    error: dict | None
    incomplete: dict | None


def build_output(state: ResponsesState, store: Store, body: dict, items: list[dict], context: list[dict],
                 trig: Triggers, include: list[str]) -> Built:
    tools = allowed_tools(body.get("tools") or [], body.get("tool_choice", "auto"), trig.no_tools)
    new_outputs = [i for i in items if i["type"] == "function_call_output"]
    query = last_user_text(items) or last_user_text(context)
    now = store.now()
    output: list[dict] = []
    completion = 0
    reasoning = 0
    model = str(body.get("model", ""))
    if model.startswith(REASONING_MODELS) or (body.get("reasoning") or {}).get("effort"):
        reasoning = 2 * tokens(query) + 8
        output.append({"id": new_id(store, "rs"), "type": "reasoning", "summary": []})
    citations: list[dict] = []
    web_hit = False
    code_ran = False
    for tool in tools:
        kind = tool.get("type")
        if kind == "code_interpreter":
            container_id = container_for(state, store, tool.get("container"), now)
            logs = [{"type": "logs", "logs": CODE_LOGS}] if "code_interpreter_call.outputs" in include else None
            output.append({"type": "code_interpreter_call", "id": new_id(store, "ci"), "status": "completed",
                           "container_id": container_id, "code": CODE_INPUT, "outputs": logs})
            completion += tokens(CODE_INPUT)
            code_ran = True
        elif kind == "file_search":
            vs_ids = [v for v in tool.get("vector_store_ids") or [] if v in store.vector_stores]
            hits = vectors.search(store, vs_ids, query, int(tool.get("max_num_results") or 20))
            for vs_id in vs_ids:
                vectors.touch(store, store.vector_stores[vs_id])
            results = None
            if "file_search_call.results" in include:
                results = [{"file_id": c.file_id, "filename": c.filename, "score": score, "text": c.text,
                            "attributes": (store.vs_files.get(vs_ids[0], {}).get(c.file_id) or {}).get("attributes")
                            or {}} for c, score in hits]
            output.append({"id": new_id(store, "fs"), "type": "file_search_call", "status": "completed",
                           "queries": [query], "results": results})
            if hits:
                citations.append({"type": "file_citation", "file_id": hits[0][0].file_id,
                                  "filename": hits[0][0].filename})
            completion += tokens(query)
        elif kind in ("web_search", "web_search_preview", "web_search_2025_08_26"):
            action: dict[str, Any] = {"type": "search", "query": query}
            if "web_search_call.action.sources" in include:
                action["sources"] = [{"type": "url", "url": WEB_RESULT_URL}]
            output.append({"type": "web_search_call", "id": new_id(store, "ws"), "status": "completed",
                           "action": action})
            web_hit = True
            completion += tokens(query)
    functions = [t for t in tools if t.get("type") == "function"]
    if body.get("parallel_tool_calls") is False:
        functions = functions[:1]
    if functions and not new_outputs:
        for fn in functions:
            args = json.dumps(function_arguments(fn.get("parameters")), separators=(",", ":"))
            output.append({"type": "function_call", "id": new_id(store, "fc"), "call_id": new_id(store, "call", 24),
                           "name": fn["name"], "arguments": args, "status": "completed"})
            completion += tokens(args)
    else:
        text = reply_text(query, code=code_ran, citations=[c["filename"] for c in citations],
                          tool_outputs=[item_text(i) for i in new_outputs])
        if web_hit:
            text += f" The web says so ({WEB_RESULT_TITLE})."
        annotations = []
        for c in citations:
            annotations.append(dict(c, index=len(text)))
        if web_hit:
            start = text.rindex(WEB_RESULT_TITLE)
            annotations.append({"type": "url_citation", "start_index": start,
                                "end_index": start + len(WEB_RESULT_TITLE), "title": WEB_RESULT_TITLE,
                                "url": WEB_RESULT_URL})
        words = text.split(" ")
        status = "completed"
        limit = body.get("max_output_tokens")
        cut = trig.outcome == "incomplete" or (limit is not None and len(words) + reasoning > limit)
        if cut:
            words = words[: max(1, len(words) // 2)]
            annotations = [a for a in annotations if a.get("index", a.get("end_index", 0)) <= len(" ".join(words))]
            status = "incomplete"
        text = " ".join(words)
        output.append({"type": "message", "id": new_id(store, "msg"), "status": status, "role": "assistant",
                       "content": [{"type": "output_text", "text": text, "annotations": annotations,
                                    "logprobs": []}]})
        completion += len(words)
    if trig.outcome == "failed":
        output = [o for o in output if o["type"] != "message"]
        code = trig.detail or "server_error"
        return Built(output, completion + reasoning, reasoning, "failed",
                     {"code": code, "message": FAIL_MESSAGES.get(code, "The emulated model failed.")}, None)
    cut = any(o["type"] == "message" and o["status"] == "incomplete" for o in output)
    if cut:
        reason = trig.detail if trig.outcome == "incomplete" and trig.detail else "max_output_tokens"
        return Built(output, completion + reasoning, reasoning, "incomplete", None, {"reason": reason})
    return Built(output, completion + reasoning, reasoning, "completed", None, None)


def context_for(state: ResponsesState, body: dict) -> tuple[list[dict], str | None]:
    """Items the model sees before the new input, and the conversation the response belongs to."""
    previous = body.get("previous_response_id")
    conversation = body.get("conversation")
    if previous and conversation:
        raise bad_request("Mutually exclusive parameters: Ensure you are only providing one of: "
                          "'previous_response_id' or 'conversation'.", code="mutually_exclusive_parameters")
    if previous:
        prev = state.responses.get(previous)
        if prev is None or not prev.stored:
            raise ApiError(404, f"Previous response with id '{previous}' not found.", param="previous_response_id",
                           code="previous_response_not_found")
        return prev.items_after(), None
    if conversation:
        conv_id = conversation if isinstance(conversation, str) else conversation.get("id")
        if conv_id not in state.conversations:
            raise ApiError(404, f"Conversation with id '{conv_id}' not found.", param="conversation")
        return list(state.conversation_items.get(conv_id, [])), conv_id
    return [], None


def usage(input_tokens: int, cached: int, output_tokens: int, reasoning_tokens: int) -> dict:
    return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + output_tokens}


def input_token_count(body: dict, context: list[dict], items: list[dict]) -> tuple[int, int]:
    """(input tokens, of which cached): the chained context counts as a prompt-cache hit."""
    instructions = body.get("instructions") or ""
    tool_text = json.dumps(body.get("tools") or [], separators=(",", ":")) if body.get("tools") else ""
    cached = tokens(" ".join(item_text(i) for i in context))
    fresh = tokens(" ".join([instructions, tool_text] + [item_text(i) for i in items]))
    return cached + fresh, cached


def create(state: ResponsesState, store: Store, body: dict, include: list[str], phase_seconds: float) -> StoredResponse:
    if not body.get("model") and not body.get("prompt"):
        raise ApiError(400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    background = bool(body.get("background"))
    stored = body.get("store") is not False
    if background and not stored:
        raise bad_request("Background mode requires 'store' to be true.", param="background")
    context, conv_id = context_for(state, body)
    items = input_resources(store, body.get("input"))
    metadata = body.get("metadata") or {}
    trig = triggers(" ".join([last_user_text(items), body.get("instructions") or "", *map(str, metadata.values())]))
    now = store.now()
    built = build_output(state, store, body, items, context, trig, include)
    input_tokens, cached = input_token_count(body, context, items)
    phase = phase_seconds * (5 if trig.slow else 1)
    tool_items = sum(1 for o in built.output if o["type"] not in ("message", "reasoning"))
    in_progress_at = now + phase if background else now
    done_at = now + phase * (2 + tool_items) if background else now
    final = {
        "id": new_id(store, "resp"),
        "object": "response",
        "created_at": now,
        "status": built.status,
        "background": background,
        "completed_at": int(done_at) if built.status == "completed" else None,
        "conversation": {"id": conv_id} if conv_id else None,
        "error": built.error,
        "incomplete_details": built.incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": body.get("model"),
        "output": built.output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": body.get("reasoning") or {"effort": None, "generate_summary": None, "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": body.get("service_tier") or "default",
        "store": stored,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": [echo_tool(t) for t in body.get("tools") or []],
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": usage(input_tokens, cached, built.output_tokens, built.reasoning_tokens),
        "user": body.get("user"),
        "metadata": metadata,
    }
    resp = StoredResponse(final=final, input_items=items, context=context, background=background, stored=stored,
                          in_progress_at=in_progress_at, done_at=done_at, conversation_id=conv_id)
    state.responses[resp.id] = resp
    if conv_id and not background:
        append_to_conversation(state, resp, now)
    return resp


def cancel(resp: StoredResponse, now: float) -> None:
    if not resp.background:
        raise bad_request("Only responses created with background=true can be cancelled.")
    status = resp.status(now)
    if status in TERMINAL and status != "cancelled":
        raise bad_request(f"Cannot cancel a response with status '{status}'.")
    if resp.cancelled_at is None:
        resp.cancelled_at = now
        resp.appended = True  # a cancelled response leaves its conversation as it was


# -- conversations -------------------------------------------------------------------------------
def conversation_item(item: dict, conv_id: str, created_at: int) -> dict:
    """An item as the Conversations API returns it (the recorded shape adds object, conversation_id
    and created_at to the item)."""
    return {"id": item["id"], "object": "conversation.item", "conversation_id": conv_id,
            **{k: v for k, v in item.items() if k != "id"}, "created_at": created_at}


def append_to_conversation(state: ResponsesState, resp: StoredResponse, now: float) -> None:
    conv_id = resp.conversation_id
    if conv_id in state.conversations:
        items = state.conversation_items.setdefault(conv_id, [])
        items.extend(conversation_item(i, conv_id, int(now)) for i in resp.input_items + resp.final["output"])
    resp.appended = True


def as_item(item: dict) -> dict:
    """A conversation item as a model input item (what a response in the conversation sees)."""
    return {k: v for k, v in item.items() if k not in ("object", "conversation_id", "created_at")}
