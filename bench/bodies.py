"""Realistic Assistants response bodies for the fast upstream (shapes as the real API sends them,
pretty-printed as OpenAI does; the ids are fixed so every request costs the same)."""

from __future__ import annotations

import json

_RUN = {
    "id": "run_OHJXOmN3ujL9negG5WStzEVq",
    "object": "thread.run",
    "created_at": 1714433726,
    "assistant_id": "asst_fqxhpajzq5zgGCF42bx98WkL",
    "thread_id": "thread_zLTcdCfBOWhdA16mh490ukiZ",
    "status": "completed",
    "started_at": 1714433726,
    "expires_at": None,
    "cancelled_at": None,
    "failed_at": None,
    "completed_at": 1714433731,
    "required_action": None,
    "last_error": None,
    "model": "gpt-4o",
    "instructions": "You are a support bot. Answer from the policy documents and cite them.",
    "tools": [{"type": "file_search", "file_search": {"ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0}}}],
    "tool_resources": {},
    "metadata": {},
    "temperature": 1.0,
    "top_p": 1.0,
    "max_completion_tokens": None,
    "max_prompt_tokens": None,
    "truncation_strategy": {"type": "auto", "last_messages": None},
    "incomplete_details": None,
    "usage": {"prompt_tokens": 1841, "completion_tokens": 212, "total_tokens": 2053},
    "response_format": "auto",
    "tool_choice": "auto",
    "parallel_tool_calls": True,
}


def _step(i: int) -> dict:
    results = [
        {
            "file_id": f"file-{i}{k}AbCdEfGhIjKlMnOp",
            "file_name": f"policy-{k}.txt",
            "score": round(0.91 - k * 0.07, 4),
            "content": [{"type": "text", "text": "Refunds are issued within 14 days of purchase. " * 6}],
        }
        for k in range(3)
    ]
    return {
        "id": f"step_{i}Qw3rTy8uIoPaSdFgHjKlZx",
        "object": "thread.run.step",
        "created_at": 1714433727 + i,
        "run_id": _RUN["id"],
        "assistant_id": _RUN["assistant_id"],
        "thread_id": _RUN["thread_id"],
        "type": "tool_calls",
        "status": "completed",
        "cancelled_at": None,
        "completed_at": 1714433728 + i,
        "expires_at": None,
        "failed_at": None,
        "last_error": None,
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": f"call_{i}ZxCvBnMaSdFgHjKl",
                    "type": "file_search",
                    "file_search": {"ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0}, "results": results},
                }
            ],
        },
        "usage": {"prompt_tokens": 600, "completion_tokens": 20, "total_tokens": 620},
    }


RUN_JSON = json.dumps(_RUN, indent=2).encode()
STEPS_JSON = json.dumps(
    {"object": "list", "data": [_step(i) for i in range(2)], "first_id": _step(0)["id"], "last_id": _step(1)["id"], "has_more": False},
    indent=2,
).encode()


def stream_events() -> list[bytes]:
    """The event sequence of a streamed run with one message, as SSE frames."""
    run = dict(_RUN, status="queued", started_at=None, completed_at=None, usage=None)
    frames: list[tuple[str, dict | str]] = [("thread.run.created", run), ("thread.run.queued", run)]
    running = dict(run, status="in_progress", started_at=1714433726)
    frames.append(("thread.run.in_progress", running))
    message = {
        "id": "msg_Abc123", "object": "thread.message", "created_at": 1714433727, "assistant_id": _RUN["assistant_id"],
        "thread_id": _RUN["thread_id"], "run_id": _RUN["id"], "status": "in_progress", "incomplete_details": None,
        "incomplete_at": None, "completed_at": None, "role": "assistant", "content": [], "attachments": [], "metadata": {},
    }
    frames.append(("thread.message.created", message))
    frames.append(("thread.message.in_progress", message))
    for k, word in enumerate(["Refunds ", "are ", "issued ", "within ", "14 ", "days ", "of ", "purchase."]):
        delta = {"id": "msg_Abc123", "object": "thread.message.delta",
                 "delta": {"content": [{"index": 0, "type": "text", "text": {"value": word, "annotations": []}}]}}
        frames.append(("thread.message.delta", delta))
    done_msg = dict(message, status="completed", completed_at=1714433730,
                    content=[{"type": "text", "text": {"value": "Refunds are issued within 14 days of purchase.", "annotations": []}}])
    frames.append(("thread.message.completed", done_msg))
    frames.append(("thread.run.completed", _RUN))
    out = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in frames]
    out.append(b"event: done\ndata: [DONE]\n\n")
    return out
