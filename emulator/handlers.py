"""HTTP handlers for assistants, threads, messages, runs and run steps (v1 and v2), with streaming."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from emulator import models, sse
from emulator.app import ENGINE, SETTINGS, send_json
from emulator.errors import ApiError, bad_request, missing, not_found, unknown_parameter
from emulator.http_helpers import (check_metadata, list_response, lookup, open_event_stream, read_json, store_of,
                                   version_of)
from emulator.models import V1, V2
from emulator.runs import RUN_TTL, TERMINAL, Run
from emulator.script import make_plan
from emulator.state import Store
from emulator.vector_api import add_vs_file, create_vector_store

def check_tools(tools: list[dict] | None, version: str, param: str = "tools") -> list[dict]:
    """The tools with OpenAI's defaults filled in (the spec's schema has checked each one's type)."""
    if tools is None:
        return []
    out = []
    for i, tool in enumerate(tools):
        kind = tool["type"]
        if kind == "function" and not tool["function"]["name"]:
            raise missing(f"{param}[{i}].function.name")
        tool = dict(tool)
        if kind == "file_search":
            fs = dict(tool.get("file_search") or {})
            fs.setdefault("ranking_options", {"ranker": "default_2024_08_21", "score_threshold": 0.0})
            tool["file_search"] = fs
        if kind == "function":
            fn = dict(tool["function"])
            fn.setdefault("parameters", {"type": "object", "properties": {}})
            if version == V2:  # `strict` came after the last v1 spec (2024-04) and SDK (1.20.0)
                fn.setdefault("strict", False)
            tool["function"] = fn
        out.append(tool)
    return out


def check_version_fields(body: dict, version: str) -> None:
    """v1-only fields under v2 (and the reverse) are rejected as OpenAI did."""
    forbidden = ("file_ids",) if version == V2 else ("tool_resources", "attachments")
    for name in forbidden:
        if name in body:
            raise unknown_parameter(name)


def tool_resources(body: dict, store: Store) -> dict:
    res = body.get("tool_resources") or {}
    out: dict[str, Any] = {}
    if "code_interpreter" in res:
        out["code_interpreter"] = {"file_ids": list((res["code_interpreter"] or {}).get("file_ids") or [])}
    if "file_search" in res:
        fs = res["file_search"] or {}
        ids = list(fs.get("vector_store_ids") or [])
        for spec in fs.get("vector_stores") or []:  # inline creation helper
            ids.append(create_vector_store(store, spec)["id"])
        for vs_id in ids:
            if vs_id not in store.vector_stores:
                raise not_found("vector store", vs_id)
        out["file_search"] = {"vector_store_ids": ids}
    return out


def file_ids_param(body: dict, store: Store) -> list[str]:
    ids = list(body.get("file_ids") or [])
    for fid in ids:
        if fid not in store.files:
            raise bad_request(f"Invalid 'file_ids': file with id '{fid}' was not found.", param="file_ids")
    return ids


