#!/usr/bin/env python3
"""Copy the recorded interactions the parser tests need into compact JSON fixtures.

Source: ruby-openai's VCR cassettes (real api.openai.com traffic, v1 and v2), by default in
../shared/recordings/ruby-openai. Output: tests/fixtures/recordings/<name>.json, one interaction
each, keeping only what an Exchange carries: method, path, query, the request headers the parser
reads (never Authorization or cookies), body, status, the response headers it reads, body.

The cassettes contain no tool calls, so a few payloads are synthetic: built here from the shapes
in the OpenAPI spec (RunStepObject step_details.tool_calls, RunObject.required_action, the v1
`retrieval` tool, the early-v2 vector store `bytes` field) and marked "synthetic": true.

Usage: python scripts/extract_recordings.py [--source DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent

# fixture name -> (cassette, interaction index)
PICKS: dict[str, tuple[str, int]] = {
    "assistants_create_v1": ("assistants_create.yml", 0),
    "assistants_create_v2": ("assistants_create.yml", 1),
    "threads_create_v1": ("threads_create.yml", 0),
    "threads_create_v2": ("threads_create.yml", 1),
    "messages_create_v1": ("messages_create.yml", 0),
    "messages_create_v2": ("messages_create.yml", 2),
    "runs_create_v1": ("runs_create.yml", 1),
    "runs_create_v2": ("runs_create.yml", 5),
    "runs_create_v2_error": ("runs_create.yml", 3),
    "runs_create_thread_and_run_v2": ("runs_create_thread_and_run.yml", 1),
    "runs_retrieve_v1": ("runs_retrieve.yml", 0),
    "runs_retrieve_v2": ("runs_retrieve.yml", 3),
    "runs_list_v2": ("runs_list.yml", 3),
    "runs_cancel_v2": ("runs_cancel.yml", 3),
    "runs_modify_v2_error": ("runs_modify.yml", 3),
    "runs_streamed_create_v1": ("runs_streamed_create.yml", 0),
    "runs_streamed_create_v2": ("runs_streamed_create.yml", 3),
    "runs_submit_tool_outputs_v2": ("runs_submit_tool_outputs.yml", 3),
    "run_steps_list_v1": ("run_steps_list.yml", 1),
    "run_steps_retrieve_v2_404": ("run_steps_retrieve.yml", 0),
    "vector_stores_create": ("vector_stores_create.yml", 0),
    "vector_stores_list": ("vector_stores_list.yml", 0),
    "vector_stores_retrieve": ("vector_stores_retrieve.yml", 0),
    "vector_stores_modify": ("vector_stores_modify.yml", 0),
    "vector_stores_delete": ("vector_stores_delete.yml", 0),
    "vector_stores_search": ("vector_stores_search.yml", 0),
    "vector_stores_create_sparse": ("vector_stores_search_setup.yml", 0),
    "vector_store_files_create": ("vector_store_files_create.yml", 0),
    "vector_store_files_list": ("vector_store_files_list.yml", 0),
    "vector_store_files_retrieve": ("vector_store_files_retrieve.yml", 0),
    "vector_store_files_delete": ("vector_store_files_delete.yml", 0),
    "vector_store_file_batches_create": ("vector_store_file_batches_create.yml", 0),
    "vector_store_file_batches_list_files_500": ("vector_store_file_batches_list.yml", 0),
    "vector_store_file_batches_list_files": ("vector_store_file_batches_list.yml", 1),
    "files_upload": ("files_upload_file.yml", 0),
    "usage_vector_stores": ("usage_vector_stores.yml", 0),
}

REQUEST_HEADERS = {"content-type", "openai-beta", "user-agent", "accept-encoding"}
RESPONSE_HEADERS = {"content-type", "content-encoding", "x-request-id", "openai-processing-ms"}
RESPONSE_PREFIXES = ("x-ratelimit-",)


def _headers(raw: dict | None, keep: set[str], prefixes: tuple[str, ...] = ()) -> list[list[str]]:
    out = []
    for name, values in (raw or {}).items():
        low = name.lower()
        if low in keep or low.startswith(prefixes):
            for value in values if isinstance(values, list) else [values]:
                out.append([low, str(value)])
    return out


def _interaction(cassette: Path, index: int) -> dict:
    item = yaml.safe_load(cassette.read_text())["http_interactions"][index]
    req, resp = item["request"], item["response"]
    url = urlsplit(req["uri"])
    return {
        "source": f"ruby-openai/{cassette.name}#{index}",
        "synthetic": False,
        "method": req["method"].upper(),
        "path": url.path,
        "query": url.query,
        "request_headers": _headers(req.get("headers"), REQUEST_HEADERS),
        "request_body": req.get("body", {}).get("string") or "",
        "status": resp["status"]["code"],
        "response_headers": _headers(resp.get("headers"), RESPONSE_HEADERS, RESPONSE_PREFIXES),
        "response_body": resp.get("body", {}).get("string") or "",
    }


def _synthetic(method: str, path: str, beta: str | None, status: int, body: object, request: object = None, sse: bool = False) -> dict:
    headers = [["content-type", "application/json"]]
    if beta:
        headers.append(["openai-beta", beta])
    return {
        "source": "synthetic: shapes from openai-openapi-2.3.0 / assistants-v1 specs",
        "synthetic": True,
        "method": method,
        "path": path,
        "query": "",
        "request_headers": headers,
        "request_body": json.dumps(request) if request is not None else "",
        "status": status,
        "response_headers": [["content-type", "text/event-stream; charset=utf-8" if sse else "application/json"], ["x-request-id", "req_synthetic"]],
        "response_body": body if isinstance(body, str) else json.dumps(body, indent=2),
    }


T, R, A = "thread_synth1", "run_synth1", "asst_synth1"


def _run(status: str, **over: object) -> dict:
    run = {
        "id": R, "object": "thread.run", "created_at": 1714433700, "assistant_id": A, "thread_id": T,
        "status": status, "started_at": 1714433702, "expires_at": 1714434300, "cancelled_at": None,
        "failed_at": None, "completed_at": None, "required_action": None, "last_error": None,
        "model": "gpt-4o", "instructions": "Answer with tools.",
        "tools": [{"type": "code_interpreter"}, {"type": "file_search"}, {"type": "function", "function": {"name": "get_weather"}}],
        "tool_resources": {}, "metadata": {}, "incomplete_details": None, "usage": None,
    }
    run.update(over)
    return run


def _step(step_id: str, tool_calls: list, **over: object) -> dict:
    step = {
        "id": step_id, "object": "thread.run.step", "created_at": 1714433703, "run_id": R,
        "assistant_id": A, "thread_id": T, "type": "tool_calls", "status": "completed",
        "cancelled_at": None, "completed_at": 1714433705, "expires_at": None, "failed_at": None,
        "last_error": None, "step_details": {"type": "tool_calls", "tool_calls": tool_calls},
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
    }
    step.update(over)
    return step


def synthetic_fixtures() -> dict[str, dict]:
    steps = {
        "object": "list",
        "data": [
            _step("step_ci", [{
                "id": "call_ci1", "type": "code_interpreter",
                "code_interpreter": {"input": "print(6*7)", "outputs": [{"type": "logs", "logs": "42\n"}, {"type": "image", "image": {"file_id": "file-img1"}}]},
            }]),
            _step("step_fs", [{
                "id": "call_fs1", "type": "file_search",
                "file_search": {
                    "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.5},
                    "results": [
                        {"file_id": "file-a", "file_name": "guide.md", "score": 0.91, "content": [{"type": "text", "text": "Ruby blocks \u2014 yield"}]},
                        {"file_id": "file-b", "file_name": "faq.txt", "score": 0.62, "content": [{"type": "text", "text": "Short."}]},
                    ],
                },
            }]),
            _step("step_fn", [{
                "id": "call_fn1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "output": "{\"temp\":21}"},
            }]),
            _step("step_msg", [], type="message_creation", usage=None, completed_at=1714433709,
                  step_details={"type": "message_creation", "message_creation": {"message_id": "msg_synth1"}}),
        ],
        "first_id": "step_ci", "last_id": "step_msg", "has_more": False,
    }
    required = _run("requires_action", required_action={"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [
        {"id": "call_fn1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_fn2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]}})
    outputs = {"tool_outputs": [{"tool_call_id": "call_fn1", "output": "{\"temp\":21}"}, {"tool_call_id": "call_fn2", "output": "12:00"}]}
    failed = _run("failed", failed_at=1714433710, last_error={"code": "rate_limit_exceeded", "message": "Rate limit reached"},
                  usage={"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10})
    completed = _run("completed", completed_at=1714433712, usage={"prompt_tokens": 300, "completion_tokens": 60, "total_tokens": 360})
    v1_assistant = {"id": "asst_v1retr", "object": "assistant", "created_at": 1699998504, "name": "retriever", "model": "gpt-4-turbo",
                    "instructions": "Use retrieval.", "tools": [{"type": "retrieval"}], "file_ids": ["file-v1a", "file-v1b"], "metadata": {}}
    v1_steps = {"object": "list", "data": [_step("step_v1r", [{"id": "call_r1", "type": "retrieval", "retrieval": {}}])], "has_more": False}
    early_vs = {"id": "vs_early", "object": "vector_store", "name": "early", "status": "completed", "bytes": 4096, "created_at": 1713000000,
                "file_counts": {"in_progress": 0, "completed": 2, "failed": 0, "cancelled": 0, "total": 2},
                "expires_after": {"anchor": "last_active_at", "days": 7}, "expires_at": 1713604800, "last_active_at": 1713000000}
    stream_tool = "".join(
        f"event: {name}\ndata: {json.dumps(obj)}\n\n"
        for name, obj in [
            ("thread.run.created", _run("queued", started_at=None)),
            ("thread.run.in_progress", _run("in_progress")),
            ("thread.run.step.created", _step("step_fn", [{"id": "call_fn1", "type": "function", "function": {"name": "get_weather", "arguments": "", "output": None}}], status="in_progress", completed_at=None, usage=None)),
            ("thread.run.step.delta", {"id": "step_fn", "object": "thread.run.step.delta", "delta": {"step_details": {"type": "tool_calls", "tool_calls": [{"index": 0, "type": "function", "function": {"arguments": "{\"city\":\"Paris\"}"}}]}}}),
            ("thread.run.requires_action", required),
        ]
    ) + "event: done\ndata: [DONE]\n\n"
    return {
        "synthetic_steps_list_tools": _synthetic("GET", f"/v1/threads/{T}/runs/{R}/steps", "assistants=v2", 200, steps),
        "synthetic_runs_retrieve_requires_action": _synthetic("GET", f"/v1/threads/{T}/runs/{R}", "assistants=v2", 200, required),
        "synthetic_runs_submit_tool_outputs": _synthetic("POST", f"/v1/threads/{T}/runs/{R}/submit_tool_outputs", "assistants=v2", 200, _run("queued"), outputs),
        "synthetic_runs_retrieve_completed": _synthetic("GET", f"/v1/threads/{T}/runs/{R}", "assistants=v2", 200, completed),
        "synthetic_runs_retrieve_failed": _synthetic("GET", "/v1/threads/thread_synth2/runs/run_synth2", "assistants=v2", 200,
                                                     dict(failed, id="run_synth2", thread_id="thread_synth2")),
        "synthetic_assistant_v1_retrieval": _synthetic("GET", "/v1/assistants/asst_v1retr", "assistants=v2", 200, v1_assistant),
        "synthetic_steps_list_v1_retrieval": _synthetic("GET", f"/v1/threads/{T}/runs/run_v1/steps", "assistants=v1", 200, v1_steps),
        "synthetic_vector_store_early_bytes": _synthetic("GET", "/v1/vector_stores/vs_early", "assistants=v2", 200, early_vs),
        "synthetic_stream_requires_action": _synthetic("POST", f"/v1/threads/{T}/runs", "assistants=v2", 200, stream_tool,
                                                       {"assistant_id": A, "stream": True}, sse=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "recordings" / "ruby-openai")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "recordings")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    fixtures = {name: _interaction(args.source / f, i) for name, (f, i) in PICKS.items()}
    fixtures.update(synthetic_fixtures())
    for name, fixture in fixtures.items():
        (args.out / f"{name}.json").write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(fixtures)} fixtures to {args.out}")


if __name__ == "__main__":
    main()
