"""The run state machine. A run holds a queue of timed actions built from its plan; reading
state advances the queue up to the clock (no background tasks). Each action mutates the stored
objects and, when a stream listens, records the events OpenAI would send for it."""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from emulator import models, vectors
from emulator.script import CODE_INPUT, CODE_LOGS, FAIL_MESSAGES, Plan, reply_text, tokens
from emulator.state import Store

TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
RUN_TTL = 600  # a run expires 10 minutes after creation unless it finishes
# a 1x1 transparent PNG, the "chart" code_interpreter produces
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")

Action = Callable[[float], None]


@dataclass
class Run:
    obj: dict
    version: str
    plan: Plan
    include_content: bool = False
    actions: deque[tuple[float, Action]] = field(default_factory=deque)
    next_at: float = 0.0
    events: list[tuple[str, dict]] = field(default_factory=list)
    listeners: int = 0
    step_ids: list[str] = field(default_factory=list)
    open_step: str | None = None
    message_id: str | None = None
    tool_outputs: list[str] = field(default_factory=list)
    citations: list[tuple[str, str]] = field(default_factory=list)  # (file_id, filename)
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})

    @property
    def id(self) -> str:
        return self.obj["id"]

    @property
    def status(self) -> str:
        return self.obj["status"]

    @property
    def blocked(self) -> bool:
        return not self.actions


def indexed(value: object) -> object:
    """Delta form: every object inside a list carries its `index`, which SDKs merge on."""
    if isinstance(value, list):
        return [dict(indexed(v), index=i) if isinstance(v, dict) else v for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: indexed(v) for k, v in value.items()}
    return value


