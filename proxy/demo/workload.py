"""A realistic, scripted workload of a team in mid-migration, driven through the official `openai` SDK.

Three API generations through one proxy with one key: a legacy client still on Assistants v1
(retrieval), Assistants v2 (file_search, code_interpreter, function tools; polled, streamed,
failed and cancelled runs), and the Responses API with Conversations (plain, streamed, a function
round trip, file_search over the very vector store the assistants search, web_search,
code_interpreter in a container, a conversation, a background response polled).

Used by `assistants-audit demo`, the docker-compose traffic generator, the security test and
the soak. It only speaks the public API, so it runs against any upstream; the emulator's
triggers (`[fail:...]`, `[incomplete:...]`, `[slow]`, see emulator/SCRIPT.md) make some runs
fail on purpose. What the client saw is kept in the result, so tests compare the store with it.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import OpenAI

FILE_SEARCH_INCLUDE = "step_details.tool_calls[*].file_search.results[*].content"

DOCS = {
    "refund-policy.txt": (
        "Refunds are issued within 14 days of purchase. Digital goods are refundable only when unused. "
        "Contact support with the order number to request a refund. "
    )
    * 40,
    "shipping.txt": (
        "Standard shipping takes 3 to 5 business days. Express shipping takes one business day. "
        "Orders above 50 euros ship free of charge. "
    )
    * 40,
    "warranty.txt": (
        "Hardware carries a two year warranty covering manufacturing defects. Accidental damage is "
        "not covered. Warranty claims need the serial number. "
    )
    * 40,
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}


# The same tool in the Responses API's flat form.
RESPONSES_WEATHER_TOOL = {"type": "function", **WEATHER_TOOL["function"]}
RESPONSES_MODEL = "gpt-4o"
_TERMINAL = ("completed", "failed", "incomplete", "cancelled")


@dataclass(frozen=True)
class SeenResponse:
    """A response as the client last saw it (the final poll, the stream's last event)."""

    status: str
    model: str
    input_tokens: int | None
    cached_input_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    total_tokens: int | None
    streamed: bool
    background: bool
    conversation_id: str | None


@dataclass
class WorkloadResult:
    """What the workload did, for the demo's summary and for tests."""

    runs: dict[str, str] = field(default_factory=dict)  # run id -> final status
    streamed_runs: int = 0
    api_errors: int = 0
    vector_stores: list[str] = field(default_factory=list)
    assistants: list[str] = field(default_factory=list)
    calls: int = 0
    responses: dict[str, SeenResponse] = field(default_factory=dict)  # response id -> as last seen
    # tool calls of those responses: call_id (function) or item id -> output item type as sent
    response_tool_calls: dict[str, str] = field(default_factory=dict)
    containers: list[str] = field(default_factory=list)
    conversations: list[str] = field(default_factory=list)


Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


class Workload:
    def __init__(
        self,
        base_url: str,
        api_key: str = "sk-demo-not-a-real-key",
        *,
        rounds: int = 3,
        progress: Progress = _noop,
        max_retries: int = 0,
    ) -> None:
        self.client = OpenAI(base_url=base_url, api_key=api_key, max_retries=max_retries, timeout=60)
        self.rounds = rounds
        self.progress = progress
        self.result = WorkloadResult()

    # The number of progress ticks `run` emits, so a caller can size a progress bar.
    def total_steps(self) -> int:
        return 3 + self.rounds * 8 + 2 + 5

    def run(self) -> WorkloadResult:
        store_id, assistants = self._setup()
        for round_no in range(self.rounds):
            self._round(round_no, store_id, assistants)
        self._v1_traffic()
        self._responses_traffic()
        self._orphans()
        return self.result

    def _tick(self, what: str) -> None:
        self.result.calls += 1
        self.progress(what)

    def _setup(self) -> tuple[str, dict[str, str]]:
        c = self.client
        store = c.vector_stores.create(name="support-docs", expires_after={"anchor": "last_active_at", "days": 7})
        files = [(name, io.BytesIO(text.encode())) for name, text in DOCS.items()]
        c.vector_stores.file_batches.upload_and_poll(vector_store_id=store.id, files=files, poll_interval_ms=50)
        self.result.vector_stores.append(store.id)
        self._tick("vector store with 3 files")
        support = c.beta.assistants.create(
            name="Support bot",
            model="gpt-4o",
            instructions="Answer from the policy documents.",
            tools=[{"type": "file_search"}],
            tool_resources={"file_search": {"vector_store_ids": [store.id]}},
        )
        analyst = c.beta.assistants.create(
            name="Analyst", model="gpt-4o-mini", instructions="Compute with code.", tools=[{"type": "code_interpreter"}]
        )
        self._tick("assistants: support, analyst")
        weather = c.beta.assistants.create(
            name="Weather", model="gpt-4o-mini", instructions="Use the weather tool.", tools=[WEATHER_TOOL]
        )
        ids = {"support": support.id, "analyst": analyst.id, "weather": weather.id}
        self.result.assistants.extend(ids.values())
        self._tick("assistant: weather (function tool)")
        return store.id, ids

    def _polled(self, assistant_id: str, text: str, *, list_steps: bool) -> str:
        c = self.client
        thread = c.beta.threads.create(messages=[{"role": "user", "content": text}])
        run = c.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=50)
        self.result.runs[run.id] = run.status
        if list_steps:
            c.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, include=[FILE_SEARCH_INCLUDE])
            c.beta.threads.messages.list(thread_id=thread.id)
        return run.status

    def _streamed(self, assistant_id: str, text: str) -> None:
        c = self.client
        thread = c.beta.threads.create(messages=[{"role": "user", "content": text}])
        with c.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id) as stream:
            stream.until_done()
            run = stream.get_final_run()
        self.result.runs[run.id] = run.status
        self.result.streamed_runs += 1

    def _function_call(self, assistant_id: str, city: str) -> None:
        c = self.client
        thread = c.beta.threads.create(messages=[{"role": "user", "content": f"Weather in {city}?"}])
        run = c.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=50)
        while run.status == "requires_action" and run.required_action is not None:
            outputs = [
                {"tool_call_id": call.id, "output": json.dumps({"city": city, "temperature_c": 21})}
                for call in run.required_action.submit_tool_outputs.tool_calls
            ]
            run = c.beta.threads.runs.submit_tool_outputs_and_poll(
                run_id=run.id, thread_id=thread.id, tool_outputs=outputs, poll_interval_ms=50
            )
        self.result.runs[run.id] = run.status

    def _round(self, round_no: int, store_id: str, a: dict[str, str]) -> None:
        self._polled(a["support"], "How long do refunds take?", list_steps=round_no % 2 == 0)
        self._tick("polled file_search run")
        self._streamed(a["analyst"], f"Sum the numbers 0..{9 + round_no}")
        self._tick("streamed code_interpreter run")
        self._function_call(a["weather"], ["Paris", "Oslo", "Lima"][round_no % 3])
        self._tick("function call + tool outputs")
        failure = ["[fail:server_error]", "[incomplete:max_completion_tokens]", "[fail:rate_limit_exceeded]"]
        self._polled(a["analyst"], f"Compute this {failure[round_no % 3]}", list_steps=False)
        self._tick("a run that fails or ends incomplete")
        self._cancelled(a["support"])
        self._tick("a cancelled run")
        try:
            self.client.beta.assistants.retrieve("asst_does_not_exist")
        except openai.NotFoundError:
            self.result.api_errors += 1
        self.client.vector_stores.retrieve(store_id)
        self._tick("a 404 and a vector store check")
        # The support bot's migrated twin: the same question over the same vector store.
        self._saw(self.client.responses.create(
            model=RESPONSES_MODEL, input="How long do refunds take?", instructions="Answer from the policy documents.",
            tools=[{"type": "file_search", "vector_store_ids": [store_id]}], include=["file_search_call.results"]))
        self._tick("responses: file_search, same vector store")
        self._streamed_response(f"Summarise the shipping policy, part {round_no + 1}")
        self._tick("responses: streamed")

    def _cancelled(self, assistant_id: str) -> None:
        c = self.client
        thread = c.beta.threads.create(messages=[{"role": "user", "content": "Take your time [slow]"}])
        run = c.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id)
        run = c.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
        run = c.beta.threads.runs.poll(run_id=run.id, thread_id=thread.id, poll_interval_ms=50)
        self.result.runs[run.id] = run.status

    def _v1_traffic(self) -> None:
        """A legacy client still on v1: retrieval tool and file_ids."""
        # The SDK sets `OpenAI-Beta: assistants=v2` on every beta call; per-call headers win.
        c, v1 = self.client, {"OpenAI-Beta": "assistants=v1"}
        file = c.files.create(file=("faq.txt", io.BytesIO(DOCS["shipping.txt"].encode())), purpose="assistants")
        assistant = c.beta.assistants.create(
            name="Legacy FAQ (v1)",
            model="gpt-4-turbo",
            tools=[{"type": "retrieval"}],  # type: ignore[list-item]
            extra_body={"file_ids": [file.id]},
            extra_headers=v1,
        )
        thread = c.beta.threads.create(
            messages=[{"role": "user", "content": "How fast is express shipping?"}], extra_headers=v1
        )
        run = c.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50, extra_headers=v1
        )
        self.result.runs[run.id] = run.status
        self.result.assistants.append(assistant.id)
        self._tick("v1 client with retrieval")

    # --- the Responses API ----------------------------------------------------------------------

    def _saw(self, response: Any, *, streamed: bool = False) -> Any:
        """Keep what the client saw of a response and its tool calls; returns the response."""
        usage = response.usage
        self.result.responses[response.id] = SeenResponse(
            status=response.status, model=response.model,
            input_tokens=usage.input_tokens if usage else None,
            cached_input_tokens=usage.input_tokens_details.cached_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            reasoning_tokens=usage.output_tokens_details.reasoning_tokens if usage else None,
            total_tokens=usage.total_tokens if usage else None,
            streamed=streamed, background=bool(response.background),
            conversation_id=response.conversation.id if response.conversation else None,
        )
        for item in response.output:
            if item.type.endswith("_call"):
                self.result.response_tool_calls[getattr(item, "call_id", None) or item.id] = item.type
        return response

    def _streamed_response(self, text: str) -> None:
        with self.client.responses.create(model=RESPONSES_MODEL, input=text, stream=True) as stream:
            final = [event for event in stream if event.type in ("response.completed", "response.incomplete",
                                                                 "response.failed")]
        if final:  # a stream cut short ends without a response to keep
            self._saw(final[-1].response, streamed=True)

    def _polled_response(self, response_id: str) -> Any:
        """Retrieve a background response until it has finished, as its client does."""
        deadline = time.monotonic() + 120
        while True:
            response = self.client.responses.retrieve(response_id)
            if response.status in _TERMINAL or time.monotonic() > deadline:
                return response
            time.sleep(0.05)

    def _responses_traffic(self) -> None:
        """The new side of the migration: what the Assistants calls above become."""
        c = self.client
        self._saw(c.responses.create(model=RESPONSES_MODEL, input="Hello, what can you do?", instructions="Be brief."))
        asked = self._saw(c.responses.create(model=RESPONSES_MODEL, input="Weather in Paris?",
                                             tools=[RESPONSES_WEATHER_TOOL]))
        outputs = [{"type": "function_call_output", "call_id": item.call_id,
                    "output": json.dumps({"city": "Paris", "temperature_c": 21})}
                   for item in asked.output if item.type == "function_call"]
        self._saw(c.responses.create(model=RESPONSES_MODEL, previous_response_id=asked.id, input=outputs,
                                     tools=[RESPONSES_WEATHER_TOOL]))
        self._tick("responses: plain, function round trip")
        self._saw(c.responses.create(model=RESPONSES_MODEL, input="Latest shipping carrier news",
                                     tools=[{"type": "web_search"}], include=["web_search_call.action.sources"]))
        self._tick("responses: web_search")
        code = self._saw(c.responses.create(
            model="gpt-4o-mini", input="Sum the numbers 0..9",
            tools=[{"type": "code_interpreter", "container": {"type": "auto"}}], include=["code_interpreter_call.outputs"]))
        containers = [item.container_id for item in code.output if item.type == "code_interpreter_call"]
        self.result.containers.extend(containers)
        if containers:  # the same container again: one session, two calls
            self._saw(c.responses.create(model="gpt-4o-mini", input="And 10..19",
                                         tools=[{"type": "code_interpreter", "container": containers[0]}]))
        self._tick("responses: code_interpreter in a container")
        conversation = c.conversations.create(metadata={"topic": "returns"},
                                              items=[{"type": "message", "role": "user", "content": "Order 1234."}])
        self.result.conversations.append(conversation.id)
        self._saw(c.responses.create(model=RESPONSES_MODEL, input="I want to return it.", conversation=conversation.id))
        self._saw(c.responses.create(model=RESPONSES_MODEL, input="How long will the refund take?",
                                     conversation=conversation.id))
        self._tick("responses: a conversation, two turns")
        background = c.responses.create(model=RESPONSES_MODEL, input="Draft the quarterly refunds summary",
                                        background=True)
        self._saw(self._polled_response(background.id))
        self._tick("responses: background, polled")

    def _orphans(self) -> None:
        """A store nobody uses any more: it keeps costing money."""
        c = self.client
        store = c.vector_stores.create(name="old-campaign-2025")
        c.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=("campaign.txt", io.BytesIO(("Spring campaign copy. " * 3000).encode())),
            poll_interval_ms=50,
        )
        self.result.vector_stores.append(store.id)
        list(c.vector_stores.list(limit=20))  # a cost review: every store's current size
        self._tick("an idle vector store")
