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


# --- Responses API (shapes from tests/fixtures/spec/responses_recorded.json, plus the fields the
# current API adds: background, completed_at, conversation, service_tier, sequence_number) ----------

RESPONSE_REQUEST = {"model": "gpt-4o", "instructions": _RUN["instructions"],
                    "input": "How long do refunds take?", "store": True}
_RESPONSE_ID = "resp_67d447294ef48190950011f6d8a4eca50e8e4f6e450e93f0"
_MESSAGE_ID = "msg_67d44729a01081908211b3a88551948e0e8e4f6e450e93f0"
_ANSWER = ("Refunds are issued within 14 days of purchase, to the card you paid with. If the goods were "
           "shipped, the 14 days start when they are back in the warehouse; the policy document lists the "
           "exceptions (gift cards, custom orders) and who to contact when a refund is late. ")
_WORDS = _ANSWER.split()
_RESPONSE = {
    "id": _RESPONSE_ID,
    "object": "response",
    "created_at": 1741965097,
    "status": "completed",
    "background": False,
    "completed_at": 1741965099,
    "conversation": None,
    "error": None,
    "incomplete_details": None,
    "instructions": _RUN["instructions"],
    "max_output_tokens": None,
    "max_tool_calls": None,
    "model": "gpt-4o-2024-08-06",
    "output": [],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "prompt_cache_key": None,
    "reasoning": {"effort": None, "generate_summary": None, "summary": None},
    "safety_identifier": None,
    "service_tier": "default",
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}, "verbosity": "medium"},
    "tool_choice": "auto",
    "tools": [],
    "top_logprobs": 0,
    "top_p": 1.0,
    "truncation": "disabled",
    "usage": None,
    "user": None,
    "metadata": {},
}


def _message(text: str, status: str = "completed") -> dict:
    return {"id": _MESSAGE_ID, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _usage(output_tokens: int) -> dict:
    return {"input_tokens": 1841, "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 1841 + output_tokens}


def _text(words: int) -> str:
    """`words` words of the answer, repeated as often as needed."""
    return " ".join(_WORDS[k % len(_WORDS)] for k in range(words))


def response_json(output_bytes: int | None = None) -> bytes:
    """A finished response with one output message and its usage; with `output_bytes`, the
    message's text is made that long (the memory part pushes a 50 MB one through the proxy)."""
    text = _ANSWER.strip()
    if output_bytes is not None:
        text = (_ANSWER * (output_bytes // len(_ANSWER) + 1))[:output_bytes]
    body = dict(_RESPONSE, output=[_message(text)], usage=_usage(max(1, len(text) // 4)))
    return json.dumps(body, indent=2).encode()


def response_stream_events(events: int) -> list[bytes]:
    """The event sequence of a streamed response with one output message, `events` SSE frames in
    all: response.created, response.in_progress, response.output_item.added,
    response.content_part.added, one response.output_text.delta per word (as many as it takes),
    response.output_text.done, response.content_part.done, response.output_item.done and
    response.completed with the usage. No `[DONE]`: the Responses API ends on its terminal event."""
    deltas = max(1, events - 8)
    text = _text(deltas)
    at = {"item_id": _MESSAGE_ID, "output_index": 0, "content_index": 0}
    running = dict(_RESPONSE, status="in_progress", completed_at=None)
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    head = [
        {"type": "response.created", "response": running},
        {"type": "response.in_progress", "response": running},
        {"type": "response.output_item.added", "output_index": 0,
         "item": dict(_message(""), status="in_progress", content=[])},
        {"type": "response.content_part.added", **at, "part": part},
    ]
    done = _message(text)
    tail = [
        {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": done["content"][0]},
        {"type": "response.output_item.done", "output_index": 0, "item": done},
        {"type": "response.completed", "response": dict(_RESPONSE, output=[done], usage=_usage(deltas))},
    ]
    out = [_frame(n, event) for n, event in enumerate(head)]
    for k in range(deltas):
        delta = {"type": "response.output_text.delta", **at, "delta": _WORDS[k % len(_WORDS)] if k == 0
                 else " " + _WORDS[k % len(_WORDS)], "logprobs": []}
        out.append(_frame(len(head) + k, delta))
    out += [_frame(len(head) + deltas + n, event) for n, event in enumerate(tail)]
    return out


def _frame(sequence_number: int, event: dict) -> bytes:
    data = json.dumps(dict(event, sequence_number=sequence_number), separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()