class Engine:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- events ---------------------------------------------------------------------------------
    def emit(self, run: Run, name: str, payload: dict) -> None:
        if run.listeners:
            run.events.append((name, payload))

    def emit_run(self, run: Run, name: str) -> None:
        if run.listeners:
            run.events.append((name, models.run(run.obj, run.version)))

    def emit_step(self, run: Run, name: str, step_id: str, *, calls_in_delta: bool = False) -> None:
        if run.listeners:
            payload = models.step(self.store.steps[step_id], run.version, include_content=run.include_content)
            if calls_in_delta and payload["step_details"]["type"] == "tool_calls":
                # the calls arrive in the following thread.run.step.delta, as OpenAI streams them
                payload["step_details"]["tool_calls"] = []
            run.events.append((name, payload))

    def emit_message(self, run: Run, name: str, message_id: str) -> None:
        if run.listeners:
            run.events.append((name, models.message(self.store.messages[message_id], run.version)))

    # -- scheduling -----------------------------------------------------------------------------
    def schedule(self, run: Run, actions: list[tuple[float, Action]], start: float) -> None:
        was_empty = not run.actions
        run.actions.extend(actions)
        if was_empty and run.actions:
            run.next_at = start + run.actions[0][0]
        self.store.active_runs[run.id] = None

    def advance(self, run: Run, now: float) -> None:
        if run.status == "requires_action" and now >= run.obj["expires_at"]:
            self._expire(run, float(run.obj["expires_at"]))
        while run.actions and run.next_at <= now:
            _, action = run.actions.popleft()
            t = run.next_at
            action(t)
            if run.actions:
                run.next_at = t + run.actions[0][0]
        if run.status in TERMINAL or (not run.actions and run.status != "requires_action"):
            self.store.active_runs.pop(run.id, None)

    def advance_all(self) -> None:
        now = self.store.clock.now()
        for run_id in list(self.store.active_runs):
            self.advance(self.store.runs[run_id], now)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, run: Run) -> None:
        """Right after creation: queued, then the plan."""
        self.emit_run(run, "thread.run.created")
        self.emit_run(run, "thread.run.queued")
        d = run.plan.phase_seconds
        actions: list[tuple[float, Action]] = [(d, lambda t: self._in_progress(run, t))]
        for kind in run.plan.tool_steps:
            actions.append((d, lambda t, kind=kind: self._open_tool_step(run, t, kind)))
            actions.append((d, lambda t: self._close_step(run, t)))
        if run.plan.function_calls and run.plan.outcome == "completed":
            actions.append((d, lambda t: self._require_action(run, t)))
        else:
            actions.extend(self._ending(run))
        self.schedule(run, actions, self.store.clock.now())

    def _ending(self, run: Run) -> list[tuple[float, Action]]:
        d = run.plan.phase_seconds
        if run.plan.outcome == "failed":
            return [(d, lambda t: self._fail(run, t))]
        if run.plan.outcome == "expired":
            return [(d, lambda t: self._expire(run, t))]
        return [(d, lambda t: self._open_message(run, t)), (d, lambda t: self._close_message(run, t))]

    def _in_progress(self, run: Run, t: float) -> None:
        run.obj["status"] = "in_progress"
        if run.obj["started_at"] is None:
            run.obj["started_at"] = int(t)
        self.emit_run(run, "thread.run.in_progress")

    def _new_step(self, run: Run, t: float, details: dict) -> str:
        step_id = self.store.ids.new("step")
        self.store.steps[step_id] = {
            "id": step_id, "created_at": int(t), "run_id": run.id, "assistant_id": run.obj["assistant_id"],
            "thread_id": run.obj["thread_id"], "type": details["type"], "status": "in_progress",
            "cancelled_at": None, "completed_at": None, "expired_at": None, "failed_at": None, "last_error": None,
            "step_details": details, "usage": None, "metadata": {},
        }
        run.step_ids.append(step_id)
        run.open_step = step_id
        self.emit_step(run, "thread.run.step.created", step_id, calls_in_delta=True)
        self.emit_step(run, "thread.run.step.in_progress", step_id, calls_in_delta=True)
        return step_id

    def _step_delta(self, run: Run, step_id: str) -> None:
        if not run.listeners:
            return
        details = models.step_details(self.store.steps[step_id]["step_details"], run.version,
                                      include_content=run.include_content)
        calls = indexed(details["tool_calls"])
        self.emit(run, "thread.run.step.delta", {
            "id": step_id, "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": calls}}})

    def _open_tool_step(self, run: Run, t: float, kind: str) -> None:
        call_id = self.store.ids.new("call")
        if kind == "code_interpreter":
            image_id = self._image_file(t)
            call = {"id": call_id, "type": "code_interpreter", "code_interpreter": {
                "input": CODE_INPUT,
                "outputs": [{"type": "logs", "logs": CODE_LOGS}, {"type": "image", "image": {"file_id": image_id}}]}}
            completion = tokens(CODE_INPUT)
        elif kind == "file_search":
            hits = vectors.search(self.store, list(run.plan.vector_store_ids), run.plan.query, 20)
            for vs_id in run.plan.vector_store_ids:
                if vs_id in self.store.vector_stores:
                    vectors.touch(self.store, self.store.vector_stores[vs_id])
            results = [{"file_id": c.file_id, "file_name": c.filename, "score": score,
                        "content": [{"type": "text", "text": c.text}]} for c, score in hits]
            run.citations.extend((c.file_id, c.filename) for c, _ in hits[:1])
            call = {"id": call_id, "type": "file_search", "file_search": {
                "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0}, "results": results}}
            completion = tokens(run.plan.query)
        else:  # v1 retrieval: the call carries no details
            hits = vectors.search_v1_files(self.store, list(run.plan.retrieval_file_ids), run.plan.query, 20)
            run.citations.extend((c.file_id, c.filename) for c, _ in hits[:1])
            call = {"id": call_id, "type": "retrieval", "retrieval": {}}
            completion = tokens(run.plan.query)
        step_id = self._new_step(run, t, {"type": "tool_calls", "tool_calls": [call]})
        self.store.steps[step_id]["_completion"] = completion
        self._step_delta(run, step_id)

    def _image_file(self, t: float) -> str:
        file_id = self.store.ids.new("file")
        self.store.files[file_id] = {"id": file_id, "purpose": "assistants_output", "filename": f"{file_id}.png",
                                     "bytes": len(PNG), "created_at": int(t), "expires_at": None,
                                     "status": "processed", "status_details": None}
        self.store.file_bytes[file_id] = PNG
        return file_id

    def _step_usage(self, run: Run, completion: int) -> dict:
        usage = {"prompt_tokens": run.plan.prompt_tokens, "completion_tokens": completion,
                 "total_tokens": run.plan.prompt_tokens + completion}
        for k in run.usage:
            run.usage[k] += usage[k]
        return usage

    def _close_step(self, run: Run, t: float) -> None:
        step = self.store.steps[run.open_step]
        step["status"] = "completed"
        step["completed_at"] = int(t)
        step["usage"] = self._step_usage(run, step.pop("_completion", 0))
        run.open_step = None
        self.emit_step(run, "thread.run.step.completed", step["id"])

    def _require_action(self, run: Run, t: float) -> None:
        calls = [{"id": self.store.ids.new("call"), "type": "function",
                  "function": {"name": c.name, "arguments": c.arguments, "output": None}}
                 for c in run.plan.function_calls]
        step_id = self._new_step(run, t, {"type": "tool_calls", "tool_calls": calls})
        self.store.steps[step_id]["_completion"] = sum(tokens(c.arguments) for c in run.plan.function_calls)
        self._step_delta(run, step_id)
        run.obj["status"] = "requires_action"
        run.obj["required_action"] = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [
            {"id": c["id"], "type": "function",
             "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
            for c in calls]}}
        self.emit_run(run, "thread.run.requires_action")

    def pending_call_ids(self, run: Run) -> list[str]:
        action = run.obj["required_action"] or {}
        return [c["id"] for c in (action.get("submit_tool_outputs") or {}).get("tool_calls", [])]

    def submit_tool_outputs(self, run: Run, outputs: dict[str, str]) -> None:
        now = self.store.clock.now()
        step = self.store.steps[run.open_step]
        for call in step["step_details"]["tool_calls"]:
            call["function"]["output"] = outputs.get(call["id"], "")
            run.tool_outputs.append(outputs.get(call["id"], ""))
        run.obj["status"] = "queued"
        run.obj["required_action"] = None
        self.emit_run(run, "thread.run.queued")
        self._close_step(run, now)
        d = run.plan.phase_seconds
        self.schedule(run, [(d, lambda t: self._in_progress(run, t)),
                            (d, lambda t: self._open_message(run, t)),
                            (d, lambda t: self._close_message(run, t))], now)

    def _open_message(self, run: Run, t: float) -> None:
        msg_id = self.store.ids.new("msg")
        thread_id = run.obj["thread_id"]
        self.store.messages[msg_id] = {
            "id": msg_id, "created_at": int(t), "assistant_id": run.obj["assistant_id"], "thread_id": thread_id,
            "run_id": run.id, "status": "in_progress", "incomplete_details": None, "incomplete_at": None,
            "completed_at": None, "role": "assistant", "content": [], "attachments": [], "file_ids": [],
            "metadata": {},
        }
        self.store.thread_messages.setdefault(thread_id, []).append(msg_id)
        run.message_id = msg_id
        step_id = self._new_step(run, t, {"type": "message_creation", "message_creation": {"message_id": msg_id}})
        self.emit_message(run, "thread.message.created", msg_id)
        self.emit_message(run, "thread.message.in_progress", msg_id)
        words = self._reply_words(run)
        self.store.steps[step_id]["_completion"] = len(words)
        for i, word in enumerate(words):
            text = {"value": word if i == 0 else " " + word}
            if i == 0:
                text["annotations"] = []
            self.emit(run, "thread.message.delta", {"id": msg_id, "object": "thread.message.delta",
                                                    "delta": {"content": [{"index": 0, "type": "text", "text": text}]}})

    def _reply_words(self, run: Run) -> list[str]:
        words = reply_text(run.plan.query, code="code_interpreter" in run.plan.tool_steps,
                           citations=[name for _, name in run.citations], tool_outputs=run.tool_outputs).split()
        limit = run.obj.get("max_completion_tokens")
        if run.plan.outcome == "incomplete":
            words = words[: max(1, len(words) // 2)]
        elif limit:
            words = words[: max(1, limit - run.usage["completion_tokens"])]
        return words

    def _close_message(self, run: Run, t: float) -> None:
        msg = self.store.messages[run.message_id]
        words = self._reply_words(run)
        full = len(words) == len(self._full_words(run))
        value = " ".join(words)
        annotations = []
        if run.citations and full:
            marker = "【4:0†source】"
            value += marker
            file_id, _ = run.citations[0]
            citation = {"file_id": file_id} if run.version == models.V2 else {"file_id": file_id, "quote": ""}
            annotations.append({"type": "file_citation", "text": marker, "start_index": len(value) - len(marker),
                                "end_index": len(value), "file_citation": citation})
        msg["content"] = [{"type": "text", "text": {"value": value, "annotations": annotations}}]
        incomplete = run.plan.outcome == "incomplete" or not full
        if incomplete:
            msg["status"] = "incomplete"
            msg["incomplete_details"] = {"reason": "max_tokens"}
            msg["incomplete_at"] = int(t)
        else:
            msg["status"] = "completed"
            msg["completed_at"] = int(t)
        self.emit_message(run, "thread.message.incomplete" if incomplete else "thread.message.completed", msg["id"])
        self._close_step(run, t)
        run.obj["usage"] = dict(run.usage)
        run.obj["completed_at"] = int(t)
        run.obj["expires_at"] = None
        if incomplete:
            run.obj["status"] = "incomplete"
            run.obj["incomplete_details"] = {"reason": run.plan.outcome_detail or "max_completion_tokens"}
            self.emit_run(run, "thread.run.incomplete" if run.version == models.V2 else "thread.run.completed")
        else:
            run.obj["status"] = "completed"
            self.emit_run(run, "thread.run.completed")

    def _full_words(self, run: Run) -> list[str]:
        return reply_text(run.plan.query, code="code_interpreter" in run.plan.tool_steps,
                          citations=[name for _, name in run.citations], tool_outputs=run.tool_outputs).split()

    def _fail(self, run: Run, t: float) -> None:
        code = run.plan.outcome_detail or "server_error"
        run.obj["status"] = "failed"
        run.obj["failed_at"] = int(t)
        run.obj["last_error"] = {"code": code, "message": FAIL_MESSAGES.get(code, "Sorry, something went wrong.")}
        run.obj["usage"] = dict(run.usage)
        run.obj["expires_at"] = None
        self.emit_run(run, "thread.run.failed")

    def _expire(self, run: Run, t: float) -> None:
        run.actions.clear()
        if run.open_step:
            step = self.store.steps[run.open_step]
            step["status"] = "expired"
            step["expired_at"] = int(t)
            run.open_step = None
        run.obj["status"] = "expired"
        run.obj["required_action"] = None
        run.obj["usage"] = dict(run.usage)
        self.emit_run(run, "thread.run.expired")
        self.store.active_runs.pop(run.id, None)

    def cancel(self, run: Run) -> None:
        now = self.store.clock.now()
        run.actions.clear()
        run.obj["status"] = "cancelling"
        run.obj["required_action"] = None
        self.emit_run(run, "thread.run.cancelling")
        self.schedule(run, [(run.plan.phase_seconds, lambda t: self._cancelled(run, t))], now)

    def _cancelled(self, run: Run, t: float) -> None:
        if run.open_step:
            step = self.store.steps[run.open_step]
            step["status"] = "cancelled"
            step["cancelled_at"] = int(t)
            self.emit_step(run, "thread.run.step.cancelled", step["id"])
            run.open_step = None
        if run.message_id and self.store.messages[run.message_id]["status"] == "in_progress":
            msg = self.store.messages[run.message_id]
            msg["status"] = "incomplete"
            msg["incomplete_at"] = int(t)
            msg["incomplete_details"] = {"reason": "run_cancelled"}
        run.obj["status"] = "cancelled"
        run.obj["cancelled_at"] = int(t)
        run.obj["usage"] = dict(run.usage)
        run.obj["expires_at"] = None
        self.emit_run(run, "thread.run.cancelled")