# -- assistants ------------------------------------------------------------------------------------
async def create_assistant(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    body = await read_json(request)
    check_version_fields(body, version)
    if not body.get("model"):
        raise missing("model")
    a = {
        "id": store.ids.new("asst"), "created_at": store.now(), "name": body.get("name"),
        "description": body.get("description"), "model": body["model"], "instructions": body.get("instructions"),
        "tools": check_tools(body.get("tools"), version), "top_p": body.get("top_p", 1.0),
        "temperature": body.get("temperature", 1.0), "tool_resources": tool_resources(body, store),
        "file_ids": file_ids_param(body, store), "metadata": check_metadata(body.get("metadata")),
        "response_format": body.get("response_format", "auto"),
    }
    store.assistants[a["id"]] = a
    return await send_json(request, models.assistant(a, version))


async def get_assistant(request: web.Request) -> web.StreamResponse:
    a = lookup(store_of(request).assistants, "assistant", request.match_info["assistant_id"])
    return await send_json(request, models.assistant(a, version_of(request)))


async def update_assistant(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    a = lookup(store.assistants, "assistant", request.match_info["assistant_id"])
    body = await read_json(request)
    check_version_fields(body, version)
    for name in ("name", "description", "model", "instructions", "top_p", "temperature", "response_format"):
        if name in body:
            a[name] = body[name]
    if "tools" in body:
        a["tools"] = check_tools(body["tools"], version)
    if "tool_resources" in body:
        a["tool_resources"] = tool_resources(body, store)
    if "file_ids" in body:
        a["file_ids"] = file_ids_param(body, store)
    if "metadata" in body:
        a["metadata"] = check_metadata(body["metadata"])
    return await send_json(request, models.assistant(a, version))


async def delete_assistant(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    a = lookup(store.assistants, "assistant", request.match_info["assistant_id"])
    del store.assistants[a["id"]]
    return await send_json(request, models.deleted(a["id"], "assistant"))


async def list_assistants(request: web.Request) -> web.StreamResponse:
    version = version_of(request)
    items = list(store_of(request).assistants.values())
    return await send_json(request, list_response(request, items, lambda a: models.assistant(a, version)))


# -- v1 assistant files ----------------------------------------------------------------------------
def _v1_only(request: web.Request) -> None:
    if version_of(request) != V1:
        raise bad_request(f"{request.method} {request['api_path']} is only available in v1 of the Assistants API: "
                          "use tool_resources and attachments in v2, or send 'OpenAI-Beta: assistants=v1'.")


def _assistant_file(a: dict, file_id: str, store: Store) -> dict:
    return {"id": file_id, "object": "assistant.file", "created_at": store.files[file_id]["created_at"]
            if file_id in store.files else a["created_at"], "assistant_id": a["id"]}


async def create_assistant_file(request: web.Request) -> web.StreamResponse:
    _v1_only(request)
    store = store_of(request)
    a = lookup(store.assistants, "assistant", request.match_info["assistant_id"])
    body = await read_json(request)
    file_id = body.get("file_id")
    if not file_id:
        raise missing("file_id")
    lookup(store.files, "file", file_id)
    if file_id not in a["file_ids"]:
        a["file_ids"].append(file_id)
    return await send_json(request, _assistant_file(a, file_id, store))


async def list_assistant_files(request: web.Request) -> web.StreamResponse:
    _v1_only(request)
    store = store_of(request)
    a = lookup(store.assistants, "assistant", request.match_info["assistant_id"])
    items = [_assistant_file(a, fid, store) for fid in a["file_ids"]]
    return await send_json(request, list_response(request, items, lambda x: x))


async def get_assistant_file(request: web.Request) -> web.StreamResponse:
    _v1_only(request)
    store = store_of(request)
    a = lookup(store.assistants, "assistant", request.match_info["assistant_id"])
    file_id = request.match_info["file_id"]
    if file_id not in a["file_ids"]:
        raise not_found("assistant file", file_id)
    return await send_json(request, _assistant_file(a, file_id, store))


async def delete_assistant_file(request: web.Request) -> web.StreamResponse:
    _v1_only(request)
    store = store_of(request)
    a = lookup(store.assistants, "assistant", request.match_info["assistant_id"])
    file_id = request.match_info["file_id"]
    if file_id not in a["file_ids"]:
        raise not_found("assistant file", file_id)
    a["file_ids"].remove(file_id)
    return await send_json(request, models.deleted(file_id, "assistant.file"))


# -- threads and messages --------------------------------------------------------------------------
def new_thread(store: Store, body: dict, version: str) -> dict:
    check_version_fields(body, version)
    t = {"id": store.ids.new("thread"), "created_at": store.now(),
         "metadata": check_metadata(body.get("metadata")), "tool_resources": tool_resources(body, store)}
    messages = body.get("messages") or []
    if not isinstance(messages, list):
        raise bad_request("Invalid type for 'messages': expected an array.", param="messages", code="invalid_type")
    store.threads[t["id"]] = t
    store.thread_messages[t["id"]] = []
    store.thread_runs[t["id"]] = []
    for i, m in enumerate(messages):
        new_message(store, t, m, version, param=f"messages[{i}]")
    return t


def message_content(content: Any, param: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append({"type": "text", "text": {"value": part.get("text", ""), "annotations": []}})
            elif isinstance(part, dict) and part.get("type") in ("image_file", "image_url"):
                parts.append(dict(part))
        return parts
    raise missing(f"{param}.content" if param else "content")


def new_message(store: Store, t: dict, body: dict, version: str, param: str = "") -> dict:
    check_version_fields(body, version)
    role = body.get("role")
    if role is None:
        raise missing(f"{param}.role" if param else "role")
    if role not in ("user", "assistant"):
        raise bad_request(f"Invalid value: '{role}'. Supported values are: 'user' and 'assistant'.",
                          param=f"{param}.role" if param else "role", code="invalid_value")
    attachments = []
    for att in body.get("attachments") or []:
        lookup(store.files, "file", att.get("file_id", ""))
        attachments.append({"file_id": att["file_id"], "tools": list(att.get("tools") or [])})
    m = {
        "id": store.ids.new("msg"), "created_at": store.now(), "assistant_id": None, "thread_id": t["id"],
        "run_id": None, "status": "completed", "incomplete_details": None, "incomplete_at": None,
        "completed_at": store.now(), "role": role, "content": message_content(body.get("content"), param),
        "attachments": attachments, "file_ids": file_ids_param(body, store),
        "metadata": check_metadata(body.get("metadata")),
    }
    search_files = [a["file_id"] for a in attachments if any(x.get("type") == "file_search" for x in a["tools"])]
    if search_files:
        attach_to_thread_store(store, t, search_files)
    store.messages[m["id"]] = m
    store.thread_messages.setdefault(t["id"], []).append(m["id"])
    return m


def attach_to_thread_store(store: Store, t: dict, file_ids: list[str]) -> None:
    """Files attached for file_search go into the thread's vector store, created on first use with
    a 7-day expiry after last activity, as OpenAI does."""
    res = t.setdefault("tool_resources", {})
    ids = (res.get("file_search") or {}).get("vector_store_ids") or []
    if ids:
        vs = store.vector_stores[ids[0]]
    else:
        vs = create_vector_store(store, {"expires_after": {"anchor": "last_active_at", "days": 7}})
        res["file_search"] = {"vector_store_ids": [vs["id"]]}
    for fid in file_ids:
        add_vs_file(store, vs, fid, None, None)


async def create_thread(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    t = new_thread(store, await read_json(request), version)
    return await send_json(request, models.thread(t, version))


async def list_threads(request: web.Request) -> web.StreamResponse:
    """Foundry projects only: OpenAI's Assistants API has no way to list threads."""
    version = version_of(request)
    items = list(store_of(request).threads.values())
    return await send_json(request, list_response(request, items, lambda t: models.thread(t, version)))


async def get_thread(request: web.Request) -> web.StreamResponse:
    t = lookup(store_of(request).threads, "thread", request.match_info["thread_id"])
    return await send_json(request, models.thread(t, version_of(request)))


async def update_thread(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    t = lookup(store.threads, "thread", request.match_info["thread_id"])
    body = await read_json(request)
    check_version_fields(body, version)
    if "metadata" in body:
        t["metadata"] = check_metadata(body["metadata"])
    if "tool_resources" in body:
        t["tool_resources"] = tool_resources(body, store)
    return await send_json(request, models.thread(t, version))


async def delete_thread(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    t = lookup(store.threads, "thread", request.match_info["thread_id"])
    del store.threads[t["id"]]
    for message_id in store.thread_messages.pop(t["id"], []):
        store.messages.pop(message_id, None)
    for run_id in store.thread_runs.pop(t["id"], []):
        run = store.runs.pop(run_id)
        run.actions.clear()  # a stream still open on it ends instead of touching deleted steps
        store.active_runs.pop(run_id, None)
        for step_id in run.step_ids:
            store.steps.pop(step_id, None)
    return await send_json(request, models.deleted(t["id"], "thread"))


async def create_message(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    t = lookup(store.threads, "thread", request.match_info["thread_id"])
    active = active_run(store, t["id"])
    if active is not None:
        raise bad_request(f"Can't add messages to {t['id']} while a run {active.id} is active.")
    m = new_message(store, t, await read_json(request), version)
    return await send_json(request, models.message(m, version))


def thread_message(store: Store, request: web.Request) -> dict:
    t = lookup(store.threads, "thread", request.match_info["thread_id"])
    m = lookup(store.messages, "message", request.match_info["message_id"])
    if m["thread_id"] != t["id"]:
        raise not_found("message", m["id"])
    return m


async def get_message(request: web.Request) -> web.StreamResponse:
    m = thread_message(store_of(request), request)
    return await send_json(request, models.message(m, version_of(request)))


async def update_message(request: web.Request) -> web.StreamResponse:
    m = thread_message(store_of(request), request)
    body = await read_json(request)
    if "metadata" in body:
        m["metadata"] = check_metadata(body["metadata"])
    return await send_json(request, models.message(m, version_of(request)))


async def delete_message(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    m = thread_message(store, request)
    del store.messages[m["id"]]
    store.thread_messages[m["thread_id"]].remove(m["id"])
    return await send_json(request, models.deleted(m["id"], "thread.message"))


async def list_messages(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    t = lookup(store.threads, "thread", request.match_info["thread_id"])
    items = [store.messages[mid] for mid in store.thread_messages.get(t["id"], [])]
    run_id = request.query.get("run_id")
    if run_id:
        items = [m for m in items if m["run_id"] == run_id]
    return await send_json(request, list_response(request, items, lambda m: models.message(m, version)))


def _message_file(m: dict, file_id: str) -> dict:
    return {"id": file_id, "object": "thread.message.file", "created_at": m["created_at"], "message_id": m["id"]}


async def list_message_files(request: web.Request) -> web.StreamResponse:
    _v1_only(request)
    m = thread_message(store_of(request), request)
    items = [_message_file(m, fid) for fid in m["file_ids"]]
    return await send_json(request, list_response(request, items, lambda x: x))


async def get_message_file(request: web.Request) -> web.StreamResponse:
    _v1_only(request)
    m = thread_message(store_of(request), request)
    file_id = request.match_info["file_id"]
    if file_id not in m["file_ids"]:
        raise not_found("message file", file_id)
    return await send_json(request, _message_file(m, file_id))


# -- runs ------------------------------------------------------------------------------------------
def active_run(store: Store, thread_id: str) -> Run | None:
    for run_id in store.thread_runs.get(thread_id, []):
        run = store.runs[run_id]
        if run.status not in TERMINAL:
            return run
    return None


def message_text(m: dict) -> str:
    return " ".join(p["text"]["value"] for p in m["content"] if p.get("type") == "text")


def new_run(request: web.Request, store: Store, t: dict, body: dict, version: str,
            run_resources: dict | None = None) -> Run:
    check_version_fields({k: v for k, v in body.items() if k != "tool_resources"}, version)
    assistant_id = body.get("assistant_id")
    if not assistant_id:
        raise missing("assistant_id")
    a = lookup(store.assistants, "assistant", assistant_id)
    if active_run(store, t["id"]) is not None:
        raise bad_request(f"Thread {t['id']} already has an active run {active_run(store, t['id']).id}.")
    for i, m in enumerate(body.get("additional_messages") or []):
        new_message(store, t, m, version, param=f"additional_messages[{i}]")
    messages = [store.messages[mid] for mid in store.thread_messages.get(t["id"], [])]
    user_messages = [m for m in messages if m["role"] == "user"]
    instructions = body.get("instructions", a["instructions"])
    if body.get("additional_instructions"):
        instructions = ((instructions or "") + "\n" + body["additional_instructions"]).strip()
    if not user_messages and not instructions:
        raise bad_request("Run creation requires a Thread with a user message or an assistant with instructions.",
                          code="invalid_thread")
    tools = check_tools(body["tools"], version) if body.get("tools") is not None else a["tools"]
    metadata = check_metadata(body.get("metadata"))
    settings = request.app[SETTINGS]
    now = store.now()
    resources = run_resources if run_resources is not None else a["tool_resources"]
    vs_ids = list(((resources or {}).get("file_search") or {}).get("vector_store_ids") or [])
    vs_ids += [v for v in ((t.get("tool_resources") or {}).get("file_search") or {}).get("vector_store_ids") or []
               if v not in vs_ids]
    retrieval_files = list(a["file_ids"]) + [f for m in messages for f in m["file_ids"] if f not in a["file_ids"]]
    query = message_text(user_messages[-1]) if user_messages else ""
    trigger_text = "\n".join([query, instructions or "", *metadata.values()])
    prompt_text = (instructions or "") + "".join(message_text(m) for m in messages)
    plan = make_plan(tools=tools, tool_choice=body.get("tool_choice", "auto"), trigger_text=trigger_text,
                     query=query, prompt_text=prompt_text, vector_store_ids=vs_ids,
                     retrieval_file_ids=retrieval_files, phase_seconds=settings.phase_seconds,
                     parallel_tool_calls=body.get("parallel_tool_calls", True) is not False)
    obj = {
        "id": store.ids.new("run"), "created_at": now, "assistant_id": a["id"], "thread_id": t["id"],
        "status": "queued", "started_at": None, "expires_at": now + RUN_TTL, "cancelled_at": None,
        "failed_at": None, "completed_at": None, "required_action": None, "last_error": None,
        "model": body.get("model") or a["model"], "instructions": instructions, "tools": tools,
        "tool_resources": resources or {}, "file_ids": list(a["file_ids"]), "metadata": metadata,
        "temperature": body.get("temperature", a.get("temperature", 1.0)),
        "top_p": body.get("top_p", a.get("top_p", 1.0)),
        "max_completion_tokens": body.get("max_completion_tokens"),
        "max_prompt_tokens": body.get("max_prompt_tokens"),
        "truncation_strategy": body.get("truncation_strategy") or {"type": "auto", "last_messages": None},
        "incomplete_details": None, "usage": None,
        "response_format": body.get("response_format", a.get("response_format", "auto")),
        "tool_choice": body.get("tool_choice", "auto"),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
    }
    run = Run(obj=obj, version=version, plan=plan, include_content=wants_content(request))
    run.listeners = 1 if body.get("stream") else 0
    store.runs[run.id] = run
    store.thread_runs.setdefault(t["id"], []).append(run.id)
    request.app[ENGINE].start(run)
    return run


def wants_content(request: web.Request) -> bool:
    include = request.query.getall("include[]", []) + request.query.getall("include", [])
    return "step_details.tool_calls[*].file_search.results[*].content" in include


def poll_headers(request: web.Request) -> dict[str, str]:
    return {"openai-poll-after-ms": str(request.app[SETTINGS].poll_after_ms)}


async def create_run(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    t = lookup(store.threads, "thread", request.match_info["thread_id"])
    body = await read_json(request)
    run = new_run(request, store, t, body, version)
    if body.get("stream"):
        return await stream_run(request, run, [])
    return await send_json(request, models.run(run.obj, version), extra_headers=poll_headers(request))


async def create_thread_and_run(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    body = await read_json(request)
    if not body.get("assistant_id"):
        raise missing("assistant_id")
    lookup(store.assistants, "assistant", body["assistant_id"])
    t = new_thread(store, body.get("thread") or {}, version)
    resources = tool_resources(body, store) if "tool_resources" in body else None
    run = new_run(request, store, t, body, version, run_resources=resources)
    if body.get("stream"):
        return await stream_run(request, run, [("thread.created", models.thread(t, version))])
    return await send_json(request, models.run(run.obj, version), extra_headers=poll_headers(request))


def thread_run(store: Store, request: web.Request) -> Run:
    t = lookup(store.threads, "thread", request.match_info["thread_id"])
    run = lookup(store.runs, "run", request.match_info["run_id"])
    if run.obj["thread_id"] != t["id"]:
        raise not_found("run", run.id)
    return run


async def get_run(request: web.Request) -> web.StreamResponse:
    run = thread_run(store_of(request), request)
    return await send_json(request, models.run(run.obj, version_of(request)), extra_headers=poll_headers(request))


async def update_run(request: web.Request) -> web.StreamResponse:
    run = thread_run(store_of(request), request)
    body = await read_json(request)
    if version_of(request) == V1 and run.status not in TERMINAL:
        # as recorded (ruby-openai runs_modify.yml): v1 refused before looking at the body
        raise bad_request(f"Cannot update run with status '{run.status}'.")
    if "metadata" in body:
        run.obj["metadata"] = check_metadata(body["metadata"])
    return await send_json(request, models.run(run.obj, version_of(request)))


async def list_runs(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    t = lookup(store.threads, "thread", request.match_info["thread_id"])
    items = [store.runs[rid].obj for rid in store.thread_runs.get(t["id"], [])]
    return await send_json(request, list_response(request, items, lambda r: models.run(r, version)))


async def cancel_run(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    run = thread_run(store, request)
    if run.status in TERMINAL or run.status == "cancelling":
        raise bad_request(f"Cannot cancel run with status '{run.status}'.")
    request.app[ENGINE].cancel(run)
    return await send_json(request, models.run(run.obj, version_of(request)))


async def submit_tool_outputs(request: web.Request) -> web.StreamResponse:
    store, engine = store_of(request), request.app[ENGINE]
    run = thread_run(store, request)
    body = await read_json(request)
    if run.status != "requires_action":
        raise bad_request(f'Runs in status "{run.status}" do not accept tool outputs.')
    outputs = body.get("tool_outputs")
    if not isinstance(outputs, list):
        raise missing("tool_outputs")
    pending = engine.pending_call_ids(run)
    given = {}
    for i, item in enumerate(outputs):
        call_id = (item or {}).get("tool_call_id")
        if call_id not in pending:
            raise bad_request(f"Invalid tool_call_id: {call_id}. No tool call found with that id.",
                              param=f"tool_outputs[{i}].tool_call_id")
        given[call_id] = str(item.get("output", ""))
    missing_ids = [c for c in pending if c not in given]
    if missing_ids:
        raise bad_request(f"Expected tool outputs for call_ids {pending}, got {list(given)}.",
                          param="tool_outputs")
    if body.get("stream"):
        run.listeners += 1
        run.events.clear()
        engine.submit_tool_outputs(run, given)
        return await stream_run(request, run, [], already_listening=True)
    engine.submit_tool_outputs(run, given)
    return await send_json(request, models.run(run.obj, version_of(request)))


async def list_steps(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    run = thread_run(store, request)
    content = wants_content(request)
    items = [store.steps[sid] for sid in run.step_ids]
    return await send_json(request, list_response(
        request, items, lambda s: models.step(s, version, include_content=content)))


async def get_step(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    run = thread_run(store, request)
    step_id = request.match_info["step_id"]
    if step_id not in run.step_ids:
        raise ApiError(404, f"No run step found with id '{step_id}'.")
    return await send_json(request, models.step(store.steps[step_id], version_of(request),
                                                include_content=wants_content(request)))


# -- streaming -------------------------------------------------------------------------------------
async def stream_run(request: web.Request, run: Run, prefix: list[tuple[str, dict]],
                     already_listening: bool = False) -> web.StreamResponse:
    """Write the run's events as they happen, one write per event, until it stops or ends."""
    store, engine = store_of(request), request.app[ENGINE]
    fault = request.get("fault")
    resp = await open_event_stream(request)
    written = 0
    cursor = 0
    pending = list(prefix)
    try:
        while True:
            pending.extend(run.events[cursor:])
            cursor = len(run.events)
            for name, payload in pending:
                if fault is not None and fault.reset_after_events is not None and written >= fault.reset_after_events:
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                await resp.write(sse.encode(name, payload))
                written += 1
                if fault is not None and fault.slow_body_ms:
                    await asyncio.sleep(fault.slow_body_ms / 1000)
            pending = []
            if not run.actions:
                if cursor == len(run.events):
                    break
                continue  # another request advanced the run while we wrote: send what it emitted
            wait = store.clock.wall_seconds(run.next_at - store.clock.now())
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                store.clock.advance_to(run.next_at)
            engine.advance(run, store.clock.now())
        await resp.write(sse.DONE)
        await resp.write_eof()
        return resp
    finally:
        run.listeners -= 1
        if not run.listeners:
            run.events.clear()
