"""A response as the stream of events the Responses API sends for it (`"stream": true`).

The sequence follows the recorded stream (tests/fixtures/spec/responses_recorded.json):
response.created, (response.queued), response.in_progress, then per output item
response.output_item.added, the item's own events, response.output_item.done, and the terminal
response.completed | response.incomplete | response.failed. Every event carries `sequence_number`.
Each event is paired with the emulated time it happens at, so a background response streams on
the clock like it polls."""

from __future__ import annotations

import copy
from collections.abc import Iterator

from emulator.responses import StoredResponse

TERMINAL_EVENT = {"completed": "response.completed", "incomplete": "response.incomplete",
                  "failed": "response.failed"}


def _opening(item: dict) -> dict:
    """An output item as `response.output_item.added` shows it: in progress, nothing produced yet."""
    kind = item["type"]
    opened = copy.deepcopy(item)
    if kind == "message":
        opened.update(status="in_progress", content=[])
    elif kind == "function_call":
        opened.update(status="in_progress", arguments="")
    elif kind == "file_search_call":
        opened.update(status="in_progress", queries=[], results=None)
    elif kind == "web_search_call":
        opened.update(status="in_progress")
    elif kind == "code_interpreter_call":
        opened.update(status="in_progress", code="", outputs=None)
    return opened


def _item_events(item: dict, index: int) -> Iterator[dict]:
    kind, item_id = item["type"], item["id"]
    where = {"item_id": item_id, "output_index": index}
    if kind == "message":
        for c_index, part in enumerate(item["content"]):
            at = dict(where, content_index=c_index)
            yield {"type": "response.content_part.added", **at,
                   "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}
            words = part["text"].split(" ")
            for w_index, word in enumerate(words):
                yield {"type": "response.output_text.delta", **at, "delta": word if w_index == 0 else " " + word,
                       "logprobs": []}
            for a_index, annotation in enumerate(part["annotations"]):
                yield {"type": "response.output_text.annotation.added", **at, "annotation_index": a_index,
                       "annotation": annotation}
            yield {"type": "response.output_text.done", **at, "text": part["text"], "logprobs": []}
            yield {"type": "response.content_part.done", **at, "part": part}
    elif kind == "function_call":
        yield {"type": "response.function_call_arguments.delta", **where, "delta": item["arguments"]}
        yield {"type": "response.function_call_arguments.done", **where, "name": item["name"],
               "arguments": item["arguments"]}
    elif kind == "file_search_call":
        for stage in ("in_progress", "searching", "completed"):
            yield {"type": f"response.file_search_call.{stage}", **where}
    elif kind == "web_search_call":
        for stage in ("in_progress", "searching", "completed"):
            yield {"type": f"response.web_search_call.{stage}", **where}
    elif kind == "code_interpreter_call":
        yield {"type": "response.code_interpreter_call.in_progress", **where}
        yield {"type": "response.code_interpreter_call_code.delta", **where, "delta": item["code"]}
        yield {"type": "response.code_interpreter_call_code.done", **where, "code": item["code"]}
        yield {"type": "response.code_interpreter_call.interpreting", **where}
        yield {"type": "response.code_interpreter_call.completed", **where}


def events(resp: StoredResponse) -> Iterator[tuple[float, dict]]:
    """(emulated time, event) for the whole stream, sequence numbers from 0."""
    created = float(resp.final["created_at"])
    first = resp.unfinished("queued" if resp.background else "in_progress")
    timed: list[tuple[float, dict]] = [(created, {"type": "response.created", "response": first})]
    if resp.background:
        timed.append((created, {"type": "response.queued", "response": first}))
    start = resp.in_progress_at
    timed.append((start, {"type": "response.in_progress", "response": resp.unfinished("in_progress")}))
    output = resp.final["output"]
    step = (resp.done_at - start) / max(1, len(output))
    for index, item in enumerate(output):
        at = start + step * index
        timed.append((at, {"type": "response.output_item.added", "output_index": index, "item": _opening(item)}))
        timed.extend((at, event) for event in _item_events(item, index))
        timed.append((at + step, {"type": "response.output_item.done", "output_index": index, "item": item}))
    final = resp.final
    timed.append((resp.done_at, {"type": TERMINAL_EVENT[final["status"]], "response": final}))
    for number, (at, event) in enumerate(timed):
        yield at, dict(event, sequence_number=number)
