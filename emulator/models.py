"""Wire shapes. Objects are kept in one internal form and rendered per API version (v1 or v2),
with keys in the order OpenAI sends them (see tests/fixtures/emulator/ for recorded shapes)."""

from __future__ import annotations

from typing import Any

V1 = "v1"
V2 = "v2"


def _pick(obj: dict, keys: tuple[str, ...]) -> dict:
    return {k: obj.get(k) for k in keys}


_ASSISTANT_V2 = ("id", "object", "created_at", "name", "description", "model", "instructions", "tools",
                 "top_p", "temperature", "tool_resources", "metadata", "response_format")
_ASSISTANT_V1 = ("id", "object", "created_at", "name", "description", "model", "instructions", "tools",
                 "file_ids", "metadata")


def tools(tool_list: list[dict], version: str) -> list[dict]:
    """Each version sees the other's retrieval tool under its own name (as OpenAI migrated them)."""
    out = []
    for tool in tool_list:
        if version == V1 and tool.get("type") == "file_search":
            tool = {"type": "retrieval"}
        elif version == V2 and tool.get("type") == "retrieval":
            tool = {"type": "file_search"}
        out.append(tool)
    return out


def assistant(a: dict, version: str) -> dict:
    out = _pick(a, _ASSISTANT_V2 if version == V2 else _ASSISTANT_V1)
    out["object"] = "assistant"
    out["tools"] = tools(a["tools"], version)
    if version == V2:
        out["tool_resources"] = tool_resources(a.get("tool_resources") or {})
    return out


def tool_resources(res: dict) -> dict:
    out: dict[str, Any] = {}
    if "code_interpreter" in res:
        out["code_interpreter"] = {"file_ids": list(res["code_interpreter"].get("file_ids", []))}
    if "file_search" in res:
        out["file_search"] = {"vector_store_ids": list(res["file_search"].get("vector_store_ids", []))}
    return out


def thread(t: dict, version: str) -> dict:
    out = {"id": t["id"], "object": "thread", "created_at": t["created_at"], "metadata": t["metadata"]}
    if version == V2:
        out["tool_resources"] = tool_resources(t.get("tool_resources") or {})
    return out


_MESSAGE = ("id", "object", "created_at", "assistant_id", "thread_id", "run_id", "status", "incomplete_details",
            "incomplete_at", "completed_at", "role", "content")


def message(m: dict, version: str) -> dict:
    out = _pick(m, _MESSAGE)
    out["object"] = "thread.message"
    out["content"] = [dict(part) for part in m["content"]]
    if version == V2:
        out["attachments"] = m.get("attachments") or []
    else:
        out["file_ids"] = m.get("file_ids") or []
    out["metadata"] = m["metadata"]
    return out


_RUN_HEAD = ("id", "object", "created_at", "assistant_id", "thread_id", "status", "started_at", "expires_at",
             "cancelled_at", "failed_at", "completed_at", "required_action", "last_error", "model", "instructions",
             "tools")
_RUN_TAIL = ("metadata", "temperature", "top_p", "max_completion_tokens", "max_prompt_tokens",
             "truncation_strategy", "incomplete_details", "usage", "response_format", "tool_choice")


def run(r: dict, version: str) -> dict:
    out = _pick(r, _RUN_HEAD)
    out["object"] = "thread.run"
    out["tools"] = tools(r["tools"], version)
    if version == V2 and out["instructions"] is None:
        out["instructions"] = ""  # v2 always reports a string (the spec has no null here)
    if version == V1 and out["status"] == "incomplete":
        out["status"] = "completed"  # v1 had no "incomplete" run status: it reported completed + incomplete_details
    if version == V2:
        out["tool_resources"] = tool_resources(r.get("tool_resources") or {})
    else:
        out["file_ids"] = r.get("file_ids") or []
    out.update(_pick(r, _RUN_TAIL))
    if version == V2:
        out["parallel_tool_calls"] = r.get("parallel_tool_calls", True)
    return out


_STEP = ("id", "object", "created_at", "run_id", "assistant_id", "thread_id", "type", "status", "cancelled_at",
         "completed_at", "expired_at", "failed_at", "last_error", "step_details", "usage", "metadata")


def step(s: dict, version: str, *, include_content: bool = False) -> dict:
    out = _pick(s, _STEP)
    out["object"] = "thread.run.step"
    out["step_details"] = step_details(s["step_details"], version, include_content=include_content)
    return out


def step_details(details: dict, version: str, *, include_content: bool) -> dict:
    if details["type"] != "tool_calls":
        return {"type": details["type"], details["type"]: dict(details[details["type"]])}
    calls = []
    for call in details["tool_calls"]:
        call = dict(call)
        if call["type"] == "file_search":
            fs = dict(call["file_search"])
            results = []
            for res in fs.get("results", []):
                res = dict(res)
                if not include_content:
                    res.pop("content", None)
                results.append(res)
            fs["results"] = results
            call["file_search"] = fs
        calls.append(call)
    return {"type": "tool_calls", "tool_calls": calls}


_FILE = ("object", "id", "purpose", "filename", "bytes", "created_at", "expires_at", "status", "status_details")


def file(f: dict, version: str) -> dict:
    out = _pick(f, _FILE)
    out["object"] = "file"
    if version == V1 or out["expires_at"] is None:
        out.pop("expires_at")
    return out


_VS = ("id", "object", "name", "status", "usage_bytes", "created_at", "file_counts", "metadata", "expires_after",
       "expires_at", "last_active_at")


def vector_store(v: dict, version: str) -> dict:
    out = _pick(v, _VS)
    out["object"] = "vector_store"
    out["file_counts"] = dict(v["file_counts"])
    return out


_VS_FILE = ("id", "object", "usage_bytes", "created_at", "vector_store_id", "status", "last_error",
            "chunking_strategy", "attributes")


def vector_store_file(f: dict, version: str) -> dict:
    out = _pick(f, _VS_FILE)
    out["object"] = "vector_store.file"
    return out


_BATCH = ("id", "object", "created_at", "status", "vector_store_id", "file_counts")


def file_batch(b: dict, version: str) -> dict:
    out = _pick(b, _BATCH)
    out["object"] = "vector_store.file_batch"
    out["file_counts"] = dict(b["file_counts"])
    return out


def deleted(object_id: str, kind: str) -> dict:
    return {"id": object_id, "object": f"{kind}.deleted", "deleted": True}


def page(data: list[dict], has_more: bool) -> dict:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
